package tests

import (
	"slices"
	"testing"
	"time"
)

// orderStatuses are every OrderStatus of the schema.
var orderStatuses = []string{"PENDING", "PAID", "SHIPPED", "DELIVERED", "CANCELLED"}

// pathTo is how an order reaches each status from PENDING with updateOrderStatus.
var pathTo = map[string][]string{
	"PENDING":   nil,
	"PAID":      {"PAID"},
	"SHIPPED":   {"PAID", "SHIPPED"},
	"DELIVERED": {"PAID", "SHIPPED", "DELIVERED"},
	"CANCELLED": {"CANCELLED"},
}

// historyEvent is an OrderStatusEvent as the status tests select it.
type historyEvent struct {
	ID             string
	Status         string
	PreviousStatus *string
	Note           *string
	At             string
	Order          struct{ ID string }
}

const opOrderHistory = `query($id: ID!) { order(id: $id) { status updatedAt
	history { id status previousStatus note at order { id } } } }`

// TestStatusTransitions is the contract's transition table: every status to every status,
// through updateOrderStatus and cancelOrder. Allowed moves are PENDING→PAID→SHIPPED→DELIVERED
// and PENDING/PAID→CANCELLED; anything else is INVALID_TRANSITION and changes nothing (status,
// history, stock). Every allowed move appends one event with the previous status and the note;
// cancelling puts the stock back.
func TestStatusTransitions(t *testing.T) {
	t.Parallel()
	type transitionCase struct {
		from, to string
		allowed  bool
	}
	allowedMoves := map[[2]string]bool{
		{"PENDING", "PAID"}: true, {"PAID", "SHIPPED"}: true, {"SHIPPED", "DELIVERED"}: true,
		{"PENDING", "CANCELLED"}: true, {"PAID", "CANCELLED"}: true,
	}
	var cases []transitionCase
	for _, from := range orderStatuses {
		for _, to := range orderStatuses {
			cases = append(cases, transitionCase{from, to, allowedMoves[[2]string{from, to}]})
		}
	}
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		product := env.createProduct(merchant, "Clock", 1000, 1000)
		history := func(id string) []historyEvent {
			var out struct {
				Order struct{ History []historyEvent }
			}
			env.as(admin.Token).must(opOrderHistory, map[string]any{"id": id}, &out)
			return out.Order.History
		}
		// reach places an order and moves it to status.
		reach := func(t *testing.T, status string) string {
			id := env.placeOrder(customer, line{product, 3})
			for _, s := range pathTo[status] {
				r, p := env.as(admin.Token).mutate("updateOrderStatus", opUpdateOrderStatus,
					map[string]any{"in": map[string]any{"id": id, "status": s}})
				requireOK(t, r, p)
			}
			return id
		}
		for _, via := range []string{"updateOrderStatus", "cancelOrder"} {
			for _, c := range cases {
				if via == "cancelOrder" && c.to != "CANCELLED" {
					continue
				}
				t.Run(via+"/"+c.from+"→"+c.to, func(t *testing.T) {
					id := reach(t, c.from)
					before, stockBefore := history(id), env.stock(product)
					var r gqlResponse
					var p *mutationPayload
					if via == "cancelOrder" {
						r, p = env.as(customer.Token).mutate("cancelOrder", opCancelOrder, map[string]any{"id": id})
					} else {
						r, p = env.as(admin.Token).mutate("updateOrderStatus", opUpdateOrderStatus,
							map[string]any{"in": map[string]any{"id": id, "status": c.to, "note": "to " + c.to}})
					}
					after := history(id)
					if !c.allowed {
						wantField := []string{"status"}
						if via == "cancelOrder" {
							wantField = nil
						}
						requireUserErrors(t, r, p, wantUserError{Code: "INVALID_TRANSITION", Field: wantField})
						if got := env.orderStatus(admin, id); got != c.from {
							t.Fatalf("status after a refused move = %s, want %s", got, c.from)
						}
						if len(after) != len(before) || env.stock(product) != stockBefore {
							t.Fatalf("a refused move changed history (%d → %d events) or stock (%d → %d)",
								len(before), len(after), stockBefore, env.stock(product))
						}
						return
					}
					requireOK(t, r, p)
					if p.Order.Status != c.to || p.Order.ID != id {
						t.Fatalf("payload order = %+v, want %s in %s", p.Order, id, c.to)
					}
					if len(after) != len(before)+1 {
						t.Fatalf("history grew from %d to %d events, want one more", len(before), len(after))
					}
					last := after[len(after)-1]
					if last.Status != c.to || last.PreviousStatus == nil || *last.PreviousStatus != c.from {
						t.Fatalf("last event = %s, want %s from %s", compactJSON(last), c.to, c.from)
					}
					wantNote := "to " + c.to
					if via == "cancelOrder" {
						if last.Note != nil {
							t.Fatalf("cancelOrder recorded note %q", *last.Note)
						}
					} else if last.Note == nil || *last.Note != wantNote {
						t.Fatalf("note = %v, want %q", last.Note, wantNote)
					}
					wantStock := stockBefore
					if c.to == "CANCELLED" {
						wantStock += 3
					}
					if got := env.stock(product); got != wantStock {
						t.Fatalf("stock = %d, want %d", got, wantStock)
					}
				})
			}
		}
	})
}

