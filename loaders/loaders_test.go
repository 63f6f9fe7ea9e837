package loaders_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// A batching window long enough for goroutines started together to share a batch even on a
// busy machine.
var batching = loaders.Config{Wait: 100 * time.Millisecond}

// seeded is a store with data, on one backend.
type seeded struct {
	store *store.Store
	shop  storetest.Seeded
}

// forEachBackend runs test as a parallel subtest on a seeded store of each backend:
// customer i has i+1 orders (0 for the last one), order j has 1 + j%3 lines.
func forEachBackend(t *testing.T, test func(t *testing.T, s seeded)) {
	t.Helper()
	for _, b := range []struct {
		name string
		cfg  func(testing.TB) store.Config
	}{
		{"postgres", func(tb testing.TB) store.Config {
			return store.Config{DatabaseURL: storetest.PostgresURL(tb), MaxConns: 4}
		}},
		{"sqlite", func(tb testing.TB) store.Config { return store.Config{SQLitePath: storetest.SQLitePath(tb)} }},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, seed(t, b.cfg(t)))
		})
	}
}

// seed opens a store on cfg and seeds it as forEachBackend describes.
func seed(t *testing.T, cfg store.Config) seeded {
	t.Helper()
	cfg.PasswordCost = bcrypt.MinCost
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	shop := storetest.Seed(t, st, storetest.Shop{Merchants: 3, ProductsPerMerchant: 4, Stock: 50, Customers: 4,
		OrdersOf: func(c int) int { return (c + 1) % 4 }, ItemsOf: func(o int) int { return 1 + o%3 }})
	return seeded{st, shop}
}

// loadAll calls load for every key in its own goroutine, as gqlgen resolves the elements of
// a list, and returns the results in key order.
func loadAll[K, V any](ctx context.Context, keys []K, load func(context.Context, K) (V, error)) ([]V, []error) {
	vals, errs := make([]V, len(keys)), make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { vals[i], errs[i] = load(ctx, k) })
	}
	wg.Wait()
	return vals, errs
}

// partial loads one key through the batch window, as a resolver among siblings does.
func partial[K, V any](load func(context.Context, K, loaders.Level) (V, error)) func(context.Context, K) (V, error) {
	return func(ctx context.Context, k K) (V, error) { return load(ctx, k, loaders.Partial) }
}

// operation returns a context with fresh loaders for s, as the middleware gives a request.
func operation(s *store.Store, cfg loaders.Config) (context.Context, *loaders.Loaders) {
	l := loaders.New(s, cfg)
	return loaders.With(context.Background(), l), l
}

// Keys loaded at once are read in one statement, each gets its own row whatever order the
// store returned them in, and an unknown key gets NOT_FOUND without failing the others.
func TestByIDLoadersAnswerEachKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s seeded) {
		const unknown = 999_999
		users := append(slices.Clone(s.shop.CustomerIDs), unknown)
		slices.Reverse(users)
		users = append(users, s.shop.MerchantIDs...)
		ctx, l := operation(s.store, batching)
		got, errs := loadAll(ctx, users, partial(loaders.User))
		for i, id := range users {
			switch {
			case id == unknown && store.ErrorCode(errs[i]) != store.CodeNotFound:
				t.Errorf("unknown user: %v, want NOT_FOUND", errs[i])
			case id != unknown && (errs[i] != nil || got[i].ID != id):
				t.Errorf("user %d: got %d, %v", id, got[i].ID, errs[i])
			}
		}
		products := append([]int64{unknown}, s.shop.ProductIDs...)
		gotProducts, errs := loadAll(ctx, products, partial(loaders.Product))
		for i, id := range products {
			if (id == unknown) != (store.ErrorCode(errs[i]) == store.CodeNotFound) || (id != unknown && gotProducts[i].ID != id) {
				t.Errorf("product %d: got %d, %v", id, gotProducts[i].ID, errs[i])
			}
		}
		orders := append(flatten(s.shop.OrderIDs), unknown)
		gotOrders, errs := loadAll(ctx, orders, partial(loaders.Order))
		for i, id := range orders {
			if (id == unknown) != (store.ErrorCode(errs[i]) == store.CodeNotFound) || (id != unknown && gotOrders[i].ID != id) {
				t.Errorf("order %d: got %d, %v", id, gotOrders[i].ID, errs[i])
			}
		}
		rep := l.Report()
		if rep.Statements != 3 || !slices.Equal(rep.Batches["user"], []int{len(users)}) {
			t.Errorf("%d statements, user batches %v; want 3 statements and one batch of %d", rep.Statements, rep.Batches["user"], len(users))
		}
		// Loaded keys are answered from the operation's cache.
		if _, err := loaders.User(ctx, s.shop.CustomerIDs[0], loaders.Partial); err != nil || l.Report().Statements != 3 {
			t.Errorf("a repeated key cost a statement: %d, %v", l.Report().Statements, err)
		}
	})
}

