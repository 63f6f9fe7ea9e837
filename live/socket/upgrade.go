package socket

import (
	"context"
	"crypto/sha1" //nolint:gosec // the WebSocket handshake's accept key (RFC 6455)
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"syscall"

	"github.com/99designs/gqlgen/graphql"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// InitFunc authenticates a socket from its connection_init payload; ctx is the upgrade
// request's. It returns the context the socket's operations run in, or an error, which
// closes the socket with 4403.
type InitFunc func(ctx context.Context, payload map[string]any) (context.Context, error)

// Transport returns the gqlgen transport that accepts WebSocket upgrades onto these sockets,
// authenticating each with init.
func (ss *Sockets) Transport(init InitFunc) graphql.Transport {
	return transport{sockets: ss, init: init}
}

type transport struct {
	sockets *Sockets
	init    InitFunc
}

func (transport) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") != ""
}

// Do answers the upgrade itself, then hands the connection to the event loop: nothing of
// net/http (its goroutine, its buffers) stays with the socket.
func (t transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ss := t.sockets
	if ss.isDraining() {
		w.Header().Set("Connection", "close")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet || !headerHas(r.Header, "Connection", "upgrade") ||
		!headerHas(r.Header, "Upgrade", "websocket") || r.Header.Get("Sec-WebSocket-Version") != "13" || key == "" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "a WebSocket upgrade (version 13) is expected", http.StatusBadRequest)
		return
	}
	if !ss.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	addr := ss.cfg.AddressOf(r)
	if !ss.holdAddress(addr) {
		ss.Refused.Add(1)
		http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
		return
	}
	held := true // until the socket is registered: then forget gives it back
	defer func() {
		if held {
			ss.releaseAddress(addr)
		}
	}()
	subprotocol := chooseSubprotocol(r.Header)
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot take over the connection", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		http.Error(w, "cannot take over the connection", http.StatusInternalServerError)
		return
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		// TLS is terminated in front of the service (see the README); a socket the event
		// loop cannot poll is refused rather than served by a goroutine.
		_, _ = conn.Write([]byte("HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
		_ = conn.Close()
		return
	}
	// Bytes the client sent right behind its upgrade request (often its connection_init)
	// are already in net/http's reader: they are replayed into the socket below.
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	early = append([]byte(nil), early...)
	if _, err := tcp.Write(handshake(key, subprotocol)); err != nil {
		_ = tcp.Close()
		return
	}
	nbc, err := handOver(tcp)
	if err != nil {
		_ = tcp.Close()
		return
	}
	// The connection's context outlives the request's, which net/http cancels once this
	// handler returns; its values (request ID, viewer, token error) stay.
	ctx, cancel := context.WithCancel(ss.cfg.Detach(r))
	s := &socket{
		sockets:     ss,
		exec:        exec,
		init:        t.init,
		ctx:         ctx,
		cancel:      cancel,
		headers:     traceHeaders(r.Header),
		transportWS: subprotocol == subprotocolTransportWS,
		slot:        -1,
		addr:        addr,
	}
	wsc := websocket.NewServerConn(ss.upgrader, nbc, subprotocol, false, false)
	wsc.Engine = ss.engine
	wsc.Execute = nbhttp.SyncExecutor // messages are handled on the event loop; the work goes to the pools
	wsc.SetSession(s)
	s.wsc = wsc
	nbc.SetSession(wsc)
	nbc.OnData(func(c *nbio.Conn, data []byte) {
		ss.seen()
		s.readMu.Lock()
		defer s.readMu.Unlock()
		if err := wsc.Parse(data); err != nil {
			c.CloseWithError(err)
		}
	})
	if !ss.add(s) {
		_ = nbc.Close()
		cancel()
		return
	}
	held = false
	s.startTimers()
	ss.published()
	// Holding readMu, the early bytes are parsed before anything the poller reads next.
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if err := ss.engine.AddTransferredConn(nbc); err != nil {
		ss.forget(s)
		s.stopTimers()
		cancel()
		return
	}
	if len(early) > 0 {
		if err := wsc.Parse(early); err != nil {
			nbc.CloseWithError(err)
		}
	}
}

// handOver moves tcp's descriptor to an nbio connection. nbio duplicates it with dup(2),
// which does not set close-on-exec: a child process started meanwhile (os/exec) would
// inherit the socket and keep it open after the service closes it, and the event loop would
// go on reporting the dead socket's events under a descriptor number a new socket reuses.
// Holding syscall.ForkLock while the flag is set closes that window.
func handOver(tcp *net.TCPConn) (*nbio.Conn, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	nbc, err := nbio.NBConn(tcp) // duplicates the descriptor and closes tcp
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(nbc.Hash()) // Hash is the descriptor on Unix
	return nbc, nil
}

// newUpgrader holds the message and control-frame handlers every socket shares.
func (ss *Sockets) newUpgrader() *websocket.Upgrader {
	u := websocket.NewUpgrader()
	u.Engine = ss.engine
	u.KeepaliveTime = 0 // the heartbeat wheel finds dead peers: no read deadline per socket
	u.MessageLengthLimit = ss.cfg.ReadLimit
	u.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		if s, ok := c.Session().(*socket); ok {
			s.handle(mt, data)
		}
	})
	u.SetPingHandler(func(c *websocket.Conn, data string) {
		if s, ok := c.Session().(*socket); ok {
			s.writeFrame(websocket.PongMessage, []byte(data))
		}
	})
	u.SetPongHandler(func(c *websocket.Conn, _ string) {
		if s, ok := c.Session().(*socket); ok {
			s.alive()
		}
	})
	u.SetCloseHandler(func(c *websocket.Conn, code int, reason string) {
		// nbio drops the connection right after this handler.
		if s, ok := c.Session().(*socket); ok {
			s.peerClosed(code, reason)
		}
	})
	u.OnClose(func(c *websocket.Conn, _ error) {
		ss.seen()
		if s, ok := c.Session().(*socket); ok {
			s.gone()
		}
	})
	return u
}

// originAllowed accepts clients without an Origin, same-origin ones, and those whose host
// matches an allowed pattern.
func (ss *Sockets) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range ss.cfg.OriginPatterns {
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); err == nil && ok {
			return true
		}
	}
	return false
}

// chooseSubprotocol takes the first subprotocol the client offers that is served; a client
// that offers none speaks legacy graphql-ws (as gqlgen's transport assumes).
func chooseSubprotocol(h http.Header) string {
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			switch p = strings.TrimSpace(p); p {
			case subprotocolTransportWS, subprotocolLegacyWS:
				return p
			}
		}
	}
	return ""
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func handshake(key, subprotocol string) []byte {
	h := sha1.New() //nolint:gosec // RFC 6455
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	b := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
	b = base64.StdEncoding.AppendEncode(b, h.Sum(nil))
	if subprotocol != "" {
		b = append(b, "\r\nSec-WebSocket-Protocol: "...)
		b = append(b, subprotocol...)
	}
	return append(b, "\r\n\r\n"...)
}

// traceHeaders keeps what the tracing extension reads of the upgrade's headers (the W3C
// trace context), not the whole set for the socket's life.
func traceHeaders(h http.Header) http.Header {
	var out http.Header
	for _, k := range []string{"Traceparent", "Tracestate", "Baggage"} {
		if v := h.Values(k); len(v) > 0 {
			if out == nil {
				out = http.Header{}
			}
			out[k] = v
		}
	}
	return out
}
