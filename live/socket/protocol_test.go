package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shop/api/store/storetest"
)

// The transports: authentication, graphql-transport-ws close codes, legacy graphql-ws,
// ping/pong, origins, SSE and shutdown. Transport behaviour does not depend on the backend,
// so these run on the embedded one.

func newLiveEnv(t *testing.T, change func(*config)) *testEnv {
	t.Helper()
	cfg := config{SQLitePath: storetest.SQLitePath(t)}
	liveConfig(&cfg)
	if change != nil {
		change(&cfg)
	}
	return newTestEnv(t, cfg)
}

func TestSocketAuthentication(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, nil)
	s := env.newLiveShop()
	bearer := "Bearer " + s.customer.Token

	// The init payload's key in any case, or the upgrade's header, identifies the caller.
	for name, open := range map[string]func() *wsClient{
		"payload Authorization": func() *wsClient {
			c := env.dialSocket(dialOpts{})
			c.init(map[string]any{"Authorization": bearer})
			return c
		},
		"payload authorization": func() *wsClient {
			c := env.dialSocket(dialOpts{})
			c.init(map[string]any{"authorization": bearer})
			return c
		},
		"payload AUTHORIZATION": func() *wsClient {
			c := env.dialSocket(dialOpts{})
			c.init(map[string]any{"AUTHORIZATION": bearer})
			return c
		},
		"upgrade header": func() *wsClient {
			c := env.dialSocket(dialOpts{header: http.Header{"Authorization": {bearer}}})
			c.init(nil)
			return c
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := open()
			c.t = t
			c.subscribe("1", subOrder, map[string]any{"id": s.order})
			c.quiet(100 * time.Millisecond) // no error: the customer may see the order
		})
	}

	// A malformed, forged or expired token closes the socket with 4403.
	forged := s.customer.Token[:len(s.customer.Token)-4] + "AAAA"
	for name, open := range map[string]func() *wsClient{
		"forged in payload": func() *wsClient {
			c := env.dialSocket(dialOpts{})
			c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + forged}})
			return c
		},
		"malformed in payload": func() *wsClient {
			c := env.dialSocket(dialOpts{})
			c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Token abc"}})
			return c
		},
		"forged in header": func() *wsClient {
			c := env.dialSocket(dialOpts{header: http.Header{"Authorization": {"Bearer " + forged}}})
			c.send(map[string]any{"type": "connection_init"})
			return c
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := open()
			c.t = t
			if code := c.closed(5 * time.Second); code != 4403 {
				t.Fatalf("close code %d, want 4403", code)
			}
		})
	}
}

func TestSocketCloseCodes(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, func(c *config) { c.Live.InitTimeout = 300 * time.Millisecond })
	token := env.signUp("CUSTOMER").Token
	cases := []struct {
		name string
		send []any
		want websocket.StatusCode
	}{
		{"no connection_init in time", nil, 4408},
		{"subscribe before connection_init", []any{map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{"query": subMine}}}, 4401},
		{"second connection_init", []any{map[string]any{"type": "connection_init"}, map[string]any{"type": "connection_init"}}, 4429},
		{"invalid JSON", []any{json.RawMessage(`{"type":`)}, 4400},
		{"unknown message type", []any{map[string]any{"type": "connection_init"}, map[string]any{"type": "hello"}}, 4400},
		{"server-only message from the client", []any{map[string]any{"type": "connection_init"}, map[string]any{"type": "next", "id": "1"}}, 4400},
		{"subscribe without id", []any{map[string]any{"type": "connection_init"}, map[string]any{"type": "subscribe", "payload": map[string]any{"query": subMine}}}, 4400},
		{"duplicate operation id", []any{
			// Signed in, so the first operation stays live (an anonymous one would fail at
			// once and free its ID).
			map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}},
			map[string]any{"type": "subscribe", "id": "dup", "payload": map[string]any{"query": subMine}},
			map[string]any{"type": "subscribe", "id": "dup", "payload": map[string]any{"query": subMine}},
		}, 4409},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialSocketURL(t, env.srv.URL, dialOpts{})
			for _, m := range tc.send {
				if raw, ok := m.(json.RawMessage); ok {
					_ = c.conn.Write(context.Background(), websocket.MessageText, raw)
					continue
				}
				c.send(m)
			}
			if code := c.closed(5 * time.Second); code != tc.want {
				t.Fatalf("close code %d, want %d", code, tc.want)
			}
		})
	}
}

