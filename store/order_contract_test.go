package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/shop/api/store"
)

// Concurrent orders never take more stock than there is: exactly the stock's worth succeed,
// the rest fail with INSUFFICIENT_STOCK, and the stock ends at zero.
func TestConcurrentOrdersNeverTakeMoreThanTheStock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		merchant := mustCreateUser(t, s, store.RoleMerchant)
		customer := mustCreateUser(t, s, store.RoleCustomer)
		const stock, buyers = 10, 30
		scarce := mustCreateProduct(t, s, merchant, 100, stock)
		plenty := mustCreateProduct(t, s, merchant, 100, 1000)
		codes := make(chan store.Code, buyers)
		var wg sync.WaitGroup
		for i := range buyers {
			wg.Go(func() {
				// Lines in both product orders: takes must not deadlock.
				lines := []store.OrderLine{{ProductID: scarce.ID, Quantity: 1}, {ProductID: plenty.ID, Quantity: 1}}
				if i%2 == 1 {
					slices.Reverse(lines)
				}
				_, err := s.PlaceOrder(context.Background(), customer, store.NewOrder{Lines: lines})
				codes <- store.ErrorCode(err)
			})
		}
		wg.Wait()
		close(codes)
		count := map[store.Code]int{}
		for c := range codes {
			count[c]++
		}
		if count[""] != stock || count[store.CodeInsufficientStock] != buyers-stock {
			t.Errorf("outcomes %v, want %d placed and %d INSUFFICIENT_STOCK", count, stock, buyers-stock)
		}
		if got := mustFindProduct(t, s, scarce.ID).Stock; got != 0 {
			t.Errorf("scarce stock %d, want 0", got)
		}
		if got := mustFindProduct(t, s, plenty.ID).Stock; got != 1000-stock {
			t.Errorf("plentiful stock %d, want %d: a failed order kept its other line's units", got, 1000-stock)
		}
	})
}

// An idempotency key places one order: repeats with the same items, one after another or at
// once, return it without taking stock again; other items under the key are a conflict.
func TestIdempotencyKeyPlacesOneOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		merchant := mustCreateUser(t, s, store.RoleMerchant)
		customer := mustCreateUser(t, s, store.RoleCustomer)
		other := mustCreateUser(t, s, store.RoleCustomer)
		a := mustCreateProduct(t, s, merchant, 100, 100)
		b := mustCreateProduct(t, s, merchant, 200, 100)
		in := store.NewOrder{IdempotencyKey: "k-1", Lines: []store.OrderLine{{ProductID: a.ID, Quantity: 2}, {ProductID: b.ID, Quantity: 1}}}
		first, err := s.PlaceOrder(ctx, customer, in)
		if err != nil {
			t.Fatal(err)
		}
		ids := make(chan int64, 10)
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				// The same items in another line order are the same request.
				again := store.NewOrder{IdempotencyKey: "k-1", Lines: []store.OrderLine{in.Lines[1], in.Lines[0]}}
				o, err := s.PlaceOrder(ctx, customer, again)
				if err != nil {
					t.Errorf("repeat: %v", err)
				}
				ids <- o.ID
			})
		}
		wg.Wait()
		close(ids)
		for id := range ids {
			if id != first.ID {
				t.Errorf("a repeat placed order %d, want %d", id, first.ID)
			}
		}
		if got := mustFindProduct(t, s, a.ID).Stock; got != 98 {
			t.Errorf("stock %d after one order and its repeats, want 98", got)
		}
		changed := store.NewOrder{IdempotencyKey: "k-1", Lines: []store.OrderLine{{ProductID: a.ID, Quantity: 3}}}
		_, err = s.PlaceOrder(ctx, customer, changed)
		wantCode(t, err, store.CodeIdempotencyConflict, "same key, other items")
		// Keys belong to their customer.
		o, err := s.PlaceOrder(ctx, other, in)
		if err != nil || o.ID == first.ID {
			t.Fatalf("another customer's order under the same key: %+v, %v", o, err)
		}
	})
}

