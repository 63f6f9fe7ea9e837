package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/live/socket/sockettest"
)

// The live tests' own helpers: the protocol's test client (live/socket/sockettest) with the
// shop's events, and a shop with a merchant, a customer and an order.

// liveConfig shortens the relay's timers so outage tests stay fast.
func liveConfig(cfg *config) {
	cfg.Live.RelayInterval = 100 * time.Millisecond
	cfg.Live.RelayGrace = 300 * time.Millisecond
}

// forEachLiveBackend runs test on every backend with liveConfig and an admin account.
func forEachLiveBackend(t *testing.T, test func(t *testing.T, env *testEnv)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			liveConfig(&cfg)
			cfg.AdminEmail, cfg.AdminPassword = "live-admin@shop.example", "live-admin-password"
			test(t, newTestEnv(t, cfg))
		})
	}
}

// liveAdmin signs in the admin of forEachLiveBackend.
func (e *testEnv) liveAdmin() account {
	e.t.Helper()
	var out struct {
		LogIn struct {
			Token string
			User  struct{ ID string }
		}
	}
	e.anon().must(`mutation($in: LogInInput!) { logIn(input: $in) { token user { id } } }`,
		map[string]any{"in": map[string]any{"email": "live-admin@shop.example", "password": "live-admin-password"}}, &out)
	return account{ID: out.LogIn.User.ID, Token: out.LogIn.Token}
}

// liveShop is a merchant with a product, and a customer with an order of it.
type liveShop struct {
	merchant, customer account
	product, order     string
}

func (e *testEnv) newLiveShop() liveShop {
	e.t.Helper()
	s := liveShop{merchant: e.signUp("MERCHANT"), customer: e.signUp("CUSTOMER")}
	s.product = e.createProduct(s.merchant, "Kettle", 2500, 1000)
	s.order = e.placeOrder(s.customer, line{s.product, 1})
	return s
}

// moveOrderTo moves an order to status as who (its merchant or an admin).
func (e *testEnv) moveOrderTo(who account, order, status string) {
	e.t.Helper()
	var out struct {
		UpdateOrderStatus struct {
			Order      *struct{ Status string }
			UserErrors []map[string]any
		}
	}
	e.as(who.Token).must(`mutation($in: UpdateOrderStatusInput!) { updateOrderStatus(input: $in) { order { status } userErrors { code message } } }`,
		map[string]any{"in": map[string]any{"id": order, "status": status}}, &out)
	if out.UpdateOrderStatus.Order == nil || out.UpdateOrderStatus.Order.Status != status {
		e.t.Fatalf("updateOrderStatus(%s): %+v", status, out.UpdateOrderStatus)
	}
}

// eventIDs returns the global IDs of an order's events, oldest first.
func (e *testEnv) eventIDs(who account, order string) []string {
	e.t.Helper()
	var out struct {
		Order struct{ History []struct{ ID string } }
	}
	e.as(who.Token).must(`query($id: ID!) { order(id: $id) { history { id } } }`, map[string]any{"id": order}, &out)
	ids := make([]string, len(out.Order.History))
	for i, h := range out.Order.History {
		ids[i] = h.ID
	}
	return ids
}

// wsMsg is a message of either subprotocol.
type wsMsg = sockettest.Msg

// liveEvent is an OrderStatusEvent as the subscriptions below select it.
type liveEvent struct {
	ID             string
	Status         string
	PreviousStatus *string
	Order          struct {
		ID     string
		Status string
	}
}

const eventFields = `id status previousStatus order { id status }`

// wsClient is the protocol's test client (sockettest.Client) with the shop's events.
type wsClient struct{ *sockettest.Client }

type dialOpts = sockettest.DialOpts

// dialSocketURL opens a socket to url without initialising it, failing the test if it cannot.
func dialSocketURL(t *testing.T, url string, o dialOpts) *wsClient {
	t.Helper()
	return &wsClient{sockettest.Dial(t, url, o)}
}