func TestSocketDuplicateIDNeedsALiveOperation(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, nil)
	c := env.connectSocket(env.signUp("CUSTOMER").Token)
	// An operation that ended (here with an error) frees its ID.
	c.subscribe("1", subOrder, map[string]any{"id": unknownOrderID})
	if code := c.errorCode("1"); code != "NOT_FOUND" {
		t.Fatalf("code %s", code)
	}
	c.subscribe("1", subOrder, map[string]any{"id": unknownOrderID})
	if code := c.errorCode("1"); code != "NOT_FOUND" {
		t.Fatalf("code %s", code)
	}
	// A completed one too.
	c.subscribe("2", subMine, nil)
	env.waitSubscribers(1)
	c.send(map[string]any{"type": "complete", "id": "2"})
	eventually(t, 5*time.Second, func() bool { return env.svc.LiveStats().Subscribers == 0 }, "unsubscribe")
	c.subscribe("2", subMine, nil)
	env.waitSubscribers(1)
}

func TestSocketPingPong(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, func(c *config) { c.Live.PingInterval = 100 * time.Millisecond })
	// The server answers pings, before and after connection_init...
	c := env.dialSocket(dialOpts{})
	c.send(map[string]any{"type": "ping"})
	if m := c.nextRaw(); m.Type != "pong" {
		t.Fatalf("want pong, got %+v", m)
	}
	c.init(nil)
	c.send(map[string]any{"type": "ping", "payload": map[string]any{"n": 1}})
	if m := c.nextRaw(); m.Type != "pong" {
		t.Fatalf("want pong, got %+v", m)
	}
	// ...and pings the client; one that never answers is dropped.
	if m := c.nextRaw(); m.Type != "ping" {
		t.Fatalf("want a server ping, got %+v", m)
	}
	if code := c.closed(2 * time.Second); code != -1 {
		// A dead peer is dropped without a close frame.
		t.Logf("close code %d", code)
	}
	eventually(t, 2*time.Second, func() bool { return env.svc.LiveStats().Sockets == 0 }, "dead socket dropped")

	// A peer that answers stays, over many intervals (a loaded machine, as under the race
	// detector, may stretch them: the deadline is only a bound).
	good := env.connectSocket("")
	deadline := time.Now().Add(5 * time.Second)
	pings := 0
	for pings < 5 && time.Now().Before(deadline) {
		select {
		case m := <-good.msgs:
			if m.Type == "ping" {
				pings++
				good.send(map[string]any{"type": "pong"})
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	if pings < 5 || env.svc.LiveStats().Sockets != 1 {
		t.Fatalf("%d pings, %d sockets: the answering peer was dropped", pings, env.svc.LiveStats().Sockets)
	}
}

// nextRaw returns the next message, keep-alives included.
func (c *wsClient) nextRaw() wsMsg {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("socket closed: %v", c.err)
		}
		return m
	case <-time.After(5 * time.Second):
		c.t.Fatal("no message")
	}
	return wsMsg{}
}

func TestLegacyGraphQLWSProtocol(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, func(c *config) { c.Live.PingInterval = 100 * time.Millisecond })
	s := env.newLiveShop()
	c := env.dialSocket(dialOpts{subprotocol: "graphql-ws"})
	if c.conn.Subprotocol() != "graphql-ws" {
		t.Fatalf("subprotocol %q", c.conn.Subprotocol())
	}
	c.init(map[string]any{"Authorization": "Bearer " + s.customer.Token})
	c.subscribe("1", subOrder, map[string]any{"id": s.order})
	env.waitSubscribers(1)
	env.moveOrderTo(s.merchant, s.order, "PAID")
	if e := c.event("1"); e.Status != "PAID" {
		t.Fatalf("event %+v", e)
	}
	// Keep-alives flow ("ka"), and WebSocket pings are answered by the client library, so
	// the socket stays up across several ping intervals.
	time.Sleep(350 * time.Millisecond)
	if env.svc.LiveStats().Sockets != 1 {
		t.Fatal("legacy socket dropped although its peer answers pings")
	}
	bad := env.dialSocket(dialOpts{subprotocol: "graphql-ws"})
	bad.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer nope"}})
	if code := bad.closed(5 * time.Second); code != 4403 {
		t.Fatalf("legacy forged token: close %d, want 4403", code)
	}
}