// Items and history are grouped per order, each in the store's order, an order without any
// getting an empty list, all in one statement per loader.
func TestGroupedLoadersGiveEachParentItsChildren(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s seeded) {
		orders := append(flatten(s.shop.OrderIDs), 999_999)
		ctx, l := operation(s.store, batching)
		items, errs := loadAll(ctx, orders, partial(loaders.Items))
		history, herrs := loadAll(ctx, orders, partial(loaders.History))
		for i, id := range orders {
			if errs[i] != nil || herrs[i] != nil {
				t.Fatalf("order %d: %v, %v", id, errs[i], herrs[i])
			}
			want, err := s.store.FindItemsByOrderIDs(context.Background(), []int64{id})
			if err != nil || !slices.Equal(items[i], want) {
				t.Errorf("items of order %d: %+v, want %+v (%v)", id, items[i], want, err)
			}
			if id == 999_999 && (len(items[i]) != 0 || len(history[i]) != 0) {
				t.Errorf("an unknown order has %d items and %d events", len(items[i]), len(history[i]))
			}
			if id != 999_999 && (len(history[i]) != 1 || history[i][0].OrderID != id) {
				t.Errorf("history of order %d: %+v", id, history[i])
			}
		}
		if n := l.Report().Statements; n != 2 {
			t.Errorf("%d statements, want 2", n)
		}
	})
}

// Pages of many parents asked for with the same arguments share a statement; other
// arguments get statements of their own; each parent gets the page the store gives it alone.
func TestPageLoadersGroupByArguments(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s seeded) {
		type pageKey struct {
			customer int64
			first    int
			status   *store.OrderStatus
		}
		pending, paid := store.StatusPending, store.StatusPaid
		var keys []pageKey
		for _, c := range s.shop.CustomerIDs {
			keys = append(keys, pageKey{c, 2, nil}, pageKey{c, 5, nil}, pageKey{c, 2, &pending}, pageKey{c, 2, &paid})
		}
		ctx, l := operation(s.store, batching)
		pages, errs := loadAll(ctx, keys, func(ctx context.Context, k pageKey) (*store.OrderPage, error) {
			return loaders.CustomerOrders(ctx, k.customer, k.status, store.PageArgs{First: k.first}, loaders.Partial)
		})
		for i, k := range keys {
			want, err := s.store.FindOrders(context.Background(), store.OrderFilter{CustomerID: &k.customer, Status: k.status}, store.PageArgs{First: k.first})
			if errs[i] != nil || err != nil {
				t.Fatalf("%+v: %v, %v", k, errs[i], err)
			}
			if got := pages[i]; !slices.Equal(encoded(got.Cursors), encoded(want.Cursors)) || got.HasNext != want.HasNext || *got.Filter.CustomerID != k.customer {
				t.Errorf("%+v: cursors %v next %v, want %v next %v", k, encoded(got.Cursors), got.HasNext, encoded(want.Cursors), want.HasNext)
			}
		}
		if n := l.Report().Statements; n != 4 {
			t.Errorf("%d statements for 4 sets of page arguments, want 4", n)
		}

		counts, errs := loadAll(ctx, s.shop.CustomerIDs, func(ctx context.Context, c int64) (int, error) {
			return loaders.OrderCount(ctx, store.OrderFilter{CustomerID: &c}, loaders.Partial)
		})
		for i := range s.shop.CustomerIDs {
			if errs[i] != nil || counts[i] != len(s.shop.OrderIDs[i]) {
				t.Errorf("customer %d counts %d (%v), want %d", i, counts[i], errs[i], len(s.shop.OrderIDs[i]))
			}
		}
		products, errs := loadAll(ctx, s.shop.MerchantIDs, func(ctx context.Context, m int64) (*store.ProductPage, error) {
			return loaders.MerchantProducts(ctx, m, store.PageArgs{First: 3}, loaders.Partial)
		})
		productN, nerrs := loadAll(ctx, s.shop.MerchantIDs, func(ctx context.Context, m int64) (int, error) {
			return loaders.ProductCount(ctx, store.ProductFilter{MerchantID: &m}, loaders.Partial)
		})
		for i, m := range s.shop.MerchantIDs {
			if errs[i] != nil || nerrs[i] != nil || len(products[i].Products) != 3 || !products[i].HasNext || productN[i] != 4 {
				t.Errorf("merchant %d: page %+v (%v), count %d (%v)", m, products[i], errs[i], productN[i], nerrs[i])
			}
			for _, p := range products[i].Products {
				if p.MerchantID != m {
					t.Errorf("merchant %d's page shows product %d of merchant %d", m, p.ID, p.MerchantID)
				}
			}
		}
		if n := l.Report().Statements; n != 4+3 {
			t.Errorf("%d statements, want 7: one per loader for the counts and the product pages", n-4)
		}
		// A filter no loader batches is a statement of its own.
		search := "Product"
		if _, err := loaders.ProductCount(ctx, store.ProductFilter{MerchantID: &s.shop.MerchantIDs[0], Search: &search}, loaders.Partial); err != nil {
			t.Fatal(err)
		}
		if n := l.Report().Statements; n != 8 {
			t.Errorf("%d statements after an unbatched count, want 8", n)
		}
		// A bad page argument fails its keys only.
		if _, err := loaders.CustomerOrders(ctx, s.shop.CustomerIDs[0], nil, store.PageArgs{First: 1, After: "nonsense"}, loaders.Whole); store.ErrorCode(err) != store.CodeInvalid {
			t.Errorf("a bad cursor: %v, want INVALID", err)
		}
	})
}

