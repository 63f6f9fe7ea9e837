package socket_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shop/api/api"
	"github.com/shop/api/live/socket/sockettest"
)

// The protocol at /graphql: authentication, graphql-transport-ws close codes, legacy
// graphql-ws, ping/pong, origins, shutdown and the token's expiry.

func TestSocketAuthentication(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	s := newShop(t, srv)
	bearer := "Bearer " + s.customer

	// The init payload's key in any case, or the upgrade's header, identifies the caller.
	for name, open := range map[string]func(t *testing.T) *sockettest.Client{
		"payload Authorization": func(t *testing.T) *sockettest.Client {
			c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{})
			c.Init(map[string]any{"Authorization": bearer})
			return c
		},
		"payload authorization": func(t *testing.T) *sockettest.Client {
			c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{})
			c.Init(map[string]any{"authorization": bearer})
			return c
		},
		"payload AUTHORIZATION": func(t *testing.T) *sockettest.Client {
			c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{})
			c.Init(map[string]any{"AUTHORIZATION": bearer})
			return c
		},
		"upgrade header": func(t *testing.T) *sockettest.Client {
			c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{Header: http.Header{"Authorization": {bearer}}})
			c.Init(nil)
			return c
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := open(t)
			c.Subscribe("1", subOrder, map[string]any{"id": s.order})
			c.Quiet(100 * time.Millisecond) // no error: the customer may see the order
		})
	}

	// A malformed, forged or expired token closes the socket with 4403.
	forged := s.customer[:len(s.customer)-4] + "AAAA"
	for name, open := range map[string]func(t *testing.T) *sockettest.Client{
		"forged in payload": func(t *testing.T) *sockettest.Client {
			c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{})
			c.Send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + forged}})
			return c
		},
		"malformed in payload": func(t *testing.T) *sockettest.Client {
			c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{})
			c.Send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Token abc"}})
			return c
		},
		"forged in header": func(t *testing.T) *sockettest.Client {
			c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{Header: http.Header{"Authorization": {"Bearer " + forged}}})
			c.Send(map[string]any{"type": "connection_init"})
			return c
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := open(t)
			if code := c.Closed(5 * time.Second); code != 4403 {
				t.Fatalf("close code %d, want 4403", code)
			}
		})
	}
}

func TestSocketCloseCodes(t *testing.T) {
	t.Parallel()
	srv := start(t, func(c *api.Config) { c.Live.InitTimeout = 300 * time.Millisecond })
	token := signUp(t, srv, "CUSTOMER")
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
			c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{})
			for _, m := range tc.send {
				if raw, ok := m.(json.RawMessage); ok {
					_ = c.Conn.Write(context.Background(), websocket.MessageText, raw)
					continue
				}
				c.Send(m)
			}
			if code := c.Closed(5 * time.Second); code != tc.want {
				t.Fatalf("close code %d, want %d", code, tc.want)
			}
		})
	}
}

func TestSocketDuplicateIDNeedsALiveOperation(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	c := sockettest.Connect(t, srv.URL, signUp(t, srv, "CUSTOMER"))
	// An operation that ended (here with an error) frees its ID.
	c.Subscribe("1", subOrder, map[string]any{"id": unknownOrderID})
	if code := c.ErrorCode("1"); code != "NOT_FOUND" {
		t.Fatalf("code %s", code)
	}
	c.Subscribe("1", subOrder, map[string]any{"id": unknownOrderID})
	if code := c.ErrorCode("1"); code != "NOT_FOUND" {
		t.Fatalf("code %s", code)
	}
	// A completed one too.
	c.Subscribe("2", subMine, nil)
	waitSubscribers(t, srv, 1)
	c.Send(map[string]any{"type": "complete", "id": "2"})
	eventually(t, 5*time.Second, func() bool { return srv.LiveStats().Subscribers == 0 }, "unsubscribe")
	c.Subscribe("2", subMine, nil)
	waitSubscribers(t, srv, 1)
}

