package tests

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shop/api/api/guard"
)

// Queries and mutations may travel over the socket too (graphql-transport-ws allows it).
// Each must read fresh data: a connection lives for hours, and loaders made for its upgrade
// request would serve every later operation what they cached for the first.
func TestSocketQueriesReadFreshData(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		product := env.createProduct(merchant, "Kettle", 7900, 10)
		c := env.connectSocket(customer.Token)

		stock := func(id string) int {
			t.Helper()
			c.Subscribe(id, `query($id: ID!) { product(id: $id) { stock } }`, map[string]any{"id": product})
			m := c.Next(10 * time.Second)
			var p struct {
				Data struct{ Product struct{ Stock int } }
			}
			if m.Type != "next" || json.Unmarshal(m.Payload, &p) != nil {
				t.Fatalf("query over socket: %s %s", m.Type, m.Payload)
			}
			if done := c.Next(10 * time.Second); done.Type != "complete" {
				t.Fatalf("want complete, got %s", done.Type)
			}
			return p.Data.Product.Stock
		}
		if got := stock("1"); got != 10 {
			t.Fatalf("stock = %d, want 10", got)
		}
		env.placeOrder(customer, line{product, 4})
		if got := stock("2"); got != 6 {
			t.Fatalf("stock after an order = %d, want 6: the socket's query read stale data", got)
		}
	})
}

// An operation over a socket is charged to its client's address, the same budget as its
// HTTP requests: the socket keeps that of its upgrade request (and not the rest of
// net/http's context) for the connection's life.
func TestSocketOperationsShareTheClientsBudget(t *testing.T) {
	t.Parallel()
	const query = `{ products(first: 100) { nodes { id name } } }` // 301 points
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			liveConfig(&cfg)
			cfg.RateLimit = guard.RateLimit{PointsPerMinute: 1500}
			env := newTestEnv(t, cfg)
			overHTTP, _ := throttle(env.anon().post(query, nil))["currentlyAvailable"].(float64)

			c := env.connectSocket("")
			c.Subscribe("1", query, nil)
			m := c.Next(10 * time.Second)
			var r gqlResponse
			if m.Type != "next" || json.Unmarshal(m.Payload, &r) != nil {
				t.Fatalf("query over socket: %s %s", m.Type, m.Payload)
			}
			overSocket, _ := throttle(r)["currentlyAvailable"].(float64)
			// The bucket leaks back 25 points a second.
			if overSocket > overHTTP-301+50 || overSocket < overHTTP-301-120 {
				t.Fatalf("currentlyAvailable %v over the socket after %v over HTTP: not the same budget", overSocket, overHTTP)
			}
		})
	}
}
