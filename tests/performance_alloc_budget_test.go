package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// Allocation budgets per request, on either backend, with the cache warm. Durations cannot
// be asserted in CI; allocations can, and they follow CPU time closely. Set each to about
// 1.25× the larger figure TestAllocationBudget logs (embedded allocates more than
// PostgreSQL), and lower it whenever the figure falls. Measured at 6462b03 (Go 1.26): W1
// 12,744 embedded, 11,170 PostgreSQL; W2 15,444 and 13,842. Measured when last set (gqlgen
// v0.17.98, computed fields as methods, batch resolvers, cursors encoded on demand): W1
// 10,541 and 8,968; W2 14,498 and 12,907. gqlgen's batch resolvers allocate per list and per
// parent (W2 +9% over per-parent resolvers) and buy the levels that no longer wait for the
// batch window. Without a @defer group per object (graph/exec/deferred.go): W1 9,487 and 7,914;
// W2 12,369 and 10,776. Once W2's nested levels stopped waiting for the window (a Whole
// level reads the levels below it, cached keys skip dataloader's Load): W2 11,962 and
// 10,372. With the executor's plain fields, objects and batch results rewritten
// (graph/internal/execgen), Money's currency a method, rows scanned into one row and
// pooled response buffers: W1 3,385 and 1,812; W2 6,717 and 5,127. With cache entries
// decoded in place and an object's resolver fields resolved in turn (graph/exec/later.go): W1
// 2,392 and 1,667; W2 5,360 and 4,618; with PostgreSQL's reads scanned through pgx
// (store/scan.go) 2,395 and 1,238, 5,367 and 4,328; with an object in one allocation
// (graph/exec/object.go) 2,197 and 1,040, 5,053 and 4,014. With a batch field of a list's
// element resolved once for the list and marshaled without ResolveField, a list's batch
// group in one context node, an item's products the batch parents of their merchants
// (graph/exec/batch.go) and a price written from its value (exec.PlainObject): W1 2,047 and
// 892; W2 4,184 and 3,158; with an object's resolver fields resolved at once, without a
// closure, until one waits (LaterFields.Now): W1 1,996 and 848, W2 4,070 and 3,040. With
// W2's order page reading its items, events, products and merchants ahead in one pgx batch
// of statements written once (store/readahead.go): W2 3,988 and 2,444 (main beside it: 4,121
// and 3,081). The
// race detector adds up to 11% (sync.Pool drops items under it), inside the headroom, so
// the budgets hold under -race too. Since the response cache, W1 is measured with it off (an
// anonymous W1 was a cache hit: 168 allocations), as BenchmarkServerProcess runs it: 1,921
// and 877 then. Each backend now has budgets of its own, since PostgreSQL's figures are far
// below the embedded one's and a budget set for the embedded one let them grow unseen.
// With a page read completed on the caller's gorm chain, its rows sized from its LIMIT and
// its text in one arena (store/scan.go), a list's elements in one allocation, an
// operation's objects and prices from chunks (exec.Objects) and an element's own batch
// read from its context (exec.elementBatch): W1 1,686 and 434; W2 3,698 and 2,639. Both
// together: W2 3,615 and 2,119. The storefront's merchants read without a snapshot's
// BEGIN and COMMIT: W1 on PostgreSQL 371. With the storefront's merchants read with its
// page, the executor's leaves, lists and batch fields without per-field values
// (graph/exec), and the HTTP path's headers, cost and access line appended by hand: W1 1,673
// and 356; W2 2,831 and 1,224 (under -race 1,694 and 366; 2,955 and 1,245). The storefront's
// merchants joined to its page's statement: W1 on PostgreSQL 321. The loaders' own cache,
// which keeps primed values without a thunk each: W2 on PostgreSQL 1,145. With the cost of
// a query without variables kept: W1 1,654 and 299; W2 2,780 and 1,120 (under -race 1,674
// and 308; 2,917 and 1,137).
var allocBudgets = map[string]struct{ w1, w2 int }{
	// W1: products(first: 50) with merchants; W2: an order history of 20 orders, items,
	// products, history.
	"embedded": {w1: 1_820, w2: 3_060},
	"postgres": {w1: 330, w2: 1_240},
}

// allocRuns is how many requests each figure averages.
const allocRuns = 100

// TestAllocationBudget counts the allocations of one W1 and one W2 request through the real
// HTTP handler in the production configuration (limits, rate limit and masked errors on),
// on a small shop: 3 merchants of 20 products, one customer with 20 orders of 1–3 items.
// It counts every goroutine's allocations (runtime.MemStats), the loaders' batch windows
// included, and fails when a workload exceeds its budget.
func TestAllocationBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a shop and sends hundreds of requests")
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			env, token := newAllocEnv(t, be)
			for _, w := range []struct {
				name, query, token string
				budget             int
			}{
				{"W1", benchW1, "", allocBudgets[be.name].w1},
				{"W2", benchW2, token, allocBudgets[be.name].w2},
			} {
				t.Run(w.name, func(t *testing.T) {
					allocs, bytes := allocsPerRequest(t, env.svc.Handler(), w.query, w.token)
					t.Logf("%s on %s: %.0f allocs and %.0f B per request (budget %d allocs)", w.name, be.name, allocs, bytes, w.budget)
					if allocs > float64(w.budget) {
						t.Errorf("%s allocates %.0f times a request, over its budget of %d (%+.0f%%). "+
							"If the increase is intended, raise %s's budget in allocBudgets (tests/performance_alloc_budget_test.go) to about 1.25× the new figure; "+
							"otherwise find the allocations: go test ./tests -run 'TestAllocationBudget/%s/%s' -memprofile mem.out",
							w.name, allocs, w.budget, 100*(allocs/float64(w.budget)-1), strings.ToLower(w.name), be.name, w.name)
					}
				})
			}
		})
	}
}