func TestSocketOrigins(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, func(c *config) { c.Live.Origins = []string{"shop.example.com", "*.shop.example.com"} })
	for origin, want := range map[string]int{
		"":                                 http.StatusSwitchingProtocols, // non-browser clients
		env.srv.URL:                        http.StatusSwitchingProtocols, // same origin
		"https://shop.example.com":         http.StatusSwitchingProtocols,
		"https://admin.shop.example.com":   http.StatusSwitchingProtocols,
		"https://evil.example.com":         http.StatusForbidden,
		"https://shop.example.com.evil.io": http.StatusForbidden,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := tryDialSocket(env.srv.URL, dialOpts{header: h})
		got := 0
		if resp != nil {
			got = resp.StatusCode
		}
		if c != nil {
			_ = c.conn.CloseNow()
		}
		if got != want {
			t.Errorf("origin %q: HTTP %d (%v), want %d", origin, got, err, want)
		}
	}
}

func TestShutdownClosesSocketsWithGoingAway(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, nil)
	s := env.newLiveShop()
	c := env.connectSocket(s.customer.Token)
	env.subscribeOrder(c, "1", s.order, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	env.svc.Shutdown(ctx)
	if code := c.closed(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if _, resp, err := tryDialSocket(env.srv.URL, dialOpts{}); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade while draining: %v", err)
	}
}

func TestSubscriptionOverServerSentEvents(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		events := openSSE(t, env.srv.URL, s.customer.Token, subOrder, map[string]any{"id": s.order})
		env.waitSubscribers(1)
		env.moveOrderTo(s.merchant, s.order, "PAID")
		if e := nextSSEEvent(t, events); e.Status != "PAID" {
			t.Fatalf("SSE event %+v, want PAID", e)
		}
	})
}

// openSSE posts query with vars as token's subscription over server-sent events to the
// server at base, fails unless the stream opens (200, text/event-stream), and returns the
// data of its events as they arrive; the stream is closed when the test ends.
func openSSE(t *testing.T, base, token, query string, vars map[string]any) <-chan string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("SSE: HTTP %d, content type %q", resp.StatusCode, ct)
	}
	events := make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- data
			}
		}
	}()
	return events
}

// nextSSEEvent returns the next orderStatusChanged event of an openSSE stream, failing after
// 10 s without one.
func nextSSEEvent(t *testing.T, events <-chan string) liveEvent {
	t.Helper()
	select {
	case data := <-events:
		var p struct {
			Data struct{ OrderStatusChanged liveEvent }
		}
		if err := json.Unmarshal([]byte(data), &p); err != nil {
			t.Fatalf("SSE event %s: %v", data, err)
		}
		return p.Data.OrderStatusChanged
	case <-time.After(10 * time.Second):
		t.Fatal("no SSE event within 10 s")
	}
	return liveEvent{}
}

// A socket outlives no token: when its token expires the socket closes with 4403 within a
// heartbeat, and an operation started after the expiry, before the next heartbeat, closes
// it too. (Tokens carry whole seconds: a 2s token ends within 1 to 2 seconds.)
func TestSocketClosesWhenItsTokenExpires(t *testing.T) {
	t.Parallel()
	t.Run("at a heartbeat", func(t *testing.T) {
		t.Parallel()
		env := newLiveEnv(t, func(c *config) {
			c.TokenTTL, c.Live.PingInterval = 2*time.Second, 200*time.Millisecond
			c.AdminEmail, c.AdminPassword = testAdminEmail, testAdminPassword
		})
		c := env.connectSocket(env.logIn(testAdminEmail, testAdminPassword).Token) // an ADMIN's: the costliest to leave open
		c.subscribe("mine", subMine, nil)
		if code := c.closed(5 * time.Second); code != 4403 {
			t.Fatalf("close code %d, want 4403 once the token expired", code)
		}
	})
	t.Run("at an operation", func(t *testing.T) {
		t.Parallel()
		env := newLiveEnv(t, func(c *config) { c.TokenTTL, c.Live.PingInterval = 2*time.Second, time.Minute })
		c := env.connectSocket(env.signUp("CUSTOMER").Token)
		c.subscribe("before", subMine, nil)
		c.quiet(2100 * time.Millisecond) // the token is past its expiry now; no heartbeat came
		c.subscribe("after", subMine, nil)
		if code := c.closed(5 * time.Second); code != 4403 {
			t.Fatalf("close code %d, want 4403 for an operation after the token expired", code)
		}
	})
}

// A stream of server-sent events ends when the token it was opened with expires.
func TestSSEStreamEndsWhenItsTokenExpires(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, func(c *config) { c.TokenTTL = 2 * time.Second })
	events := openSSE(t, env.srv.URL, env.signUp("CUSTOMER").Token, subMine, nil)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, open := <-events:
			if !open {
				return
			}
		case <-deadline:
			t.Fatal("the stream is still open 5s after its 2s token was issued")
		}
	}
}