// dialSocket opens a socket to env without initialising it.
func (e *testEnv) dialSocket(o dialOpts) *wsClient {
	e.t.Helper()
	return dialSocketURL(e.t, e.srv.URL, o)
}

// connectSocket opens a socket and initialises it with token (anonymous when empty).
func (e *testEnv) connectSocket(token string) *wsClient {
	e.t.Helper()
	return &wsClient{sockettest.Connect(e.t, e.srv.URL, token)}
}

// event returns the next event of operation id, failing on anything else.
func (c *wsClient) event(id string) liveEvent {
	c.T.Helper()
	var data map[string]liveEvent
	c.Data(id, &data)
	if len(data) != 1 {
		c.T.Fatalf("want one event of %s, got %+v", id, data)
	}
	for _, e := range data {
		return e
	}
	panic("unreachable")
}

const (
	subOrder = `subscription($id: ID!, $after: ID) { orderStatusChanged(orderId: $id, after: $after) { ` + eventFields + ` } }`
	subMine  = `subscription { myOrderEvents { ` + eventFields + ` } }`
)

// subscribeOrder subscribes to an order's events and waits until the subscription is live
// (gqlgen acknowledges nothing, so a status change from another connection would race it).
func (e *testEnv) subscribeOrder(c *wsClient, id, order string, after *string) {
	e.t.Helper()
	vars := map[string]any{"id": order}
	if after != nil {
		vars["after"] = *after
	}
	c.Subscribe(id, subOrder, vars)
	e.waitSubscribers(1)
}

// waitSubscribers waits until the service holds at least n subscriptions.
func (e *testEnv) waitSubscribers(n int) {
	e.t.Helper()
	eventually(e.t, 5*time.Second, func() bool { return e.svc.LiveStats().Subscribers >= n }, "%d subscribers", n)
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

func TestOrderStatusChangedDeliversEachChangeWithFreshData(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		c := env.connectSocket(s.customer.Token)
		env.subscribeOrder(c, "1", s.order, nil)

		env.moveOrderTo(s.merchant, s.order, "PAID")
		env.moveOrderTo(s.merchant, s.order, "SHIPPED")
		first, second := c.event("1"), c.event("1")
		if first.Status != "PAID" || *first.PreviousStatus != "PENDING" || first.Order.ID != s.order ||
			second.Status != "SHIPPED" || *second.PreviousStatus != "PAID" {
			t.Fatalf("events = %+v, %+v", first, second)
		}
		// Each event is resolved with fresh loaders: the order shows its status at that event,
		// not what the connection (or the first event) loaded.
		if first.Order.Status == second.Order.Status && first.Order.Status != "SHIPPED" {
			t.Fatalf("stale order in events: %q then %q", first.Order.Status, second.Order.Status)
		}
		if second.Order.Status != "SHIPPED" {
			t.Fatalf("second event's order status = %q, want SHIPPED", second.Order.Status)
		}
		hist := env.eventIDs(s.customer, s.order)
		if first.ID != hist[1] || second.ID != hist[2] {
			t.Fatalf("event ids %s %s, history %v", first.ID, second.ID, hist)
		}
		c.Quiet(300 * time.Millisecond)
	})
}

// A request that fails before it has an operation (unparseable JSON) must not trip the
// subscriptions' per-event loaders.
func TestRequestWithoutOperationIsUnaffectedByLiveHooks(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, nil)
	resp, err := http.Post(env.srv.URL+"/graphql", "application/json", strings.NewReader(`{"query": "{ me { id } }`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusInternalServerError || resp.StatusCode == http.StatusOK {
		t.Fatalf("status %d for a malformed body", resp.StatusCode)
	}
	var out gqlResponse
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if out.Code() == "INTERNAL_SERVER_ERROR" {
		t.Fatalf("malformed body answered with an internal error: %+v", out)
	}
}
