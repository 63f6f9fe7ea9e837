package api_test

import (
	"encoding/json"
	"testing"
)

// actor is a role in the authorization table, relative to the objects the operation touches:
// the order's customer, the merchant of its products, and one of each that has nothing to do
// with them.
type actor string

const (
	anonymous     actor = "anonymous"
	customer      actor = "customer"
	otherCustomer actor = "other customer"
	merchant      actor = "merchant"
	otherMerchant actor = "other merchant"
	admin         actor = "admin"
)

// outcome is what an operation did: "ok", a top-level error code, or "userError:" and a code.
type outcome string

const (
	allowed           outcome = "ok"
	unauthenticated   outcome = "UNAUTHENTICATED"
	forbidden         outcome = "FORBIDDEN"
	notFound          outcome = "NOT_FOUND"
	userErrorNotFound outcome = "userError:NOT_FOUND"
)

// authzWorld is the shop an authorization case runs in.
type authzWorld struct {
	env      *testEnv
	accounts map[actor]account
	// product is sold by merchant; otherProduct by otherMerchant.
	product, otherProduct string
}

// freshOrder places a new order of customer's for product (and otherProduct when mixed), so
// that every state-changing case starts from a PENDING order.
func (w *authzWorld) freshOrder(mixed bool) string {
	if mixed {
		return w.env.placeOrder(w.accounts[customer], w.product, 1, w.otherProduct, 1)
	}
	return w.env.placeOrder(w.accounts[customer], w.product, 1)
}

// authzOp is one operation of the table: run sends it as c and returns its response; field is
// the top-level field whose payload holds userErrors; check verifies, after the run, that the
// operation changed things exactly when it was allowed.
type authzOp struct {
	field string
	run   func(w *authzWorld, c *client) (r gqlResponse, check func(t *testing.T, ok bool))
}

// outcomeOf classifies a response.
func outcomeOf(t *testing.T, r gqlResponse, field string) outcome {
	t.Helper()
	if len(r.Errors) > 0 {
		return outcome(r.Code())
	}
	var data map[string]json.RawMessage
	r.Decode(t, &data)
	var p struct{ UserErrors []userError }
	if err := json.Unmarshal(data[field], &p); err == nil && len(p.UserErrors) > 0 {
		return outcome("userError:" + p.UserErrors[0].Code)
	}
	if string(data[field]) == "null" {
		return "null without an error"
	}
	return allowed
}

// orderStatusCheck checks that order id is in status changed when ok, PENDING otherwise.
func orderStatusCheck(w *authzWorld, id, changed string) func(t *testing.T, ok bool) {
	return func(t *testing.T, ok bool) {
		want := "PENDING"
		if ok {
			want = changed
		}
		if got := w.env.orderStatus(w.accounts[admin], id); got != want {
			t.Fatalf("order status = %s, want %s", got, want)
		}
	}
}

var authzOps = map[string]authzOp{
	"createProduct": {field: "createProduct", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		name := "made by " + uniqueEmail()
		r := c.post(opCreateProduct, map[string]any{"in": map[string]any{"name": name, "price": 1, "stock": 1}})
		return r, func(t *testing.T, ok bool) {
			var out struct{ Products struct{ TotalCount int } }
			w.env.anon().must(`query($s: String) { products(filter: {search: $s}) { totalCount } }`, map[string]any{"s": name}, &out)
			if want := map[bool]int{true: 1, false: 0}[ok]; out.Products.TotalCount != want {
				t.Fatalf("%d products named %q, want %d", out.Products.TotalCount, name, want)
			}
		}
	}},
	"updateProduct": {field: "updateProduct", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		before := w.env.product(w.product)
		r := c.post(opUpdateProduct, map[string]any{"in": map[string]any{"id": w.product, "price": before.Price.Amount + 1}})
		return r, func(t *testing.T, ok bool) {
			want := before.Price.Amount
			if ok {
				want++
			}
			if got := w.env.product(w.product).Price.Amount; got != want {
				t.Fatalf("price = %d, want %d", got, want)
			}
		}
	}},
	"placeOrder": {field: "placeOrder", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		before := w.env.stock(w.otherProduct)
		r := c.post(opPlaceOrder, map[string]any{"in": map[string]any{"items": orderItems(w.otherProduct, 1)}})
		return r, func(t *testing.T, ok bool) {
			want := before
			if ok {
				want--
			}
			if got := w.env.stock(w.otherProduct); got != want {
				t.Fatalf("stock = %d, want %d", got, want)
			}
		}
	}},
	"cancelOrder": {field: "cancelOrder", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		id := w.freshOrder(false)
		return c.post(opCancelOrder, map[string]any{"id": id}), orderStatusCheck(w, id, "CANCELLED")
	}},
	"cancelOrder of a mixed order": {field: "cancelOrder", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		id := w.freshOrder(true)
		return c.post(opCancelOrder, map[string]any{"id": id}), orderStatusCheck(w, id, "CANCELLED")
	}},
	"updateOrderStatus": {field: "updateOrderStatus", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		id := w.freshOrder(false)
		return c.post(opUpdateOrderStatus, map[string]any{"in": map[string]any{"id": id, "status": "PAID"}}), orderStatusCheck(w, id, "PAID")
	}},
	"updateOrderStatus of a mixed order": {field: "updateOrderStatus", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		id := w.freshOrder(true)
		return c.post(opUpdateOrderStatus, map[string]any{"in": map[string]any{"id": id, "status": "PAID"}}), orderStatusCheck(w, id, "PAID")
	}},
	"order(id)": {field: "order", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		return c.post(`query($id: ID!) { order(id: $id) { id } }`, map[string]any{"id": w.freshOrder(false)}), nil
	}},
	"orders": {field: "orders", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		return c.post(`{ orders { totalCount } }`, nil), nil
	}},
	"user.email": {field: "user", run: func(w *authzWorld, c *client) (gqlResponse, func(*testing.T, bool)) {
		return c.post(`query($id: ID!) { user(id: $id) { email } }`, map[string]any{"id": w.accounts[customer].ID}), nil
	}},
}

