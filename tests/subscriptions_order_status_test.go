package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The live tests' own helpers: a graphql-transport-ws (or legacy graphql-ws) client on
// github.com/coder/websocket, and a shop with a merchant, a customer and an order.

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
type wsMsg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

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

// wsClient is one WebSocket connection speaking graphql-transport-ws (or legacy graphql-ws).
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	msgs chan wsMsg
	done chan struct{}
	err  error // the read error that ended msgs
}

type dialOpts struct {
	subprotocol string // default graphql-transport-ws
	header      http.Header
}

// dialSocketURL opens a socket to url without initialising it, failing the test if it cannot.
func dialSocketURL(t *testing.T, url string, o dialOpts) *wsClient {
	t.Helper()
	c, resp, err := tryDialSocket(url, o)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	c.t = t
	t.Cleanup(func() { _ = c.conn.CloseNow() })
	return c
}

func tryDialSocket(url string, o dialOpts) (*wsClient, *http.Response, error) {
	if o.subprotocol == "" {
		o.subprotocol = "graphql-transport-ws"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1)+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{o.subprotocol}, HTTPHeader: o.header})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	c := &wsClient{conn: conn, msgs: make(chan wsMsg, 1024), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.msgs)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			var m wsMsg
			if err := json.Unmarshal(data, &m); err != nil {
				c.err = fmt.Errorf("bad message %s: %w", data, err)
				return
			}
			c.msgs <- m
		}
	}()
	return c, resp, nil
}

// dialSocket opens a socket to env without initialising it.
func (e *testEnv) dialSocket(o dialOpts) *wsClient {
	e.t.Helper()
	return dialSocketURL(e.t, e.srv.URL, o)
}

// connectSocket opens a socket and initialises it with token (anonymous when empty).
func (e *testEnv) connectSocket(token string) *wsClient {
	e.t.Helper()
	c := e.dialSocket(dialOpts{})
	payload := map[string]any{}
	if token != "" {
		payload["Authorization"] = "Bearer " + token
	}
	c.init(payload)
	return c
}

func (c *wsClient) send(m any) {
	c.t.Helper()
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// init sends connection_init and waits for the ack.
func (c *wsClient) init(payload any) {
	c.t.Helper()
	c.send(map[string]any{"type": "connection_init", "payload": payload})
	if m := c.next(5 * time.Second); m.Type != "connection_ack" {
		c.t.Fatalf("want connection_ack, got %+v", m)
	}
}

// subscribe starts operation id.
func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	typ := "subscribe"
	if c.conn.Subprotocol() == "graphql-ws" {
		typ = "start"
	}
	c.send(map[string]any{"type": typ, "id": id, "payload": map[string]any{"query": query, "variables": vars}})
}

// next returns the next message that is not a keep-alive, failing the test after timeout.
func (c *wsClient) next(timeout time.Duration) wsMsg {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("socket closed while waiting for a message: %v", c.err)
			}
			if m.Type == "ka" || m.Type == "ping" || m.Type == "pong" {
				if m.Type == "ping" {
					c.send(map[string]any{"type": "pong"})
				}
				continue
			}
			return m
		case <-deadline:
			c.t.Fatalf("no message within %v", timeout)
		}
	}
}

// event returns the next event of operation id, failing on anything else.
func (c *wsClient) event(id string) liveEvent {
	c.t.Helper()
	m := c.next(10 * time.Second)
	if (m.Type != "next" && m.Type != "data") || m.ID != id {
		c.t.Fatalf("want an event of %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	var p struct {
		Data   map[string]liveEvent
		Errors []gqlError
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 || len(p.Data) != 1 {
		c.t.Fatalf("bad event payload %s (%v)", m.Payload, err)
	}
	for _, e := range p.Data {
		return e
	}
	panic("unreachable")
}

// quiet fails the test when a message other than a keep-alive arrives within d.
func (c *wsClient) quiet(d time.Duration) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("socket closed: %v", c.err)
			}
			if m.Type == "ka" || m.Type == "ping" || m.Type == "pong" {
				continue
			}
			c.t.Fatalf("want nothing, got %s %s %s", m.Type, m.ID, m.Payload)
		case <-deadline:
			return
		}
	}
}

// errorCode returns the extensions.code of the error that ended operation id.
func (c *wsClient) errorCode(id string) string {
	c.t.Helper()
	m := c.next(10 * time.Second)
	switch {
	case m.ID != id:
		c.t.Fatalf("want a message of %s, got %+v", id, m)
	case m.Type == "error":
		var errs []gqlError
		if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) == 0 {
			c.t.Fatalf("bad error payload %s", m.Payload)
		}
		return fmt.Sprint(errs[0].Extensions["code"])
	case m.Type == "next" || m.Type == "data":
		var p struct{ Errors []gqlError }
		if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) == 0 {
			c.t.Fatalf("want errors, got %s", m.Payload)
		}
		// A resolver's error ends the operation: gqlgen follows it with complete.
		if end := c.next(5 * time.Second); end.Type != "complete" || end.ID != id {
			c.t.Fatalf("want complete of %s after the error, got %+v", id, end)
		}
		return fmt.Sprint(p.Errors[0].Extensions["code"])
	}
	c.t.Fatalf("want an error of %s, got %+v", id, m)
	return ""
}

// closed waits for the server to close the socket, answering its pings as a client does,
// and returns the close code.
func (c *wsClient) closed(timeout time.Duration) websocket.StatusCode {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return websocket.CloseStatus(c.err)
			}
			if m.Type == "ping" {
				// The server may be closing the socket as it pings: a failed pong is no error.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
				cancel()
			}
		case <-deadline:
			c.t.Fatalf("socket still open after %v", timeout)
		}
	}
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
	c.subscribe(id, subOrder, vars)
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
		c.quiet(300 * time.Millisecond)
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