// TestOrderHistory checks an order's history through its whole life: oldest first, starting
// with the PENDING event of its creation (no previous status, no note), each later event
// naming the status it left and the note given, with non-decreasing RFC 3339 times.
func TestOrderHistory(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		product := env.createProduct(merchant, "Radio", 5000, 10)
		id := env.placeOrder(customer, line{product, 1})
		seller := env.as(merchant.Token)
		for _, step := range []struct{ status, note string }{{"PAID", "card ok"}, {"SHIPPED", ""}, {"DELIVERED", "left at door"}} {
			in := map[string]any{"id": id, "status": step.status}
			if step.note != "" {
				in["note"] = step.note
			}
			r, p := seller.mutate("updateOrderStatus", opUpdateOrderStatus, map[string]any{"in": in})
			requireOK(t, r, p)
		}
		var out struct {
			Order struct {
				Status    string
				UpdatedAt string
				History   []historyEvent
			}
		}
		env.as(customer.Token).must(opOrderHistory, map[string]any{"id": id}, &out)
		type step struct {
			status string
			prev   string // "" for none
			note   string // "" for none
		}
		want := []step{{"PENDING", "", ""}, {"PAID", "PENDING", "card ok"}, {"SHIPPED", "PAID", ""}, {"DELIVERED", "SHIPPED", "left at door"}}
		h := out.Order.History
		if out.Order.Status != "DELIVERED" || len(h) != len(want) {
			t.Fatalf("order %s with %d events, want DELIVERED with %d", out.Order.Status, len(h), len(want))
		}
		var ids []string
		var last time.Time
		for i, w := range want {
			e := h[i]
			got := step{status: e.Status}
			if e.PreviousStatus != nil {
				got.prev = *e.PreviousStatus
			}
			if e.Note != nil {
				got.note = *e.Note
			}
			if got != w {
				t.Fatalf("event %d = %+v, want %+v", i, got, w)
			}
			at, err := time.Parse(time.RFC3339Nano, e.At)
			if err != nil || at.Before(last) {
				t.Fatalf("event %d at %q (%v), previous at %v", i, e.At, err, last)
			}
			last = at
			if e.Order.ID != id || e.ID == "" || slices.Contains(ids, e.ID) {
				t.Fatalf("event %d: id %q (seen %v), order %s", i, e.ID, ids, e.Order.ID)
			}
			ids = append(ids, e.ID)
		}
		if u, err := time.Parse(time.RFC3339Nano, out.Order.UpdatedAt); err != nil || u.Before(last.Add(-time.Second)) {
			t.Fatalf("updatedAt %q before the last change %v", out.Order.UpdatedAt, last)
		}
	})
}

// TestUnitPriceSnapshot checks that an order keeps the price its products had when it was
// placed: later price changes touch neither unitPrice, subtotal nor total.
func TestUnitPriceSnapshot(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		product := env.createProduct(merchant, "Vase", 1500, 10)
		id := env.placeOrder(customer, line{product, 2})
		r, p := env.as(merchant.Token).mutate("updateProduct", opUpdateProduct, map[string]any{"in": map[string]any{"id": product, "price": 9900}})
		requireOK(t, r, p)
		var out struct {
			Order struct {
				Total struct{ Amount int }
				Items []orderItemView
			}
		}
		env.as(customer.Token).must(`query($id: ID!) { order(id: $id) { total { amount }
			items { quantity unitPrice { amount } subtotal { amount } product { id stock } } } }`, map[string]any{"id": id}, &out)
		if len(out.Order.Items) != 1 {
			t.Fatalf("items = %+v", out.Order.Items)
		}
		it := out.Order.Items[0]
		if it.UnitPrice.Amount != 1500 || it.Subtotal.Amount != 3000 || out.Order.Total.Amount != 3000 {
			t.Fatalf("after a price change: unitPrice %d, subtotal %d, total %d; want 1500, 3000, 3000",
				it.UnitPrice.Amount, it.Subtotal.Amount, out.Order.Total.Amount)
		}
		if got := env.product(product).Price.Amount; got != 9900 {
			t.Fatalf("product price = %d, want 9900", got)
		}
		// A new order pays the new price.
		r, p = env.as(customer.Token).mutate("placeOrder", opPlaceOrder, map[string]any{"in": map[string]any{"items": orderItems(product, 1)}})
		requireOK(t, r, p)
		if p.Order.Items[0].UnitPrice.Amount != 9900 || p.Order.Total.Amount != 9900 {
			t.Fatalf("new order = %s, want unitPrice 9900", compactJSON(p.Order))
		}
	})
}
