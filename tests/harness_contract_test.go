package tests

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shop/api/store/storetest"
)

// This file holds the helpers of the contract tests (queries_*, mutations_*, checkout_*,
// shipments_* and auth_*): the operations they send, typed views of the payloads, and ways to
// start a service with an ADMIN account. The shared harness is harness_test.go.

// The operations of the contract tests, selecting every field the assertions read.
const (
	opSignUp = `mutation($in: SignUpInput!) { signUp(input: $in) {
		token user { id email role } userErrors { field message code } } }`
	opLogIn = `mutation($in: LogInInput!) { logIn(input: $in) {
		token user { id email role } userErrors { field message code } } }`
	opCreateProduct = `mutation($in: CreateProductInput!) { createProduct(input: $in) {
		product { id name description price { amount currency } stock } userErrors { field message code } } }`
	opUpdateProduct = `mutation($in: UpdateProductInput!) { updateProduct(input: $in) {
		product { id name description price { amount currency } stock } userErrors { field message code } } }`
	opPlaceOrder = `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) {
		order { id status total { amount }
			items { quantity unitPrice { amount } subtotal { amount } product { id stock } } }
		userErrors { field message code } } }`
	opCancelOrder = `mutation($id: ID!) { cancelOrder(id: $id) {
		order { id status } userErrors { field message code } } }`
	opUpdateOrderStatus = `mutation($in: UpdateOrderStatusInput!) { updateOrderStatus(input: $in) {
		order { id status } userErrors { field message code } } }`
)

// userError is one entry of a payload's userErrors.
type userError struct {
	Field   []string
	Message string
	Code    string
}

// wantUserError is the code and field path a test expects of a userError.
type wantUserError struct {
	Code  string
	Field []string
}

// productView is a product as the contract tests select it.
type productView struct {
	ID          string
	Name        string
	Description string
	Price       struct {
		Amount   int
		Currency string
	}
	Stock int
}

// orderItemView is an order line as the contract tests select it.
type orderItemView struct {
	Quantity  int
	UnitPrice struct{ Amount int }
	Subtotal  struct{ Amount int }
	Product   struct {
		ID    string
		Stock int
	}
}

// orderView is an order as the contract tests select it.
type orderView struct {
	ID     string
	Status string
	Total  struct{ Amount int }
	Items  []orderItemView
}

// mutationPayload is the union of the payload types the contract tests decode.
type mutationPayload struct {
	Token *string
	User  *struct {
		ID    string
		Email *string
		Role  string
	}
	Product    *productView
	Order      *orderView
	UserErrors []userError
}

// mutate sends a mutation whose single top-level field is field and returns the response and
// the decoded payload, nil when the payload is null (a top-level error).
func (c *client) mutate(field, query string, vars map[string]any) (gqlResponse, *mutationPayload) {
	c.env.t.Helper()
	r := c.post(query, vars)
	return r, payloadOf(c.env.t, r, field)
}

// payloadOf decodes data[field] of r; nil when data or the field is null.
func payloadOf(t *testing.T, r gqlResponse, field string) *mutationPayload {
	t.Helper()
	if len(r.Data) == 0 || string(r.Data) == "null" {
		return nil
	}
	var data map[string]*mutationPayload
	r.Decode(t, &data)
	return data[field]
}

// requireUserErrors fails unless p is a payload with exactly the wanted userErrors, in order,
// and without its object.
func requireUserErrors(t *testing.T, r gqlResponse, p *mutationPayload, want ...wantUserError) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("want userErrors %v, got top-level errors %+v", want, r.Errors)
	}
	if p == nil {
		t.Fatalf("want userErrors %v, got a null payload", want)
	}
	got := make([]wantUserError, len(p.UserErrors))
	for i, e := range p.UserErrors {
		got[i] = wantUserError{Code: e.Code, Field: e.Field}
		if e.Message == "" {
			t.Errorf("userError %d has an empty message", i)
		}
	}
	if !slices.EqualFunc(got, want, func(a, b wantUserError) bool { return a.Code == b.Code && slices.Equal(a.Field, b.Field) }) {
		t.Fatalf("userErrors = %+v, want %+v", got, want)
	}
	if p.Product != nil || p.Order != nil || p.User != nil || p.Token != nil {
		t.Fatalf("a payload with userErrors carries its object: %+v", p)
	}
}

// requireOK fails unless r has no errors and p no userErrors.
func requireOK(t *testing.T, r gqlResponse, p *mutationPayload) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %+v", r.Errors)
	}
	if p == nil {
		t.Fatal("null payload without errors")
	}
	if len(p.UserErrors) > 0 {
		t.Fatalf("unexpected userErrors: %+v", p.UserErrors)
	}
}

// uniqueEmail returns an unused email address.
func uniqueEmail() string { return strings.ToLower(storetest.Name("u")) + "@example.com" }

// The admin account of services started by forEachBackendWithAdmin.
const (
	testAdminEmail    = "admin@shop.example"
	testAdminPassword = "admin-password-1"
)

// forEachBackendWithAdmin is forEachBackend on a service configured with an ADMIN account
// (config.AdminEmail/AdminPassword, as in production); test gets the admin signed in.
func forEachBackendWithAdmin(t *testing.T, test func(t *testing.T, env *testEnv, admin account)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			cfg.AdminEmail, cfg.AdminPassword = testAdminEmail, testAdminPassword
			env := newTestEnv(t, cfg)
			test(t, env, env.logIn(testAdminEmail, testAdminPassword))
		})
	}
}

// logIn signs in with email and password, failing the test unless it succeeds.
func (e *testEnv) logIn(email, password string) account {
	e.t.Helper()
	r, p := e.anon().mutate("logIn", opLogIn, map[string]any{"in": map[string]any{"email": email, "password": password}})
	requireOK(e.t, r, p)
	if p.Token == nil || p.User == nil {
		e.t.Fatalf("logIn without token or user: %+v", p)
	}
	return account{ID: p.User.ID, Email: email, Token: *p.Token}
}

// product returns the product with id as anyone sees it, failing the test unless it exists.
func (e *testEnv) product(id string) productView {
	e.t.Helper()
	var out struct{ Product *productView }
	e.anon().must(`query($id: ID!) { product(id: $id) { id name description price { amount currency } stock } }`,
		map[string]any{"id": id}, &out)
	if out.Product == nil {
		e.t.Fatalf("product %s not found", id)
	}
	return *out.Product
}

// stock returns a product's stock.
func (e *testEnv) stock(productID string) int {
	e.t.Helper()
	return e.product(productID).Stock
}

// orderStatus returns an order's status as admin sees it.
func (e *testEnv) orderStatus(admin account, id string) string {
	e.t.Helper()
	var out struct{ Order *struct{ Status string } }
	e.as(admin.Token).must(`query($id: ID!) { order(id: $id) { status } }`, map[string]any{"id": id}, &out)
	if out.Order == nil {
		e.t.Fatalf("order %s not found", id)
	}
	return out.Order.Status
}

// gid builds the global ID of kind's row n, as the API encodes it. Clients never do this;
// the tests do, to name seeded rows and unknown objects the way a stale or guessed ID would.
func gid(kind string, n int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatInt(n, 10)))
}

// orderItems turns (productID, quantity) pairs into placeOrder's items.
func orderItems(lines ...any) []map[string]any {
	var items []map[string]any
	for i := 0; i+1 < len(lines); i += 2 {
		items = append(items, map[string]any{"productId": lines[i], "quantity": lines[i+1]})
	}
	return items
}

// compactJSON renders v for failure messages.
func compactJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