// PerItem sends every key alone, which is what batching saves.
func TestPerItemSendsEveryKeyAlone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s seeded) {
		ctx, l := operation(s.store, loaders.Config{PerItem: true})
		if _, errs := loadAll(ctx, s.shop.ProductIDs, partial(loaders.Product)); slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
			t.Fatal(errs)
		}
		if n := l.Report().Statements; n != len(s.shop.ProductIDs) {
			t.Errorf("%d statements for %d products, want one each", n, len(s.shop.ProductIDs))
		}
	})
}

// The middleware gives each request fresh loaders and reports what it cost. (WebSocket
// upgrades never reach it: server.go keeps it off them.)
func TestMiddleware(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s seeded) {
		var reports []loaders.Report
		cfg := batching
		cfg.Observe = func(_ *http.Request, rep loaders.Report) { reports = append(reports, rep) }
		var had []bool
		h := loaders.Middleware(s.store, cfg)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			had = append(had, loaders.Has(r.Context()))
			if loaders.Has(r.Context()) {
				if _, err := loaders.User(r.Context(), s.shop.CustomerIDs[0], loaders.Partial); err != nil {
					t.Error(err)
				}
			}
		}))
		for range 2 {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/graphql", nil))
		}
		if !slices.Equal(had, []bool{true, true}) {
			t.Errorf("loaders present %v, want in both requests", had)
		}
		// Each request loaded the user afresh: its loaders are its own.
		if len(reports) != 2 || reports[0].Statements != 1 || reports[1].Statements != 1 {
			t.Errorf("reports %+v, want two of one statement each", reports)
		}
	})
}

func TestForPanicsWithoutLoaders(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("For returned without loaders in the context")
		}
	}()
	loaders.For(context.Background())
}

func flatten(ids [][]int64) []int64 {
	var all []int64
	for _, l := range ids {
		all = append(all, l...)
	}
	return all
}

// encoded returns the page's cursors as clients see them.
func encoded(c store.Cursors) []string {
	s := make([]string, len(c))
	for i := range c {
		s[i] = c.Cursor(i)
	}
	return s
}