// Concurrent keyed requests racing for one key all get the one order it placed.
func TestConcurrentFirstUsesOfAKeyPlaceOneOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		merchant := mustCreateUser(t, s, store.RoleMerchant)
		customer := mustCreateUser(t, s, store.RoleCustomer)
		p := mustCreateProduct(t, s, merchant, 100, 100)
		in := store.NewOrder{IdempotencyKey: "race", Lines: []store.OrderLine{{ProductID: p.ID, Quantity: 1}}}
		ids := make(chan int64, 12)
		var wg sync.WaitGroup
		for range cap(ids) {
			wg.Go(func() {
				o, err := s.PlaceOrder(context.Background(), customer, in)
				if err != nil {
					t.Errorf("place: %v", err)
				}
				ids <- o.ID
			})
		}
		wg.Wait()
		close(ids)
		var distinct []int64
		for id := range ids {
			if !slices.Contains(distinct, id) {
				distinct = append(distinct, id)
			}
		}
		if len(distinct) != 1 || mustFindProduct(t, s, p.ID).Stock != 99 {
			t.Errorf("orders %v and stock %d, want one order and 99 left", distinct, mustFindProduct(t, s, p.ID).Stock)
		}
	})
}

// Every pair of statuses: a move is allowed exactly when the transition table says so, it
// is recorded in the history, and cancelling puts the stock back.
func TestStatusTransitions(t *testing.T) {
	statuses := []store.OrderStatus{store.StatusPending, store.StatusPaid, store.StatusShipped, store.StatusDelivered, store.StatusCancelled}
	// pathTo lists the moves that bring a new order to each status.
	pathTo := map[store.OrderStatus][]store.OrderStatus{
		store.StatusPending:   nil,
		store.StatusPaid:      {store.StatusPaid},
		store.StatusShipped:   {store.StatusPaid, store.StatusShipped},
		store.StatusDelivered: {store.StatusPaid, store.StatusShipped, store.StatusDelivered},
		store.StatusCancelled: {store.StatusCancelled},
	}
	allowed := map[[2]store.OrderStatus]bool{
		{store.StatusPending, store.StatusPaid}: true, {store.StatusPending, store.StatusCancelled}: true,
		{store.StatusPaid, store.StatusShipped}: true, {store.StatusPaid, store.StatusCancelled}: true,
		{store.StatusShipped, store.StatusDelivered}: true,
	}
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		merchant := mustCreateUser(t, s, store.RoleMerchant)
		customer := mustCreateUser(t, s, store.RoleCustomer)
		p := mustCreateProduct(t, s, merchant, 100, 1000)
		for _, from := range statuses {
			for _, to := range statuses {
				o := mustPlaceOrder(t, s, customer, 3, p)
				for _, step := range pathTo[from] {
					if _, err := s.UpdateOrderStatus(ctx, merchant, o.ID, step, nil); err != nil {
						t.Fatalf("%s → %s on the way to %s: %v", o.Status, step, from, err)
					}
				}
				stock := mustFindProduct(t, s, p.ID).Stock
				got, err := s.UpdateOrderStatus(ctx, merchant, o.ID, to, nil)
				if !allowed[[2]store.OrderStatus{from, to}] {
					wantCode(t, err, store.CodeInvalidTransition, string(from)+" → "+string(to))
					continue
				}
				if err != nil || got.Status != to {
					t.Fatalf("%s → %s: %+v, %v", from, to, got, err)
				}
				history, err := s.FindEventsByOrderIDs(ctx, []int64{o.ID})
				if err != nil || len(history) != len(pathTo[from])+2 || history[len(history)-1].Status != to ||
					*history[len(history)-1].PreviousStatus != from {
					t.Errorf("%s → %s: history %+v, %v", from, to, history, err)
				}
				wantStock := stock
				if to == store.StatusCancelled {
					wantStock += 3
				}
				if got := mustFindProduct(t, s, p.ID).Stock; got != wantStock {
					t.Errorf("%s → %s: stock %d, want %d", from, to, got, wantStock)
				}
			}
		}
	})
}

