package store_test

import (
	"context"
	"fmt"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// The contract of the store: the rules that live in SQL, checked against every backend
// alike, as one repository test runs against every implementation of the repository.

// backend opens a fresh, empty store.
type backend struct {
	name string
	open func(testing.TB) *store.Store
}

var backends = []backend{
	{"postgres", func(tb testing.TB) *store.Store {
		return openStore(tb, store.Config{DatabaseURL: storetest.PostgresURL(tb), MaxConns: 8})
	}},
	{"sqlite", func(tb testing.TB) *store.Store {
		return openStore(tb, store.Config{SQLitePath: storetest.SQLitePath(tb)})
	}},
}

// forEachBackend runs test as a parallel subtest on a fresh store of each backend.
func forEachBackend(t *testing.T, test func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.open(t))
		})
	}
}

func openStore(tb testing.TB, cfg store.Config) *store.Store {
	tb.Helper()
	cfg.PasswordCost = bcrypt.MinCost
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// mustCreateUser signs up a user of role (CUSTOMER or MERCHANT) and returns its viewer.
func mustCreateUser(tb testing.TB, s *store.Store, role store.Role) store.Viewer {
	tb.Helper()
	u, err := s.CreateUser(context.Background(), store.NewUser{
		Email: storetest.Name("u") + "@example.com", Name: "Test " + string(role), Password: "password123", Role: role,
	})
	if err != nil {
		tb.Fatalf("create %s: %v", role, err)
	}
	return store.Viewer{UserID: u.ID, Role: u.Role}
}

// mustCreateAdmin returns the viewer of a new ADMIN.
func mustCreateAdmin(tb testing.TB, s *store.Store) store.Viewer {
	tb.Helper()
	u, err := s.EnsureAdmin(context.Background(), storetest.Name("admin")+"@example.com", "password123")
	if err != nil {
		tb.Fatalf("create admin: %v", err)
	}
	return store.Viewer{UserID: u.ID, Role: u.Role}
}

// mustCreateProduct creates a product of merchant with this price and stock.
func mustCreateProduct(tb testing.TB, s *store.Store, merchant store.Viewer, price, stock int) store.Product {
	tb.Helper()
	p, err := s.CreateProduct(context.Background(), merchant, store.NewProduct{
		Name: storetest.Name("product "), Price: price, Stock: stock,
	})
	if err != nil {
		tb.Fatalf("create product: %v", err)
	}
	return p
}

// mustPlaceOrder places an order of quantity units of each product.
func mustPlaceOrder(tb testing.TB, s *store.Store, customer store.Viewer, quantity int, products ...store.Product) store.Order {
	tb.Helper()
	var in store.NewOrder
	for _, p := range products {
		in.Lines = append(in.Lines, store.OrderLine{ProductID: p.ID, Quantity: quantity})
	}
	o, err := s.PlaceOrder(context.Background(), customer, in)
	if err != nil {
		tb.Fatalf("place order: %v", err)
	}
	return o
}

// mustFindProduct returns the product with this ID.
func mustFindProduct(tb testing.TB, s *store.Store, id int64) store.Product {
	tb.Helper()
	ps, err := s.FindProductsByIDs(context.Background(), []int64{id})
	if err != nil || len(ps) != 1 {
		tb.Fatalf("find product %d: %v (%d found)", id, err, len(ps))
	}
	return ps[0]
}

// walkOrders returns every order matching f, read page by page of size first.
func walkOrders(tb testing.TB, s *store.Store, f store.OrderFilter, first int) []store.Order {
	tb.Helper()
	var all []store.Order
	page := store.PageArgs{First: first}
	for range 10_000 {
		p, err := s.FindOrders(context.Background(), f, page)
		if err != nil {
			tb.Fatalf("find orders after %q: %v", page.After, err)
		}
		all = append(all, p.Orders...)
		if !p.HasNext {
			return all
		}
		page.After = p.Cursor(len(p.Cursors) - 1)
	}
	tb.Fatalf("find orders: no last page")
	return nil
}

// orderIDs returns the IDs of orders, in their order.
func orderIDs(orders []store.Order) []int64 {
	ids := make([]int64, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	return ids
}

// wantCode fails the test unless err has code want.
func wantCode(tb testing.TB, err error, want store.Code, what string) {
	tb.Helper()
	if got := store.ErrorCode(err); got != want {
		tb.Fatalf("%s: %v (code %s), want %s", what, err, got, want)
	}
}

// describe is a short text of orders for failure messages.
func describe(orders []store.Order) string {
	s := ""
	for _, o := range orders {
		s += fmt.Sprintf(" #%d@%s", o.ID, o.CreatedAt.Format("15:04:05.000000"))
	}
	return s
}
