// Package tests holds the system tests: the service built by api.New (the wiring server.go
// runs) behind a real HTTP server, against PostgreSQL and Redis or the embedded mode, or whole
// server processes built from this module. Each file is named after the section of the API
// contract whose behaviour it proves, so the test of a behaviour is found from its name:
//
//	endpoints_*      Endpoints and configuration (HTTP, protections, schema, playground,
//	                 metrics, trusted documents, several processes as one service, JS clients)
//	queries_*        Queries (paging, filters, visibility)
//	mutations_*      Mutations (validation, placeOrder, status transitions, concurrency)
//	subscriptions_*  Subscriptions (rules, protocols, delivery across processes, caps)
//	checkout_*       Checkout: reservations and payments (test provider, Stripe)
//	shipments_*      Shipments and the stock ledger (low stock included)
//	auth_*           Authentication and errors (authorization, rate limits, APQ)
//	operations_*     drills, faults, nginx, read replicas, Sentinel failover
//	performance_*    statement counts, allocation budgets, benchmarks
//	harness_*        the harness: starting the service, clients, shared helpers
//
// A package's own tests live beside it (the limits in api/guard, metrics, logs and traces
// in api/observe, which start the service with api/apitest).
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shop/api/store/storetest"
)

// backend is one way to run the service in tests.
type backend struct {
	name string
	// config returns a configuration on fresh storage.
	config func(t *testing.T) config
}

// backends are the embedded mode (always) and PostgreSQL with Redis (when configured).
var backends = []backend{
	{"embedded", func(t *testing.T) config {
		return config{SQLitePath: storetest.SQLitePath(t)}
	}},
	{"postgres", func(t *testing.T) config {
		redisURL := storetest.RedisURL(t)
		return config{DatabaseURL: storetest.PostgresURL(t), RedisURL: redisURL,
			RedisPrefix: storetest.RedisPrefix(t, redisURL)}
	}},
}

// forEachBackend runs test once per backend, as a subtest named after it.
func forEachBackend(t *testing.T, test func(t *testing.T, env *testEnv)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			test(t, newTestEnv(t, b.config(t)))
		})
	}
}

// embedded starts the service on the embedded backend with cfg's limits.
func embedded(t *testing.T, cfg config) *testEnv {
	t.Helper()
	base := backends[0].config(t)
	cfg.SQLitePath = base.SQLitePath
	return newTestEnv(t, cfg)
}

// testEnv is a running service behind a real HTTP server.
type testEnv struct {
	t   *testing.T
	svc *service
	srv *httptest.Server
}

// newTestEnv starts the service with cfg, filling in what tests always want.
func newTestEnv(t *testing.T, cfg config) *testEnv {
	t.Helper()
	if cfg.JWTSecret == nil {
		cfg.JWTSecret = []byte("test-secret-of-at-least-32-bytes!!")
	}
	if cfg.PasswordCost == 0 {
		cfg.PasswordCost = 4 // bcrypt.MinCost: sign-ups in tests stay fast
	}
	cfg.Playground, cfg.Introspection = true, true
	svc, err := startService(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return &testEnv{t: t, svc: svc, srv: srv}
}

// gqlResponse is a GraphQL response; Data stays raw for the test to decode.
type gqlResponse struct {
	Status     int
	Data       json.RawMessage `json:"data"`
	Errors     []gqlError      `json:"errors"`
	Extensions map[string]any  `json:"extensions"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code returns the extensions.code of the response's first error, "" when there is none.
func (r gqlResponse) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Decode decodes the response's data into v, failing the test on error.
func (r gqlResponse) Decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Data, err)
	}
}

// client sends GraphQL requests as one caller.
type client struct {
	env   *testEnv
	token string
}

// anon returns an anonymous client.
func (e *testEnv) anon() *client { return &client{env: e} }

// as returns a client sending token.
func (e *testEnv) as(token string) *client { return &client{env: e, token: token} }

// post sends a query with variables and returns the decoded response.
func (c *client) post(query string, vars map[string]any) gqlResponse {
	c.env.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, c.env.srv.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.env.do(req)
}

func (e *testEnv) do(req *http.Request) gqlResponse {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := gqlResponse{Status: resp.StatusCode}
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("status %d, body not JSON: %s", resp.StatusCode, raw)
	}
	out.Status = resp.StatusCode
	return out
}

// must sends a query that must succeed without errors and decodes its data into v.
func (c *client) must(query string, vars map[string]any, v any) {
	c.env.t.Helper()
	r := c.post(query, vars)
	if len(r.Errors) > 0 {
		c.env.t.Fatalf("unexpected errors: %+v", r.Errors)
	}
	if v != nil {
		r.Decode(c.env.t, v)
	}
}

// account is a signed-up user.
type account struct {
	ID, Email, Token string
}

// signUp creates an account with role and returns it, failing the test on any error.
func (e *testEnv) signUp(role string) account {
	e.t.Helper()
	email := strings.ToLower(storetest.Name("u")) + "@example.com"
	var out struct {
		SignUp struct {
			Token      string
			User       struct{ ID string }
			UserErrors []map[string]any
		}
	}
	e.anon().must(`mutation($in: SignUpInput!) { signUp(input: $in) { token user { id } userErrors { code field message } } }`,
		map[string]any{"in": map[string]any{"email": email, "name": "Test " + role, "password": "password123", "role": role}}, &out)
	if len(out.SignUp.UserErrors) > 0 {
		e.t.Fatalf("signUp: %v", out.SignUp.UserErrors)
	}
	return account{ID: out.SignUp.User.ID, Email: email, Token: out.SignUp.Token}
}

// createProduct creates a product as merchant and returns its ID.
func (e *testEnv) createProduct(merchant account, name string, price, stock int) string {
	e.t.Helper()
	var out struct {
		CreateProduct struct {
			Product    struct{ ID string }
			UserErrors []map[string]any
		}
	}
	e.as(merchant.Token).must(`mutation($in: CreateProductInput!) { createProduct(input: $in) { product { id } userErrors { code field message } } }`,
		map[string]any{"in": map[string]any{"name": name, "price": price, "stock": stock}}, &out)
	if len(out.CreateProduct.UserErrors) > 0 {
		e.t.Fatalf("createProduct: %v", out.CreateProduct.UserErrors)
	}
	return out.CreateProduct.Product.ID
}

// line is one line of an order: a product's global ID and a quantity.
type line struct {
	product  string
	quantity int
}

// placeOrder places an order of lines as customer and returns its ID.
func (e *testEnv) placeOrder(customer account, lines ...line) string {
	e.t.Helper()
	var items []map[string]any
	for _, l := range lines {
		items = append(items, map[string]any{"productId": l.product, "quantity": l.quantity})
	}
	var out struct {
		PlaceOrder struct {
			Order      struct{ ID string }
			UserErrors []map[string]any
		}
	}
	e.as(customer.Token).must(`mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id } userErrors { code field message } } }`,
		map[string]any{"in": map[string]any{"items": items}}, &out)
	if len(out.PlaceOrder.UserErrors) > 0 {
		e.t.Fatalf("placeOrder: %v", out.PlaceOrder.UserErrors)
	}
	return out.PlaceOrder.Order.ID
}