// Who may move an order: the customer only cancels, another customer does not see it, a
// merchant manages only orders of nothing but its products, an admin anything.
func TestWhoMayChangeAnOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m1, m2 := mustCreateUser(t, s, store.RoleMerchant), mustCreateUser(t, s, store.RoleMerchant)
		customer, stranger := mustCreateUser(t, s, store.RoleCustomer), mustCreateUser(t, s, store.RoleCustomer)
		admin := mustCreateAdmin(t, s)
		p1, p2 := mustCreateProduct(t, s, m1, 100, 100), mustCreateProduct(t, s, m2, 100, 100)
		type changeCase struct {
			name   string
			viewer store.Viewer
			cancel bool // CancelOrder rather than UpdateOrderStatus(PAID)
			mixed  bool // an order of both merchants' products
			want   store.Code
		}
		for _, c := range []changeCase{
			{"customer pays", customer, false, false, store.CodeForbidden},
			{"customer cancels", customer, true, false, ""},
			{"stranger cancels", stranger, true, false, store.CodeNotFound},
			{"stranger pays", stranger, false, false, store.CodeNotFound},
			{"merchant of every line", m1, false, false, ""},
			{"merchant of one line of two", m1, false, true, store.CodeForbidden},
			{"merchant of no line", m2, false, false, store.CodeNotFound},
			{"admin of a mixed order", admin, false, true, ""},
			{"anonymous", store.Viewer{}, true, false, store.CodeUnauthenticated},
		} {
			products := []store.Product{p1}
			if c.mixed {
				products = append(products, p2)
			}
			o := mustPlaceOrder(t, s, customer, 1, products...)
			var err error
			if c.cancel {
				_, err = s.CancelOrder(ctx, c.viewer, o.ID)
			} else {
				_, err = s.UpdateOrderStatus(ctx, c.viewer, o.ID, store.StatusPaid, nil)
			}
			if got := store.ErrorCode(err); got != c.want {
				t.Errorf("%s: %v (code %q), want %q", c.name, err, got, c.want)
			}
		}
	})
}

// Lists show each viewer the orders it may see: a customer its own, a merchant those with
// its products (and its own), an admin all of them.
func TestOrderListsShowWhatTheViewerMaySee(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		m1, m2 := mustCreateUser(t, s, store.RoleMerchant), mustCreateUser(t, s, store.RoleMerchant)
		c1, c2 := mustCreateUser(t, s, store.RoleCustomer), mustCreateUser(t, s, store.RoleCustomer)
		admin := mustCreateAdmin(t, s)
		p1, p2 := mustCreateProduct(t, s, m1, 100, 100), mustCreateProduct(t, s, m2, 100, 100)
		o1 := mustPlaceOrder(t, s, c1, 1, p1).ID     // m1's
		o2 := mustPlaceOrder(t, s, c1, 1, p2).ID     // m2's
		o3 := mustPlaceOrder(t, s, c2, 1, p1, p2).ID // both
		o4 := mustPlaceOrder(t, s, m1, 1, p2).ID     // placed by m1 from m2
		type listCase struct {
			name   string
			viewer store.Viewer
			want   []int64
		}
		for _, c := range []listCase{
			{"customer 1", c1, []int64{o2, o1}},
			{"customer 2", c2, []int64{o3}},
			{"merchant 1", m1, []int64{o4, o3, o1}},
			{"merchant 2", m2, []int64{o4, o3, o2}},
			{"admin", admin, []int64{o4, o3, o2, o1}},
		} {
			f := store.OrderFilter{VisibleTo: &c.viewer}
			if got := orderIDs(walkOrders(t, s, f, 2)); !slices.Equal(got, c.want) {
				t.Errorf("%s sees %v, want %v", c.name, got, c.want)
			}
			if n, err := s.CountOrders(ctx, f); err != nil || n != len(c.want) {
				t.Errorf("%s counts %d (%v), want %d", c.name, n, err, len(c.want))
			}
		}
		_, err := s.FindOrders(ctx, store.OrderFilter{VisibleTo: &store.Viewer{}}, store.PageArgs{First: 5})
		wantCode(t, err, store.CodeUnauthenticated, "anonymous list")
		paid := store.StatusPaid
		if _, err := s.UpdateOrderStatus(ctx, admin, o3, paid, nil); err != nil {
			t.Fatal(err)
		}
		f := store.OrderFilter{VisibleTo: &m1, Status: &paid}
		if got := orderIDs(walkOrders(t, s, f, 2)); !slices.Equal(got, []int64{o3}) {
			t.Errorf("merchant 1's paid orders: %v, want [%d]", got, o3)
		}
	})
}
