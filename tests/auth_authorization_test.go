package tests

import (
	"encoding/json"
	"testing"
)

// actor is a role in the authorization table, relative to the objects the operation touches:
// the order's customer, the merchant of its products, and one of each that has nothing to do
// with them.
type actor string

const (
	byAnonymous     actor = "anonymous"
	byCustomer      actor = "customer"
	byOtherCustomer actor = "other customer"
	byMerchant      actor = "merchant"
	byOtherMerchant actor = "other merchant"
	byAdmin         actor = "admin"
)

// outcome is what an operation did: "ok", a top-level error code, or "userError:" and a code.
type outcome string

const (
	outcomeOK                outcome = "ok"
	outcomeUnauthenticated   outcome = "UNAUTHENTICATED"
	outcomeForbidden         outcome = "FORBIDDEN"
	outcomeNotFound          outcome = "NOT_FOUND"
	outcomeUserErrorNotFound outcome = "userError:NOT_FOUND"
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
		return w.env.placeOrder(w.accounts[byCustomer], line{w.product, 1}, line{w.otherProduct, 1})
	}
	return w.env.placeOrder(w.accounts[byCustomer], line{w.product, 1})
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
	return outcomeOK
}

// orderStatusCheck checks that order id is in status changed when ok, PENDING otherwise.
func orderStatusCheck(w *authzWorld, id, changed string) func(t *testing.T, ok bool) {
	return func(t *testing.T, ok bool) {
		want := "PENDING"
		if ok {
			want = changed
		}
		if got := w.env.orderStatus(w.accounts[byAdmin], id); got != want {
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
		return c.post(`query($id: ID!) { user(id: $id) { email } }`, map[string]any{"id": w.accounts[byCustomer].ID}), nil
	}},
}

// TestAuthorization is the contract's authorization table: every guarded operation for
// every role. Objects the caller may not see are NOT_FOUND (a userError in mutations, a
// top-level error in queries); objects they see but may not change are a top-level FORBIDDEN;
// anonymous callers are UNAUTHENTICATED. Each case also checks that the operation changed
// something exactly when it was allowed.
func TestAuthorization(t *testing.T) {
	t.Parallel()
	type authzCase struct {
		op   string
		who  actor
		want outcome
	}
	cases := []authzCase{
		{"createProduct", byAnonymous, outcomeUnauthenticated},
		{"createProduct", byCustomer, outcomeForbidden},
		{"createProduct", byOtherCustomer, outcomeForbidden},
		{"createProduct", byMerchant, outcomeOK},
		{"createProduct", byOtherMerchant, outcomeOK},
		{"createProduct", byAdmin, outcomeForbidden},

		{"updateProduct", byAnonymous, outcomeUnauthenticated},
		{"updateProduct", byCustomer, outcomeForbidden},
		{"updateProduct", byOtherCustomer, outcomeForbidden},
		{"updateProduct", byMerchant, outcomeOK},
		{"updateProduct", byOtherMerchant, outcomeForbidden},
		{"updateProduct", byAdmin, outcomeOK},

		{"placeOrder", byAnonymous, outcomeUnauthenticated},
		{"placeOrder", byCustomer, outcomeOK},
		{"placeOrder", byOtherCustomer, outcomeOK},
		{"placeOrder", byMerchant, outcomeOK},
		{"placeOrder", byOtherMerchant, outcomeOK},
		{"placeOrder", byAdmin, outcomeOK},

		{"cancelOrder", byAnonymous, outcomeUnauthenticated},
		{"cancelOrder", byCustomer, outcomeOK},
		{"cancelOrder", byOtherCustomer, outcomeUserErrorNotFound},
		{"cancelOrder", byMerchant, outcomeOK},
		{"cancelOrder", byOtherMerchant, outcomeUserErrorNotFound},
		{"cancelOrder", byAdmin, outcomeOK},

		{"cancelOrder of a mixed order", byAnonymous, outcomeUnauthenticated},
		{"cancelOrder of a mixed order", byCustomer, outcomeOK},
		{"cancelOrder of a mixed order", byOtherCustomer, outcomeUserErrorNotFound},
		{"cancelOrder of a mixed order", byMerchant, outcomeForbidden},
		{"cancelOrder of a mixed order", byOtherMerchant, outcomeForbidden},
		{"cancelOrder of a mixed order", byAdmin, outcomeOK},

		{"updateOrderStatus", byAnonymous, outcomeUnauthenticated},
		{"updateOrderStatus", byCustomer, outcomeForbidden},
		{"updateOrderStatus", byOtherCustomer, outcomeUserErrorNotFound},
		{"updateOrderStatus", byMerchant, outcomeOK},
		{"updateOrderStatus", byOtherMerchant, outcomeUserErrorNotFound},
		{"updateOrderStatus", byAdmin, outcomeOK},

		{"updateOrderStatus of a mixed order", byAnonymous, outcomeUnauthenticated},
		{"updateOrderStatus of a mixed order", byCustomer, outcomeForbidden},
		{"updateOrderStatus of a mixed order", byOtherCustomer, outcomeUserErrorNotFound},
		{"updateOrderStatus of a mixed order", byMerchant, outcomeForbidden},
		{"updateOrderStatus of a mixed order", byOtherMerchant, outcomeForbidden},
		{"updateOrderStatus of a mixed order", byAdmin, outcomeOK},

		{"order(id)", byAnonymous, outcomeUnauthenticated},
		{"order(id)", byCustomer, outcomeOK},
		{"order(id)", byOtherCustomer, outcomeNotFound},
		{"order(id)", byMerchant, outcomeOK},
		{"order(id)", byOtherMerchant, outcomeNotFound},
		{"order(id)", byAdmin, outcomeOK},

		{"orders", byAnonymous, outcomeUnauthenticated},
		{"orders", byCustomer, outcomeOK},
		{"orders", byOtherCustomer, outcomeOK},
		{"orders", byMerchant, outcomeOK},
		{"orders", byOtherMerchant, outcomeOK},
		{"orders", byAdmin, outcomeOK},

		{"user.email", byAnonymous, outcomeForbidden},
		{"user.email", byCustomer, outcomeOK},
		{"user.email", byOtherCustomer, outcomeForbidden},
		{"user.email", byMerchant, outcomeForbidden},
		{"user.email", byOtherMerchant, outcomeForbidden},
		{"user.email", byAdmin, outcomeOK},
	}
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, adminAccount account) {
		w := &authzWorld{env: env, accounts: map[actor]account{
			byCustomer: env.signUp("CUSTOMER"), byOtherCustomer: env.signUp("CUSTOMER"),
			byMerchant: env.signUp("MERCHANT"), byOtherMerchant: env.signUp("MERCHANT"),
			byAdmin: adminAccount,
		}}
		w.product = env.createProduct(w.accounts[byMerchant], "Guarded", 100, 10_000)
		w.otherProduct = env.createProduct(w.accounts[byOtherMerchant], "Other", 100, 10_000)
		for _, c := range cases {
			t.Run(c.op+"/"+string(c.who), func(t *testing.T) {
				op, ok := authzOps[c.op]
				if !ok {
					t.Fatalf("no operation %q", c.op)
				}
				cl := env.anon()
				if c.who != byAnonymous {
					cl = env.as(w.accounts[c.who].Token)
				}
				r, check := op.run(w, cl)
				if got := outcomeOf(t, r, op.field); got != c.want {
					t.Fatalf("%s as %s: %s, want %s (data %s, errors %+v)", c.op, c.who, got, c.want, r.Data, r.Errors)
				}
				if check != nil {
					check(t, c.want == outcomeOK)
				}
			})
		}
	})
}
