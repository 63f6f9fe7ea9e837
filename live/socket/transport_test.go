package socket_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/shop/api/api"
	"github.com/shop/api/live/socket/sockettest"
)

// What the event-loop transport promises beyond the protocol: sockets and subscriptions hold
// no goroutine, bytes sent right behind the upgrade request are not lost, and a peer that
// stops reading is cut off with 1013 instead of growing the server's memory.

func TestSocketsAndSubscriptionsHoldNoGoroutine(t *testing.T) {
	srv := start(t, nil)
	s := newShop(t, srv)
	warm := sockettest.OpenRaw(t, srv.URL, s.customer, subOrder, map[string]any{"id": s.order})
	waitSubscribers(t, srv, 1)
	time.Sleep(100 * time.Millisecond) // let the set-up's short-lived goroutines end
	before := runtime.NumGoroutine()

	// Each socket sends connection_init and subscribe in the same write as its upgrade
	// request: they reach net/http's buffer and must be replayed into the socket.
	const n = 50
	socks := make([]*sockettest.Raw, n)
	for i := range socks {
		socks[i] = sockettest.OpenRaw(t, srv.URL, s.customer, subOrder, map[string]any{"id": s.order})
	}
	waitSubscribers(t, srv, n+1)
	time.Sleep(100 * time.Millisecond)
	// The clients are plain connections read by this goroutine: every goroutine more would
	// be the server's. The old transport held three per socket.
	if grown := runtime.NumGoroutine() - before; grown >= 10 {
		t.Fatalf("%d goroutines more for %d subscribed sockets", grown, n)
	}

	s.moveOrderTo(t, srv, "PAID")
	for i, c := range append(socks, warm) {
		m := c.Next(t)
		if m.Type != "next" || !strings.Contains(string(m.Payload), `"status":"PAID"`) {
			t.Fatalf("socket %d: want the PAID event, got %s %s", i, m.Type, m.Payload)
		}
	}
}

func TestSlowReaderIsClosedWithTryAgainLater(t *testing.T) {
	srv := start(t, func(c *api.Config) { c.Live.SendBuffer = 8 << 10 })
	m := signUp(t, srv, "MERCHANT")
	product := createProduct(t, srv, m, "Heavy", 100, 1)
	var out struct {
		UpdateProduct struct{ UserErrors []map[string]any }
	}
	srv.Must(t, m, `mutation($in: UpdateProductInput!) { updateProduct(input: $in) { userErrors { message } } }`,
		map[string]any{"in": map[string]any{"id": product, "description": strings.Repeat("x", 10_000)}}, &out)

	// A client with a small receive window that stops reading: what the server writes
	// piles up in its own send queue.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPClient:   &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 22)
	write := func(v any) {
		b, _ := json.Marshal(v)
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	write(map[string]any{"type": "connection_init"})
	if _, data, err := conn.Read(ctx); err != nil || !strings.Contains(string(data), "connection_ack") {
		t.Fatalf("ack: %s %v", data, err)
	}
	// 40 answers of 200 KB each: far more than the kernel's buffers hold.
	var q strings.Builder
	q.WriteString("query($id: ID!) {")
	for i := range 20 {
		fmt.Fprintf(&q, " p%d: product(id: $id) { description }", i)
	}
	q.WriteString(" }")
	for i := range 40 {
		write(map[string]any{"type": "subscribe", "id": fmt.Sprint(i), "payload": map[string]any{"query": q.String(), "variables": map[string]any{"id": product}}})
	}
	// Not reading, while the server answers, until it gives up on this client.
	eventually(t, 10*time.Second, func() bool { return srv.LiveStats().SlowSubscribers == 1 }, "the socket cut off")

	answered := 0
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != 1013 {
				t.Fatalf("closed with %d (%v) after %d answers, want 1013", code, err, answered)
			}
			break
		}
		if strings.Contains(string(data), `"type":"next"`) {
			answered++
		}
	}
	if answered >= 40 {
		t.Fatalf("all %d answers were sent: the send buffer did not bound the backlog", answered)
	}
	eventually(t, 5*time.Second, func() bool { return srv.LiveStats().Sockets == 0 }, "slow socket dropped")
}
