package tests

import (
	"slices"
	"testing"
)

// TestPlaceOrderValidation checks placeOrder's input rules and their exact field paths:
// quantity 1–1,000 a line, 1–50 lines, lines of one product combined (and the sum capped, the
// error on the first such line), an unknown productId NOT_FOUND on its productId, every short
// line INSUFFICIENT_STOCK on its quantity, and a total beyond Int INVALID_INPUT on ["items"].
// A refused order changes no stock, which the test checks after every case.
func TestPlaceOrderValidation(t *testing.T) {
	t.Parallel()
	// line names a product of the fixture by key and a quantity.
	type line struct {
		product string
		qty     int
	}
	type orderCase struct {
		name  string
		lines []line
		// want is the userErrors of a refused order; nil means the order is placed.
		want []wantUserError
		// wantItems are the order's lines after combining, on success.
		wantItems []line
		wantTotal int
	}
	repeat := func(l line, n int) []line {
		out := make([]line, n)
		for i := range out {
			out[i] = l
		}
		return out
	}
	on := func(code string, path ...string) wantUserError { return wantUserError{Code: code, Field: path} }
	cases := []orderCase{
		{name: "one line", lines: []line{{"A", 2}}, wantItems: []line{{"A", 2}}, wantTotal: 200},
		{name: "quantity 1000", lines: []line{{"A", 1000}}, wantItems: []line{{"A", 1000}}, wantTotal: 100_000},
		{name: "quantity 0", lines: []line{{"A", 0}}, want: []wantUserError{on("INVALID_INPUT", "items", "0", "quantity")}},
		{name: "negative quantity", lines: []line{{"A", -1}}, want: []wantUserError{on("INVALID_INPUT", "items", "0", "quantity")}},
		{name: "quantity 1001", lines: []line{{"A", 1001}}, want: []wantUserError{on("INVALID_INPUT", "items", "0", "quantity")}},
		{name: "second line over", lines: []line{{"A", 1}, {"B", 1001}}, want: []wantUserError{on("INVALID_INPUT", "items", "1", "quantity")}},
		{name: "no lines", lines: []line{}, want: []wantUserError{on("INVALID_INPUT", "items")}},
		{name: "50 lines", lines: repeat(line{"A", 1}, 50), wantItems: []line{{"A", 50}}, wantTotal: 5_000},
		{name: "51 lines", lines: repeat(line{"A", 1}, 51), want: []wantUserError{on("INVALID_INPUT", "items")}},
		{name: "same product combined", lines: []line{{"A", 2}, {"B", 1}, {"A", 3}},
			wantItems: []line{{"A", 5}, {"B", 1}}, wantTotal: 700},
		{name: "combined quantity capped", lines: []line{{"A", 600}, {"A", 401}},
			want: []wantUserError{on("INVALID_INPUT", "items", "0", "quantity")}},
		{name: "combined cap reported on the first such line", lines: []line{{"B", 1}, {"A", 500}, {"B", 1}, {"A", 501}},
			want: []wantUserError{on("INVALID_INPUT", "items", "1", "quantity")}},
		{name: "combined quantity at the cap", lines: []line{{"A", 500}, {"A", 500}}, wantItems: []line{{"A", 1000}}, wantTotal: 100_000},
		{name: "unknown product", lines: []line{{"A", 1}, {"unknown", 1}},
			want: []wantUserError{on("NOT_FOUND", "items", "1", "productId")}},
		{name: "malformed product id", lines: []line{{"malformed", 1}},
			want: []wantUserError{on("NOT_FOUND", "items", "0", "productId")}},
		{name: "a user's id as product", lines: []line{{"user", 1}},
			want: []wantUserError{on("NOT_FOUND", "items", "0", "productId")}},
		{name: "every unknown product", lines: []line{{"unknown", 1}, {"A", 1}, {"unknown2", 1}},
			want: []wantUserError{on("NOT_FOUND", "items", "0", "productId"), on("NOT_FOUND", "items", "2", "productId")}},
		{name: "every malformed product", lines: []line{{"malformed", 1}, {"A", 1}, {"malformed2", 1}},
			want: []wantUserError{on("NOT_FOUND", "items", "0", "productId"), on("NOT_FOUND", "items", "2", "productId")}},
		{name: "short line", lines: []line{{"B", 6}}, want: []wantUserError{on("INSUFFICIENT_STOCK", "items", "0", "quantity")}},
		{name: "all of the stock", lines: []line{{"B", 5}}, wantItems: []line{{"B", 5}}, wantTotal: 1_000},
		{name: "every short line", lines: []line{{"B", 6}, {"A", 1}, {"C", 2}},
			want: []wantUserError{on("INSUFFICIENT_STOCK", "items", "0", "quantity"), on("INSUFFICIENT_STOCK", "items", "2", "quantity")}},
		{name: "short once combined", lines: []line{{"A", 1}, {"B", 3}, {"B", 3}},
			want: []wantUserError{on("INSUFFICIENT_STOCK", "items", "1", "quantity")}},
		{name: "sold out", lines: []line{{"Z", 1}}, want: []wantUserError{on("INSUFFICIENT_STOCK", "items", "0", "quantity")}},
		{name: "largest total", lines: []line{{"Big", 21}, {"Edge", 1}}, wantItems: []line{{"Big", 21}, {"Edge", 1}}, wantTotal: 1<<31 - 1},
		{name: "total over Int", lines: []line{{"Big", 22}}, want: []wantUserError{on("INVALID_INPUT", "items")}},
		{name: "total over Int across lines", lines: []line{{"Big", 11}, {"Big2", 11}}, want: []wantUserError{on("INVALID_INPUT", "items")}},
		{name: "total one over Int", lines: []line{{"Big", 21}, {"Edge", 1}, {"One", 1}}, want: []wantUserError{on("INVALID_INPUT", "items")}},
	}
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant := env.signUp("MERCHANT")
		customer := env.signUp("CUSTOMER")
		ids := map[string]string{
			"A":          env.createProduct(merchant, "A", 100, 1000),
			"B":          env.createProduct(merchant, "B", 200, 5),
			"C":          env.createProduct(merchant, "C", 300, 1),
			"Z":          env.createProduct(merchant, "Z", 400, 0),
			"Big":        env.createProduct(merchant, "Big", 100_000_000, 100),
			"Big2":       env.createProduct(merchant, "Big2", 100_000_000, 100),
			"Edge":       env.createProduct(merchant, "Edge", 1<<31-1-2_100_000_000, 10),
			"One":        env.createProduct(merchant, "One", 1, 10),
			"unknown":    gid("Product", 900_000_001),
			"unknown2":   gid("Product", 900_000_002),
			"malformed":  "not an id",
			"malformed2": "!!!",
			"user":       customer.ID,
		}
		stocked := []string{"A", "B", "C", "Z", "Big", "Big2", "Edge", "One"}
		stockNow := func() map[string]int {
			m := map[string]int{}
			for _, k := range stocked {
				m[k] = env.stock(ids[k])
			}
			return m
		}
		initial := stockNow()
		buyer := env.as(customer.Token)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				items := make([]map[string]any, len(c.lines))
				for i, l := range c.lines {
					items[i] = map[string]any{"productId": ids[l.product], "quantity": l.qty}
				}
				r, p := buyer.mutate("placeOrder", opPlaceOrder, map[string]any{"in": map[string]any{"items": items}})
				if c.want != nil {
					requireUserErrors(t, r, p, c.want...)
					if now := stockNow(); compactJSON(now) != compactJSON(initial) {
						t.Fatalf("a refused order changed stock: %v, was %v", now, initial)
					}
					return
				}
				requireOK(t, r, p)
				o := p.Order
				if o.Status != "PENDING" || o.Total.Amount != c.wantTotal || len(o.Items) != len(c.wantItems) {
					t.Fatalf("order = %s, want PENDING, total %d, %d lines", compactJSON(o), c.wantTotal, len(c.wantItems))
				}
				for i, w := range c.wantItems {
					it := o.Items[i]
					if it.Product.ID != ids[w.product] || it.Quantity != w.qty || it.Subtotal.Amount != it.UnitPrice.Amount*w.qty {
						t.Fatalf("line %d = %s, want %s × %d", i, compactJSON(it), w.product, w.qty)
					}
					// The payload shows the stock the order left.
					if it.Product.Stock != initial[w.product]-w.qty || env.stock(ids[w.product]) != it.Product.Stock {
						t.Fatalf("line %d: stock %d in payload, %d stored, want %d", i, it.Product.Stock, env.stock(ids[w.product]), initial[w.product]-w.qty)
					}
				}
				// Cancel it so that every case starts from the same stock.
				r, cp := buyer.mutate("cancelOrder", opCancelOrder, map[string]any{"id": o.ID})
				requireOK(t, r, cp)
				if now := stockNow(); compactJSON(now) != compactJSON(initial) {
					t.Fatalf("cancelling did not put the stock back: %v, want %v", now, initial)
				}
			})
		}
	})
}

