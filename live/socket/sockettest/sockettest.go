// Package sockettest is a test client of the GraphQL-over-WebSocket protocol the service
// speaks at /graphql (graphql-transport-ws, and the legacy graphql-ws), for the tests of
// package socket and the system tests in tests/. Client is a full client on
// github.com/coder/websocket with a reading goroutine; Raw is a bare one on a plain
// connection, without a goroutine of its own, that sends its first messages in the same
// write as its upgrade request.
package sockettest

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Msg is a message of either subprotocol.
type Msg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Error is a GraphQL error of a message's payload.
type Error struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// Client is one WebSocket connection speaking graphql-transport-ws (or legacy graphql-ws).
type Client struct {
	T    testing.TB      // the test its failures fail; a subtest may set its own
	Conn *websocket.Conn // the connection, for what the methods do not cover
	Msgs chan Msg        // every message read, keep-alives included; closed when reading ends
	err  error           // the read error that ended Msgs
}

// Err returns the read error that ended Msgs (nil while it is open).
func (c *Client) Err() error { return c.err }

// DialOpts are the upgrade's options.
type DialOpts struct {
	Subprotocol string // default graphql-transport-ws
	Header      http.Header
}

// Dial opens a socket to the service at url (http://host:port) without initialising it,
// failing tb if it cannot; the socket is closed when the test ends.
func Dial(tb testing.TB, url string, o DialOpts) *Client {
	tb.Helper()
	c, resp, err := TryDial(url, o)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tb.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	c.T = tb
	tb.Cleanup(func() { _ = c.Conn.CloseNow() })
	return c
}

// Connect dials url and initialises the socket with token (anonymous when empty).
func Connect(tb testing.TB, url, token string) *Client {
	tb.Helper()
	c := Dial(tb, url, DialOpts{})
	payload := map[string]any{}
	if token != "" {
		payload["Authorization"] = "Bearer " + token
	}
	c.Init(payload)
	return c
}

// TryDial opens a socket to url, returning the upgrade's response and error as they are;
// the caller closes the socket (its T is unset).
func TryDial(url string, o DialOpts) (*Client, *http.Response, error) {
	if o.Subprotocol == "" {
		o.Subprotocol = "graphql-transport-ws"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1)+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{o.Subprotocol}, HTTPHeader: o.Header})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	c := &Client{Conn: conn, Msgs: make(chan Msg, 1024)}
	go func() {
		defer close(c.Msgs)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			var m Msg
			if err := json.Unmarshal(data, &m); err != nil {
				c.err = fmt.Errorf("bad message %s: %w", data, err)
				return
			}
			c.Msgs <- m
		}
	}()
	return c, resp, nil
}

// Send writes m as JSON.
func (c *Client) Send(m any) {
	c.T.Helper()
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.T.Fatalf("write: %v", err)
	}
}

// Init sends connection_init and waits for the ack.
func (c *Client) Init(payload any) {
	c.T.Helper()
	c.Send(map[string]any{"type": "connection_init", "payload": payload})
	if m := c.Next(5 * time.Second); m.Type != "connection_ack" {
		c.T.Fatalf("want connection_ack, got %+v", m)
	}
}

// Subscribe starts operation id (subscribe, or start in graphql-ws).
func (c *Client) Subscribe(id, query string, vars map[string]any) {
	c.T.Helper()
	typ := "subscribe"
	if c.Conn.Subprotocol() == "graphql-ws" {
		typ = "start"
	}
	c.Send(map[string]any{"type": typ, "id": id, "payload": map[string]any{"query": query, "variables": vars}})
}

func keepAlive(m Msg) bool { return m.Type == "ka" || m.Type == "ping" || m.Type == "pong" }

// Next returns the next message that is not a keep-alive, answering pings, and fails the
// test after timeout.
func (c *Client) Next(timeout time.Duration) Msg {
	c.T.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.Msgs:
			if !ok {
				c.T.Fatalf("socket closed while waiting for a message: %v", c.err)
			}
			if keepAlive(m) {
				if m.Type == "ping" {
					c.Send(map[string]any{"type": "pong"})
				}
				continue
			}
			return m
		case <-deadline:
			c.T.Fatalf("no message within %v", timeout)
		}
	}
}

// NextRaw returns the next message, keep-alives included, failing after 5 s.
func (c *Client) NextRaw() Msg {
	c.T.Helper()
	select {
	case m, ok := <-c.Msgs:
		if !ok {
			c.T.Fatalf("socket closed: %v", c.err)
		}
		return m
	case <-time.After(5 * time.Second):
		c.T.Fatal("no message")
	}
	return Msg{}
}