// TestAuthorization is the contract's authorization table: every guarded operation for
// every role. Objects the caller may not see are NOT_FOUND (a userError in mutations, a
// top-level error in queries); objects they see but may not change are a top-level FORBIDDEN;
// anonymous callers are UNAUTHENTICATED. Each case also checks that the operation changed
// something exactly when it was allowed.
func TestAuthorization(t *testing.T) {
	type authzCase struct {
		op   string
		who  actor
		want outcome
	}
	cases := []authzCase{
		{"createProduct", anonymous, unauthenticated},
		{"createProduct", customer, forbidden},
		{"createProduct", otherCustomer, forbidden},
		{"createProduct", merchant, allowed},
		{"createProduct", otherMerchant, allowed},
		{"createProduct", admin, forbidden},

		{"updateProduct", anonymous, unauthenticated},
		{"updateProduct", customer, forbidden},
		{"updateProduct", otherCustomer, forbidden},
		{"updateProduct", merchant, allowed},
		{"updateProduct", otherMerchant, forbidden},
		{"updateProduct", admin, allowed},

		{"placeOrder", anonymous, unauthenticated},
		{"placeOrder", customer, allowed},
		{"placeOrder", otherCustomer, allowed},
		{"placeOrder", merchant, allowed},
		{"placeOrder", otherMerchant, allowed},
		{"placeOrder", admin, allowed},

		{"cancelOrder", anonymous, unauthenticated},
		{"cancelOrder", customer, allowed},
		{"cancelOrder", otherCustomer, userErrorNotFound},
		{"cancelOrder", merchant, allowed},
		{"cancelOrder", otherMerchant, userErrorNotFound},
		{"cancelOrder", admin, allowed},

		{"cancelOrder of a mixed order", anonymous, unauthenticated},
		{"cancelOrder of a mixed order", customer, allowed},
		{"cancelOrder of a mixed order", otherCustomer, userErrorNotFound},
		{"cancelOrder of a mixed order", merchant, forbidden},
		{"cancelOrder of a mixed order", otherMerchant, forbidden},
		{"cancelOrder of a mixed order", admin, allowed},

		{"updateOrderStatus", anonymous, unauthenticated},
		{"updateOrderStatus", customer, forbidden},
		{"updateOrderStatus", otherCustomer, userErrorNotFound},
		{"updateOrderStatus", merchant, allowed},
		{"updateOrderStatus", otherMerchant, userErrorNotFound},
		{"updateOrderStatus", admin, allowed},

		{"updateOrderStatus of a mixed order", anonymous, unauthenticated},
		{"updateOrderStatus of a mixed order", customer, forbidden},
		{"updateOrderStatus of a mixed order", otherCustomer, userErrorNotFound},
		{"updateOrderStatus of a mixed order", merchant, forbidden},
		{"updateOrderStatus of a mixed order", otherMerchant, forbidden},
		{"updateOrderStatus of a mixed order", admin, allowed},

		{"order(id)", anonymous, unauthenticated},
		{"order(id)", customer, allowed},
		{"order(id)", otherCustomer, notFound},
		{"order(id)", merchant, allowed},
		{"order(id)", otherMerchant, notFound},
		{"order(id)", admin, allowed},

		{"orders", anonymous, unauthenticated},
		{"orders", customer, allowed},
		{"orders", otherCustomer, allowed},
		{"orders", merchant, allowed},
		{"orders", otherMerchant, allowed},
		{"orders", admin, allowed},

		{"user.email", anonymous, forbidden},
		{"user.email", customer, allowed},
		{"user.email", otherCustomer, forbidden},
		{"user.email", merchant, forbidden},
		{"user.email", otherMerchant, forbidden},
		{"user.email", admin, allowed},
	}
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, adminAccount account) {
		w := &authzWorld{env: env, accounts: map[actor]account{
			customer: env.signUp("CUSTOMER"), otherCustomer: env.signUp("CUSTOMER"),
			merchant: env.signUp("MERCHANT"), otherMerchant: env.signUp("MERCHANT"),
			admin: adminAccount,
		}}
		w.product = env.createProduct(w.accounts[merchant], "Guarded", 100, 10_000)
		w.otherProduct = env.createProduct(w.accounts[otherMerchant], "Other", 100, 10_000)
		for _, c := range cases {
			t.Run(c.op+"/"+string(c.who), func(t *testing.T) {
				op, ok := authzOps[c.op]
				if !ok {
					t.Fatalf("no operation %q", c.op)
				}
				cl := env.anon()
				if c.who != anonymous {
					cl = env.as(w.accounts[c.who].Token)
				}
				r, check := op.run(w, cl)
				if got := outcomeOf(t, r, op.field); got != c.want {
					t.Fatalf("%s as %s: %s, want %s (data %s, errors %+v)", c.op, c.who, got, c.want, r.Data, r.Errors)
				}
				if check != nil {
					check(t, c.want == allowed)
				}
			})
		}
	})
}