func TestSocketPingPong(t *testing.T) {
	t.Parallel()
	srv := start(t, func(c *api.Config) { c.Live.PingInterval = 100 * time.Millisecond })
	// The server answers pings, before and after connection_init...
	c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{})
	c.Send(map[string]any{"type": "ping"})
	if m := c.NextRaw(); m.Type != "pong" {
		t.Fatalf("want pong, got %+v", m)
	}
	c.Init(nil)
	c.Send(map[string]any{"type": "ping", "payload": map[string]any{"n": 1}})
	if m := c.NextRaw(); m.Type != "pong" {
		t.Fatalf("want pong, got %+v", m)
	}
	// ...and pings the client; one that never answers is dropped.
	if m := c.NextRaw(); m.Type != "ping" {
		t.Fatalf("want a server ping, got %+v", m)
	}
	if code := c.Closed(2 * time.Second); code != -1 {
		// A dead peer is dropped without a close frame.
		t.Logf("close code %d", code)
	}
	eventually(t, 2*time.Second, func() bool { return srv.LiveStats().Sockets == 0 }, "dead socket dropped")

	// A peer that answers stays, over many intervals (a loaded machine, as under the race
	// detector, may stretch them: the deadline is only a bound).
	good := sockettest.Connect(t, srv.URL, "")
	deadline := time.Now().Add(5 * time.Second)
	pings := 0
	for pings < 5 && time.Now().Before(deadline) {
		select {
		case m := <-good.Msgs:
			if m.Type == "ping" {
				pings++
				good.Send(map[string]any{"type": "pong"})
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	if pings < 5 || srv.LiveStats().Sockets != 1 {
		t.Fatalf("%d pings, %d sockets: the answering peer was dropped", pings, srv.LiveStats().Sockets)
	}
}

func TestLegacyGraphQLWSProtocol(t *testing.T) {
	t.Parallel()
	srv := start(t, func(c *api.Config) { c.Live.PingInterval = 100 * time.Millisecond })
	s := newShop(t, srv)
	c := sockettest.Dial(t, srv.URL, sockettest.DialOpts{Subprotocol: "graphql-ws"})
	if c.Conn.Subprotocol() != "graphql-ws" {
		t.Fatalf("subprotocol %q", c.Conn.Subprotocol())
	}
	c.Init(map[string]any{"Authorization": "Bearer " + s.customer})
	c.Subscribe("1", subOrder, map[string]any{"id": s.order})
	waitSubscribers(t, srv, 1)
	s.moveOrderTo(t, srv, "PAID")
	if status := eventStatus(c, "1"); status != "PAID" {
		t.Fatalf("event of status %q", status)
	}
	// Keep-alives flow ("ka"), and WebSocket pings are answered by the client library, so
	// the socket stays up across several ping intervals.
	time.Sleep(350 * time.Millisecond)
	if srv.LiveStats().Sockets != 1 {
		t.Fatal("legacy socket dropped although its peer answers pings")
	}
	bad := sockettest.Dial(t, srv.URL, sockettest.DialOpts{Subprotocol: "graphql-ws"})
	bad.Send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer nope"}})
	if code := bad.Closed(5 * time.Second); code != 4403 {
		t.Fatalf("legacy forged token: close %d, want 4403", code)
	}
}

func TestSocketOrigins(t *testing.T) {
	t.Parallel()
	srv := start(t, func(c *api.Config) { c.Live.Origins = []string{"shop.example.com", "*.shop.example.com"} })
	for origin, want := range map[string]int{
		"":                                 http.StatusSwitchingProtocols, // non-browser clients
		srv.URL:                            http.StatusSwitchingProtocols, // same origin
		"https://shop.example.com":         http.StatusSwitchingProtocols,
		"https://admin.shop.example.com":   http.StatusSwitchingProtocols,
		"https://evil.example.com":         http.StatusForbidden,
		"https://shop.example.com.evil.io": http.StatusForbidden,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := sockettest.TryDial(srv.URL, sockettest.DialOpts{Header: h})
		got := 0
		if resp != nil {
			got = resp.StatusCode
		}
		if c != nil {
			_ = c.Conn.CloseNow()
		}
		if got != want {
			t.Errorf("origin %q: HTTP %d (%v), want %d", origin, got, err, want)
		}
	}
}

func TestShutdownClosesSocketsWithGoingAway(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	s := newShop(t, srv)
	c := sockettest.Connect(t, srv.URL, s.customer)
	c.Subscribe("1", subOrder, map[string]any{"id": s.order})
	waitSubscribers(t, srv, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	if code := c.Closed(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if _, resp, err := sockettest.TryDial(srv.URL, sockettest.DialOpts{}); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade while draining: %v", err)
	}
}

// A socket outlives no token: when its token expires the socket closes with 4403 within a
// heartbeat, and an operation started after the expiry, before the next heartbeat, closes
// it too. (Tokens carry whole seconds: a 2s token ends within 1 to 2 seconds.)
func TestSocketClosesWhenItsTokenExpires(t *testing.T) {
	t.Parallel()
	t.Run("at a heartbeat", func(t *testing.T) {
		t.Parallel()
		srv := start(t, func(c *api.Config) {
			c.TokenTTL, c.Live.PingInterval = 2*time.Second, 200*time.Millisecond
			c.AdminEmail, c.AdminPassword = adminEmail, adminPassword
		})
		c := sockettest.Connect(t, srv.URL, logIn(t, srv, adminEmail, adminPassword)) // an ADMIN's: the costliest to leave open
		c.Subscribe("mine", subMine, nil)
		if code := c.Closed(5 * time.Second); code != 4403 {
			t.Fatalf("close code %d, want 4403 once the token expired", code)
		}
	})
	t.Run("at an operation", func(t *testing.T) {
		t.Parallel()
		srv := start(t, func(c *api.Config) { c.TokenTTL, c.Live.PingInterval = 2*time.Second, time.Minute })
		c := sockettest.Connect(t, srv.URL, signUp(t, srv, "CUSTOMER"))
		c.Subscribe("before", subMine, nil)
		c.Quiet(2100 * time.Millisecond) // the token is past its expiry now; no heartbeat came
		c.Subscribe("after", subMine, nil)
		if code := c.Closed(5 * time.Second); code != 4403 {
			t.Fatalf("close code %d, want 4403 for an operation after the token expired", code)
		}
	})
}