// Data returns the data of the next result of operation id, decoded into v, failing on
// anything else (an error included).
func (c *Client) Data(id string, v any) {
	c.T.Helper()
	m := c.Next(10 * time.Second)
	if (m.Type != "next" && m.Type != "data") || m.ID != id {
		c.T.Fatalf("want a result of %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	var p struct {
		Data   json.RawMessage
		Errors []Error
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
		c.T.Fatalf("bad result payload %s (%v)", m.Payload, err)
	}
	if err := json.Unmarshal(p.Data, v); err != nil {
		c.T.Fatalf("result data %s: %v", p.Data, err)
	}
}

// Quiet fails the test when a message other than a keep-alive arrives within d.
func (c *Client) Quiet(d time.Duration) {
	c.T.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-c.Msgs:
			if !ok {
				c.T.Fatalf("socket closed: %v", c.err)
			}
			if keepAlive(m) {
				continue
			}
			c.T.Fatalf("want nothing, got %s %s %s", m.Type, m.ID, m.Payload)
		case <-deadline:
			return
		}
	}
}

// ErrorCode returns the extensions.code of the error that ended operation id: an error
// message, or a result with errors followed by complete.
func (c *Client) ErrorCode(id string) string {
	c.T.Helper()
	m := c.Next(10 * time.Second)
	switch {
	case m.ID != id:
		c.T.Fatalf("want a message of %s, got %+v", id, m)
	case m.Type == "error":
		var errs []Error
		if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) == 0 {
			c.T.Fatalf("bad error payload %s", m.Payload)
		}
		return fmt.Sprint(errs[0].Extensions["code"])
	case m.Type == "next" || m.Type == "data":
		var p struct{ Errors []Error }
		if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) == 0 {
			c.T.Fatalf("want errors, got %s", m.Payload)
		}
		// A resolver's error ends the operation: gqlgen follows it with complete.
		if end := c.Next(5 * time.Second); end.Type != "complete" || end.ID != id {
			c.T.Fatalf("want complete of %s after the error, got %+v", id, end)
		}
		return fmt.Sprint(p.Errors[0].Extensions["code"])
	}
	c.T.Fatalf("want an error of %s, got %+v", id, m)
	return ""
}

// Closed waits for the server to close the socket, answering its pings as a client does,
// and returns the close code (-1 when the connection ended without a close frame).
func (c *Client) Closed(timeout time.Duration) websocket.StatusCode {
	c.T.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.Msgs:
			if !ok {
				return websocket.CloseStatus(c.err)
			}
			if m.Type == "ping" {
				// The server may be closing the socket as it pings: a failed pong is no error.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = c.Conn.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
				cancel()
			}
		case <-deadline:
			c.T.Fatalf("socket still open after %v", timeout)
		}
	}
}

// Raw is a graphql-transport-ws client on a plain connection: no goroutine of its own.
type Raw struct {
	conn net.Conn
	r    *bufio.Reader
}

// OpenRaw upgrades, initialises with token and subscribes operation "1" to query, all in
// one write, and waits for connection_ack; the connection is closed when the test ends.
func OpenRaw(tb testing.TB, url, token, query string, vars map[string]any) *Raw {
	tb.Helper()
	host := strings.TrimPrefix(url, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	init, _ := json.Marshal(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	sub, _ := json.Marshal(map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{"query": query, "variables": vars}})
	req := "GET /graphql HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
	if _, err := conn.Write(append(append([]byte(req), ClientFrame(init)...), ClientFrame(sub)...)); err != nil {
		tb.Fatal(err)
	}
	c := &Raw{conn: conn, r: bufio.NewReader(conn)}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("upgrade: %v %v", resp, err)
	}
	if m := c.Next(tb); m.Type != "connection_ack" {
		tb.Fatalf("want connection_ack, got %+v", m)
	}
	return c
}

// Next returns the next message that is not a ping, failing after 10 s.
func (c *Raw) Next(tb testing.TB) Msg {
	tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var head [2]byte
		if _, err := io.ReadFull(c.r, head[:]); err != nil {
			tb.Fatalf("read: %v", err)
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
			tb.Fatalf("read: %v", err)
		}
		if head[0]&0x0f != 1 { // not a text frame
			tb.Fatalf("frame of opcode %d: %q", head[0]&0x0f, payload)
		}
		var m Msg
		if err := json.Unmarshal(payload, &m); err != nil {
			tb.Fatalf("bad message %q", payload)
		}
		if m.Type != "ping" {
			return m
		}
	}
}

// ClientFrame is a masked text frame of payload (with a zero mask, which leaves the payload
// as is).
func ClientFrame(payload []byte) []byte {
	b := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	}
	return append(append(b, 0, 0, 0, 0), payload...)
}
