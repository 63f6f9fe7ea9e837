package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shop/api/store"
)

// A success that reaches the service while the order is still PENDING past its reservation
// (its expiry job has not run yet) is a late success: the payment is SUCCEEDED with a refund
// asked for, the order is expired there and then (stock back, "reservation expired"), and
// the expiry job that comes later changes nothing.
func TestLateSuccessExpiresAnOrderPastItsReservation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		merchant := mustCreateUser(t, s, store.RoleMerchant)
		customer := mustCreateUser(t, s, store.RoleCustomer)
		p := mustCreateProduct(t, s, merchant, 100, 10)
		o := mustPlaceOrder(t, s, customer, 4, p)
		pay, err := s.StartPayment(ctx, customer, store.NewPayment{OrderID: o.ID, IdempotencyKey: "k", Provider: store.ProviderTest})
		if err != nil {
			t.Fatal(err)
		}
		past := time.Now().UTC().Add(-time.Minute).Format("2006-01-02 15:04:05")
		if err := store.ExecForTest(ctx, s, fmt.Sprintf("UPDATE orders SET reserved_until = '%s' WHERE id = %d", past, o.ID)); err != nil {
			t.Fatal(err)
		}
		got, err := s.SettleTestPayment(ctx, customer, pay.ID, true)
		if err != nil || got.Status != store.PaymentSucceeded || !got.RefundRequested {
			t.Fatalf("late success = %+v, %v; want SUCCEEDED with a refund asked for", got, err)
		}
		orders, _ := s.FindOrdersByIDs(ctx, []int64{o.ID})
		if orders[0].Status != store.StatusCancelled || orders[0].ReservedUntil != nil {
			t.Fatalf("order after a late success = %+v, want CANCELLED without reservedUntil", orders[0])
		}
		events, _ := s.FindEventsByOrderIDs(ctx, []int64{o.ID})
		if len(events) != 2 || events[1].Note == nil || *events[1].Note != "reservation expired" {
			t.Fatalf("events = %+v, want the expiry", events)
		}
		if wait, err := s.ExpireOrder(ctx, o.ID); err != nil || wait != 0 {
			t.Fatalf("the late expiry job: %v %v", wait, err)
		}
		if events, _ := s.FindEventsByOrderIDs(ctx, []int64{o.ID}); len(events) != 2 {
			t.Fatalf("the expiry job appended an event: %+v", events)
		}
		if got := mustFindProduct(t, s, p.ID).Stock; got != 10 {
			t.Fatalf("stock = %d, want 10", got)
		}
	})
}

// Expiring one order from many goroutines at once cancels it once: one event, the stock
// back once. An order whose reservation runs says how long to wait.
func TestExpireOrderOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		merchant := mustCreateUser(t, s, store.RoleMerchant)
		customer := mustCreateUser(t, s, store.RoleCustomer)
		p := mustCreateProduct(t, s, merchant, 100, 10)
		o := mustPlaceOrder(t, s, customer, 3, p)
		if wait, err := s.ExpireOrder(ctx, o.ID); err != nil || wait != 0 {
			t.Fatalf("an order without a reservation: wait %v, %v", wait, err)
		}
		future := time.Now().UTC().Add(time.Hour).Format("2006-01-02 15:04:05")
		if err := store.ExecForTest(ctx, s, fmt.Sprintf("UPDATE orders SET reserved_until = '%s' WHERE id = %d", future, o.ID)); err != nil {
			t.Fatal(err)
		}
		if wait, err := s.ExpireOrder(ctx, o.ID); err != nil || wait < 59*time.Minute {
			t.Fatalf("an order reserved for an hour: wait %v, %v", wait, err)
		}
		past := time.Now().UTC().Add(-time.Second).Format("2006-01-02 15:04:05")
		if err := store.ExecForTest(ctx, s, fmt.Sprintf("UPDATE orders SET reserved_until = '%s' WHERE id = %d", past, o.ID)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := s.ExpireOrder(ctx, o.ID); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		events, _ := s.FindEventsByOrderIDs(ctx, []int64{o.ID})
		if len(events) != 2 || events[1].Status != store.StatusCancelled {
			t.Fatalf("events = %+v, want creation and one cancellation", events)
		}
		if got := mustFindProduct(t, s, p.ID).Stock; got != 10 {
			t.Fatalf("stock = %d, want 10", got)
		}
	})
}