// A Whole read is sent at once, a Partial one through the batch window, and the report
// tells them apart.
func TestReportTellsWindowedBatches(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s seeded) {
		ctx, l := operation(s.store, batching)
		if _, errs := loaders.Users(ctx, s.shop.CustomerIDs, loaders.Whole); errs != nil {
			t.Fatal(errs)
		}
		if _, errs := loaders.Users(ctx, s.shop.MerchantIDs, loaders.Partial); errs != nil {
			t.Fatal(errs)
		}
		rep := l.Report()
		if want := []int{len(s.shop.CustomerIDs), len(s.shop.MerchantIDs)}; !slices.Equal(rep.Batches["user"], want) {
			t.Errorf("user batches %v, want %v", rep.Batches["user"], want)
		}
		if want := []int{len(s.shop.MerchantIDs)}; !slices.Equal(rep.Windowed["user"], want) {
			t.Errorf("user batches from the window %v, want %v (the Partial one only)", rep.Windowed["user"], want)
		}
	})
}

// A Whole read (a batch resolver's, or a prefetch of the level below it) caches what it
// found only: a key it could not read is read again by the next load that asks for it, which
// reports its own NOT_FOUND; found keys cost nothing more.
func TestWholeReadCachesOnlyWhatItFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s seeded) {
		const unknown = 999_999
		ctx, l := operation(s.store, batching)
		ids := []int64{s.shop.ProductIDs[0], unknown, s.shop.ProductIDs[1]}
		if _, errs := loaders.Products(ctx, ids, loaders.Whole); errs == nil || errs[0] != nil || store.ErrorCode(errs[1]) != store.CodeNotFound || errs[2] != nil {
			t.Fatalf("errors %v, want NOT_FOUND for the unknown key alone", errs)
		}
		got, errs := loaders.Products(ctx, ids, loaders.Partial)
		if errs == nil || errs[0] != nil || store.ErrorCode(errs[1]) != store.CodeNotFound || errs[2] != nil || got[2].ID != ids[2] {
			t.Fatalf("after the Whole read: %+v, %v", got, errs)
		}
		rep := l.Report()
		if !slices.Equal(rep.Batches["product"], []int{3, 1}) || !slices.Equal(rep.Windowed["product"], []int{1}) {
			t.Errorf("product batches %v (window %v), want [3 1] with the unknown key alone through the window", rep.Batches["product"], rep.Windowed["product"])
		}
	})
}

// Keys already cached cost a Partial load neither the batch window nor an allocation each:
// below a Whole level that prefetched, every key of every list is cached. (Allocations are
// counted alone, on the embedded backend: the cache is the same on both.)
func TestPartialLoadOfCachedKeys(t *testing.T) {
	s := seed(t, store.Config{SQLitePath: storetest.SQLitePath(t)})
	ctx, l := operation(s.store, batching)
	ids := s.shop.ProductIDs
	if _, errs := loaders.Products(ctx, ids, loaders.Whole); errs != nil {
		t.Fatal(errs)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if got, errs := loaders.Products(ctx, ids, loaders.Partial); errs != nil || got[len(ids)-1].ID != ids[len(ids)-1] {
			t.Fatal(errs)
		}
	})
	if allocs > 1 {
		t.Errorf("a Partial load of %d cached keys allocates %.0f times, want once (its result)", len(ids), allocs)
	}
	if rep := l.Report(); len(rep.Windowed) != 0 || rep.Statements != 1 {
		t.Errorf("%d statements, window batches %v; want the Whole read alone", rep.Statements, rep.Windowed)
	}
}

// A request that never asks for a loader (a response-cache hit) pays little for them: the
// loaders are set up by the first For, not by the middleware.
func TestMiddlewareCostsLittleUntilAsked(t *testing.T) {
	cfg := loaders.DefaultConfig
	cfg.Observe = func(*http.Request, loaders.Report) {}
	h := loaders.Middleware((*store.Store)(nil), cfg)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	w, r := httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/graphql", nil)
	allocs := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) })
	t.Logf("%.0f allocations a request", allocs)
	if allocs > 12 {
		t.Errorf("%.0f allocations for a request that asked for no loader, want at most 12", allocs)
	}
}
