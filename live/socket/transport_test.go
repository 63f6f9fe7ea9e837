package tests

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// What the event-loop transport promises beyond the protocol: sockets and subscriptions hold
// no goroutine, bytes sent right behind the upgrade request are not lost, and a peer that
// stops reading is cut off with 1013 instead of growing the server's memory.

func TestSocketsAndSubscriptionsHoldNoGoroutine(t *testing.T) {
	env := newLiveEnv(t, nil)
	s := env.newLiveShop()
	warm := openRawSocket(t, env.srv.URL, s.customer.Token, subOrder, map[string]any{"id": s.order})
	env.waitSubscribers(1)
	time.Sleep(100 * time.Millisecond) // let the set-up's short-lived goroutines end
	before := runtime.NumGoroutine()

	// Each socket sends connection_init and subscribe in the same write as its upgrade
	// request: they reach net/http's buffer and must be replayed into the socket.
	const n = 50
	socks := make([]*rawSocket, n)
	for i := range socks {
		socks[i] = openRawSocket(t, env.srv.URL, s.customer.Token, subOrder, map[string]any{"id": s.order})
	}
	env.waitSubscribers(n + 1)
	time.Sleep(100 * time.Millisecond)
	// The clients are plain connections read by this goroutine: every goroutine more would
	// be the server's. The old transport held three per socket.
	if grown := runtime.NumGoroutine() - before; grown >= 10 {
		t.Fatalf("%d goroutines more for %d subscribed sockets", grown, n)
	}

	env.moveOrderTo(s.merchant, s.order, "PAID")
	for i, c := range append(socks, warm) {
		m := c.next(t)
		if m.Type != "next" || !strings.Contains(string(m.Payload), `"status":"PAID"`) {
			t.Fatalf("socket %d: want the PAID event, got %s %s", i, m.Type, m.Payload)
		}
	}
}

func TestSlowReaderIsClosedWithTryAgainLater(t *testing.T) {
	env := newLiveEnv(t, func(c *config) { c.Live.SendBuffer = 8 << 10 })
	m := env.signUp("MERCHANT")
	product := env.createProduct(m, "Heavy", 100, 1)
	var out struct {
		UpdateProduct struct{ UserErrors []map[string]any }
	}
	env.as(m.Token).must(`mutation($in: UpdateProductInput!) { updateProduct(input: $in) { userErrors { message } } }`,
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
	conn, _, err := websocket.Dial(ctx, strings.Replace(env.srv.URL, "http", "ws", 1)+"/graphql", &websocket.DialOptions{
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
	eventually(t, 10*time.Second, func() bool { return env.svc.LiveStats().SlowSubscribers == 1 }, "the socket cut off")

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
	eventually(t, 5*time.Second, func() bool { return env.svc.LiveStats().Sockets == 0 }, "slow socket dropped")
}

// rawSocket is a graphql-transport-ws client on a plain connection: no goroutine of its own.
type rawSocket struct {
	conn net.Conn
	r    *bufio.Reader
}

// openRawSocket upgrades, initialises with token and subscribes, all in one write, and
// waits for connection_ack.
func openRawSocket(t *testing.T, url, token, query string, vars map[string]any) *rawSocket {
	t.Helper()
	host := strings.TrimPrefix(url, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	init, _ := json.Marshal(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	sub, _ := json.Marshal(map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{"query": query, "variables": vars}})
	req := "GET /graphql HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
	if _, err := conn.Write(append(append([]byte(req), clientFrame(init)...), clientFrame(sub)...)); err != nil {
		t.Fatal(err)
	}
	c := &rawSocket{conn: conn, r: bufio.NewReader(conn)}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if m := c.next(t); m.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v", m)
	}
	return c
}

// next returns the next message that is not a ping.
func (c *rawSocket) next(t *testing.T) wsMsg {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var head [2]byte
		if _, err := io.ReadFull(c.r, head[:]); err != nil {
			t.Fatalf("read: %v", err)
		}
		n := int(head[1] & 0x7f)
		switch n {
		case 126:
			var ext [2]byte
			_, _ = io.ReadFull(c.r, ext[:])
			n = int(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			_, _ = io.ReadFull(c.r, ext[:])
			n = int(binary.BigEndian.Uint64(ext[:]))
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.r, payload); err != nil {
			t.Fatalf("read: %v", err)
		}
		if head[0]&0x0f != 1 { // not a text frame
			t.Fatalf("frame of opcode %d: %q", head[0]&0x0f, payload)
		}
		var m wsMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatalf("bad message %q", payload)
		}
		if m.Type != "ping" {
			return m
		}
	}
}

// clientFrame is a masked text frame (with a zero mask, which leaves the payload as is).
func clientFrame(payload []byte) []byte {
	b := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	}
	return append(append(b, 0, 0, 0, 0), payload...)
}
