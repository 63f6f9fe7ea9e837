package socket_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shop/api/api"
	"github.com/shop/api/api/apitest"
	"github.com/shop/api/live/socket/sockettest"
)

// The protocol's tests run the service as server.go does (apitest.Start: api.New on a fresh
// embedded store behind httptest) and speak to /graphql with sockettest's clients. The
// system's behaviour around sockets (events across processes, Redis, PostgreSQL) is tested
// in tests/.

const (
	eventFields    = `id status previousStatus order { id status }`
	subOrder       = `subscription($id: ID!, $after: ID) { orderStatusChanged(orderId: $id, after: $after) { ` + eventFields + ` } }`
	subMine        = `subscription { myOrderEvents { ` + eventFields + ` } }`
	unknownOrderID = "T3JkZXI6OTk5OTk5OTk5"
	adminEmail     = "admin@shop.example"
	adminPassword  = "admin-password-1"
)

// start runs the service with the configuration change makes (nil: none).
func start(t *testing.T, change func(*api.Config)) *apitest.Server {
	t.Helper()
	var cfg api.Config
	if change != nil {
		change(&cfg)
	}
	return apitest.Start(t, cfg, nil)
}

var accounts atomic.Int64

// signUp creates an account with role and returns its token.
func signUp(t *testing.T, srv *apitest.Server, role string) string {
	t.Helper()
	var out struct {
		SignUp struct {
			Token      string
			UserErrors []map[string]any
		}
	}
	email := fmt.Sprintf("socket-%d@example.com", accounts.Add(1))
	srv.Must(t, "", `mutation($in: SignUpInput!) { signUp(input: $in) { token userErrors { code message } } }`,
		map[string]any{"in": map[string]any{"email": email, "name": "Test " + role, "password": "password123", "role": role}}, &out)
	if len(out.SignUp.UserErrors) > 0 || out.SignUp.Token == "" {
		t.Fatalf("signUp: %+v", out.SignUp)
	}
	return out.SignUp.Token
}

// logIn returns the token of an existing account.
func logIn(t *testing.T, srv *apitest.Server, email, password string) string {
	t.Helper()
	var out struct{ LogIn struct{ Token string } }
	srv.Must(t, "", `mutation($in: LogInInput!) { logIn(input: $in) { token } }`,
		map[string]any{"in": map[string]any{"email": email, "password": password}}, &out)
	if out.LogIn.Token == "" {
		t.Fatal("logIn without a token")
	}
	return out.LogIn.Token
}

// createProduct creates a product as merchant and returns its ID.
func createProduct(t *testing.T, srv *apitest.Server, merchant, name string, price, stock int) string {
	t.Helper()
	var out struct {
		CreateProduct struct {
			Product    struct{ ID string }
			UserErrors []map[string]any
		}
	}
	srv.Must(t, merchant, `mutation($in: CreateProductInput!) { createProduct(input: $in) { product { id } userErrors { code message } } }`,
		map[string]any{"in": map[string]any{"name": name, "price": price, "stock": stock}}, &out)
	if len(out.CreateProduct.UserErrors) > 0 {
		t.Fatalf("createProduct: %v", out.CreateProduct.UserErrors)
	}
	return out.CreateProduct.Product.ID
}

// shop is a merchant with a product, and a customer with an order of it.
type shop struct {
	merchant, customer string // tokens
	product, order     string
}

func newShop(t *testing.T, srv *apitest.Server) shop {
	t.Helper()
	s := shop{merchant: signUp(t, srv, "MERCHANT"), customer: signUp(t, srv, "CUSTOMER")}
	s.product = createProduct(t, srv, s.merchant, "Kettle", 2500, 1000)
	var out struct {
		PlaceOrder struct {
			Order      struct{ ID string }
			UserErrors []map[string]any
		}
	}
	srv.Must(t, s.customer, `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id } userErrors { code message } } }`,
		map[string]any{"in": map[string]any{"items": []map[string]any{{"productId": s.product, "quantity": 1}}}}, &out)
	if len(out.PlaceOrder.UserErrors) > 0 {
		t.Fatalf("placeOrder: %v", out.PlaceOrder.UserErrors)
	}
	s.order = out.PlaceOrder.Order.ID
	return s
}

// moveOrderTo moves the shop's order to status as its merchant.
func (s shop) moveOrderTo(t *testing.T, srv *apitest.Server, status string) {
	t.Helper()
	var out struct {
		UpdateOrderStatus struct {
			Order      *struct{ Status string }
			UserErrors []map[string]any
		}
	}
	srv.Must(t, s.merchant, `mutation($in: UpdateOrderStatusInput!) { updateOrderStatus(input: $in) { order { status } userErrors { code message } } }`,
		map[string]any{"in": map[string]any{"id": s.order, "status": status}}, &out)
	if out.UpdateOrderStatus.Order == nil || out.UpdateOrderStatus.Order.Status != status {
		t.Fatalf("updateOrderStatus(%s): %+v", status, out.UpdateOrderStatus)
	}
}

// eventStatus returns the status of the next orderStatusChanged event of operation id.
func eventStatus(c *sockettest.Client, id string) string {
	c.T.Helper()
	var data struct{ OrderStatusChanged struct{ Status string } }
	c.Data(id, &data)
	return data.OrderStatusChanged.Status
}

// waitSubscribers waits until the service holds at least n subscriptions.
func waitSubscribers(t *testing.T, srv *apitest.Server, n int) {
	t.Helper()
	eventually(t, 5*time.Second, func() bool { return srv.LiveStats().Subscribers >= n }, "%d subscribers", n)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+what, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
