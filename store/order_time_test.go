package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/shop/api/store"
)

// Orders placed at once, queueing for the same stock rows, must still show createdAt in the
// order of every list (newest first), whichever page a client reads.
func TestRacingOrdersListInCreatedAtOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		merchant := mustCreateUser(t, s, store.RoleMerchant)
		admin := mustCreateAdmin(t, s)
		products := []store.Product{
			mustCreateProduct(t, s, merchant, 100, 1000),
			mustCreateProduct(t, s, merchant, 200, 1000),
			mustCreateProduct(t, s, merchant, 300, 1000),
		}
		customers := make([]store.Viewer, 5)
		for i := range customers {
			customers[i] = mustCreateUser(t, s, store.RoleCustomer)
		}
		const orders = 100
		var wg sync.WaitGroup
		errs := make(chan error, orders)
		for i := range orders {
			wg.Go(func() {
				// Every order takes the first product, so they all queue on its row.
				lines := []store.OrderLine{{ProductID: products[0].ID, Quantity: 1}, {ProductID: products[1+i%2].ID, Quantity: 1}}
				if _, err := s.PlaceOrder(ctx, customers[i%len(customers)], store.NewOrder{Lines: lines}); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("place order: %v", err)
		}

		checkNewestFirst := func(name string, list []store.Order, want int) {
			t.Helper()
			if len(list) != want {
				t.Errorf("%s: %d orders, want %d", name, len(list), want)
			}
			for i := 1; i < len(list); i++ {
				if list[i].CreatedAt.After(list[i-1].CreatedAt) {
					t.Errorf("%s: order #%d at position %d was created after #%d before it:%s",
						name, list[i].ID, i, list[i-1].ID, describe(list[max(0, i-3):min(len(list), i+3)]))
					return
				}
			}
		}
		all := store.OrderFilter{VisibleTo: &admin}
		first, err := s.FindOrders(ctx, all, store.PageArgs{First: store.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		checkNewestFirst("admin's first page", first.Orders, orders)
		checkNewestFirst("admin's pages of 7", walkOrders(t, s, all, 7), orders)
		checkNewestFirst("merchant's pages of 9", walkOrders(t, s, store.OrderFilter{VisibleTo: &merchant}, 9), orders)

		ids := make([]int64, len(customers))
		for i, c := range customers {
			ids[i] = c.UserID
			mine := store.OrderFilter{CustomerID: &c.UserID}
			checkNewestFirst("a customer's pages of 3", walkOrders(t, s, mine, 3), orders/len(customers))
		}
		pages, err := s.FindOrdersOfCustomers(ctx, ids, nil, store.PageArgs{First: store.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			checkNewestFirst("a customer's batched page", pages[id].Orders, orders/len(customers))
		}
	})
}