// TestPlaceOrderIdempotency checks that repeating an idempotencyKey returns the first order
// and takes nothing twice, that the same key with other items is IDEMPOTENCY_CONFLICT (on
// ["idempotencyKey"], changing nothing), that lines in another order are the same request,
// and that keys belong to one user.
func TestPlaceOrderIdempotency(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant := env.signUp("MERCHANT")
		customer, other := env.signUp("CUSTOMER"), env.signUp("CUSTOMER")
		a, b := env.createProduct(merchant, "A", 100, 50), env.createProduct(merchant, "B", 100, 50)
		place := func(who account, key string, lines ...any) (gqlResponse, *mutationPayload) {
			return env.as(who.Token).mutate("placeOrder", opPlaceOrder, map[string]any{"in": map[string]any{
				"items": orderItems(lines...), "idempotencyKey": key}})
		}
		r, first := place(customer, "key-1", a, 2, b, 1)
		requireOK(t, r, first)
		r, again := place(customer, "key-1", a, 2, b, 1)
		requireOK(t, r, again)
		if again.Order.ID != first.Order.ID {
			t.Fatalf("repeat placed order %s, first was %s", again.Order.ID, first.Order.ID)
		}
		r, reordered := place(customer, "key-1", b, 1, a, 1, a, 1)
		requireOK(t, r, reordered)
		if reordered.Order.ID != first.Order.ID {
			t.Fatalf("the same items in another line order placed %s, first was %s", reordered.Order.ID, first.Order.ID)
		}
		if env.stock(a) != 48 || env.stock(b) != 49 {
			t.Fatalf("stock after repeats: %d, %d; want 48, 49", env.stock(a), env.stock(b))
		}
		r, p := place(customer, "key-1", a, 3, b, 1)
		requireUserErrors(t, r, p, wantUserError{Code: "IDEMPOTENCY_CONFLICT", Field: []string{"idempotencyKey"}})
		r, p = place(customer, "key-1", a, 2)
		requireUserErrors(t, r, p, wantUserError{Code: "IDEMPOTENCY_CONFLICT", Field: []string{"idempotencyKey"}})
		if env.stock(a) != 48 || env.stock(b) != 49 {
			t.Fatalf("stock after conflicts: %d, %d; want 48, 49", env.stock(a), env.stock(b))
		}
		r, p = place(other, "key-1", a, 2, b, 1)
		requireOK(t, r, p)
		if p.Order.ID == first.Order.ID {
			t.Fatal("another user's key returned the first user's order")
		}
		r, p = place(customer, "key-2", a, 2, b, 1)
		requireOK(t, r, p)
		if p.Order.ID == first.Order.ID {
			t.Fatal("a new key returned the old order")
		}
		// A refused order does not use up its key.
		r, p = place(customer, "key-3", a, 1000)
		requireUserErrors(t, r, p, wantUserError{Code: "INSUFFICIENT_STOCK", Field: []string{"items", "0", "quantity"}})
		r, p = place(customer, "key-3", a, 1)
		requireOK(t, r, p)
		var count struct{ Orders struct{ TotalCount int } }
		env.as(customer.Token).must(`{ orders { totalCount } }`, nil, &count)
		if count.Orders.TotalCount != 3 {
			t.Fatalf("customer has %d orders, want 3", count.Orders.TotalCount)
		}
		if got, want := env.stock(a), 50-2-2-2-1; got != want {
			t.Fatalf("stock of A = %d, want %d", got, want)
		}
	})
}