// newAllocEnv starts the service on be in the production configuration and seeds the small
// shop of TestAllocationBudget; it returns the service and the token of its one customer.
func newAllocEnv(t *testing.T, be backend) (*testEnv, string) {
	t.Helper()
	cfg := be.config(t)
	cfg.Production = true
	// The executor's allocations are budgeted, as BenchmarkServerProcess measures W1: an
	// anonymous W1 would otherwise be answered by the response cache.
	cfg.NoResponseCache = true
	cfg.RateLimit = guard.RateLimit{PointsPerMinute: benchRateLimit, LoginFailuresPerAccount: 10,
		LoginFailuresPerIP: 50, LoginWindow: 15 * time.Minute}
	env := newTestEnv(t, cfg)
	return env, seedAllocShop(t, env.svc)
}

// seedAllocShop seeds the small shop of TestAllocationBudget and returns its customer's token.
func seedAllocShop(tb testing.TB, svc *service) string {
	tb.Helper()
	shop := seedShop(tb, svc.Store, storetest.Shop{
		Merchants: 3, ProductsPerMerchant: 20, Stock: 1000, Customers: 1,
		OrdersOf: func(int) int { return 20 },
		ItemsOf:  func(o int) int { return 1 + o%3 },
	})
	token, err := svc.Tokens.Issue(store.User{ID: shop.CustomerIDs[0], Role: store.RoleCustomer})
	if err != nil {
		tb.Fatal(err)
	}
	return token
}

// BenchmarkRequestPath sends W1 and W2 through the handler in-process on the shop of
// TestAllocationBudget, from GOMAXPROCS goroutines, to compare allocations and CPU time of
// the request path between changes (benchstat), on PostgreSQL and Redis;
// BenchmarkServerProcess gives the real figures.
//
//	DATABASE_URL=… REDIS_URL=… go test ./tests -run '^$' -bench RequestPath -count 6
func BenchmarkRequestPath(b *testing.B) {
	redisURL := storetest.RedisURL(b)
	svc, err := startService(context.Background(), config{DatabaseURL: storetest.PostgresURL(b), RedisURL: redisURL,
		RedisPrefix: storetest.RedisPrefix(b, redisURL), Production: true, PasswordCost: 4, NoResponseCache: true,
		JWTSecret: []byte(benchSecret), RateLimit: guard.RateLimit{PointsPerMinute: benchRateLimit,
			LoginFailuresPerAccount: 10, LoginFailuresPerIP: 50, LoginWindow: 15 * time.Minute}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Close)
	token := seedAllocShop(b, svc)
	h := svc.Handler()
	for _, w := range []struct{ name, query, token string }{{"W1", benchW1, ""}, {"W2", benchW2, token}} {
		body := fmt.Sprintf(`{"query":%q}`, w.query)
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(4) // 4×GOMAXPROCS requests in flight, as wrk's concurrency 8 on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
					r.Header.Set("Content-Type", "application/json")
					if w.token != "" {
						r.Header.Set("Authorization", "Bearer "+w.token)
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"errors"`) {
						b.Errorf("status %d: %.300s", rec.Code, rec.Body.String())
						return
					}
				}
			})
		})
	}
}

// allocsPerRequest warms the cache with a few requests, then returns the mallocs and bytes
// allocated per request over allocRuns, each on a request and recorder built beforehand so
// that only the handler's allocations count.
func allocsPerRequest(t *testing.T, h http.Handler, query, token string) (allocs, bytes float64) {
	t.Helper()
	body := fmt.Sprintf(`{"query":%q}`, query)
	newRequest := func() (*http.Request, *httptest.ResponseRecorder) {
		r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return r, httptest.NewRecorder()
	}
	check := func(w *httptest.ResponseRecorder) {
		t.Helper()
		if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"errors"`) {
			t.Fatalf("status %d: %.500s", w.Code, w.Body.String())
		}
	}
	for range 5 {
		r, w := newRequest()
		h.ServeHTTP(w, r)
		check(w)
	}
	// AllocsPerRun calls f once more to warm up.
	reqs := make([]*http.Request, allocRuns+1)
	recs := make([]*httptest.ResponseRecorder, allocRuns+1)
	for i := range reqs {
		reqs[i], recs[i] = newRequest()
	}
	next := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs = testing.AllocsPerRun(allocRuns, func() {
		h.ServeHTTP(recs[next], reqs[next])
		next++
	})
	runtime.ReadMemStats(&after)
	for _, w := range recs {
		check(w)
	}
	return allocs, float64(after.TotalAlloc-before.TotalAlloc) / float64(allocRuns+1)
}