// TestCancelRestocks checks that cancelling puts back exactly what each line took.
func TestCancelRestocks(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		a, b := env.createProduct(merchant, "A", 100, 10), env.createProduct(merchant, "B", 100, 10)
		order := env.placeOrder(customer, line{a, 3}, line{b, 1}, line{a, 2})
		if env.stock(a) != 5 || env.stock(b) != 9 {
			t.Fatalf("stock after order: %d, %d", env.stock(a), env.stock(b))
		}
		r, p := env.as(customer.Token).mutate("cancelOrder", opCancelOrder, map[string]any{"id": order})
		requireOK(t, r, p)
		if p.Order.Status != "CANCELLED" || env.stock(a) != 10 || env.stock(b) != 10 {
			t.Fatalf("after cancel: %s, stock %d, %d", p.Order.Status, env.stock(a), env.stock(b))
		}
		for name, op := range map[string]struct {
			field, query string
			vars         map[string]any
		}{
			"cancel an unknown order": {"cancelOrder", opCancelOrder, map[string]any{"id": gid("Order", 987654321)}},
			"cancel a malformed id":   {"cancelOrder", opCancelOrder, map[string]any{"id": "nope"}},
			"move an unknown order": {"updateOrderStatus", opUpdateOrderStatus, map[string]any{"in": map[string]any{
				"id": gid("Order", 987654321), "status": "PAID"}}},
		} {
			r, p := env.as(merchant.Token).mutate(op.field, op.query, op.vars)
			if len(r.Errors) > 0 || p == nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != "NOT_FOUND" ||
				!slices.Equal(p.UserErrors[0].Field, []string{"id"}) {
				t.Fatalf("%s: data %s, errors %+v; want userError NOT_FOUND on [id]", name, r.Data, r.Errors)
			}
		}
		// Cancelling again is refused and does not restock twice.
		r, p = env.as(customer.Token).mutate("cancelOrder", opCancelOrder, map[string]any{"id": order})
		requireUserErrors(t, r, p, wantUserError{Code: "INVALID_TRANSITION"})
		if env.stock(a) != 10 || env.stock(b) != 10 {
			t.Fatalf("a second cancel restocked: %d, %d", env.stock(a), env.stock(b))
		}
	})
}
