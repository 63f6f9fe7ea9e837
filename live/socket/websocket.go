package socket

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"

	"github.com/shop/api/live/delivery"
)

// Close codes of the graphql-transport-ws protocol, and those this service adds.
const (
	CloseBadRequest        = 4400 // invalid message
	CloseUnauthorized      = 4401 // subscribe before connection_init
	CloseForbidden         = 4403 // malformed, forged or expired token
	CloseInitTimeout       = 4408 // no connection_init in time
	CloseDuplicateID       = 4409 // subscribe with an ID already in use
	CloseTooManyInits      = 4429 // a second connection_init
	CloseGoingAway         = 1001 // the server is shutting down: reconnect (to another process)
	CloseTooSlow           = 1013 // "try again later": the client did not read its events fast enough
	closeReasonTooSlow     = "subscriber too slow: events would be lost; reconnect and resume with after"
	closeReasonGoingAway   = "server shutting down"
	subprotocolTransportWS = "graphql-transport-ws"
)

// SocketConfig tunes the WebSocket transport; zero fields take the defaults in parentheses.
type SocketConfig struct {
	// OriginPatterns are the cross-origin hosts allowed to open a socket (path.Match patterns
	// on the Origin's host, e.g. "shop.example.com" or "*.example.com"). Same-origin requests
	// and clients that send no Origin are always accepted; every other origin is refused
	// with 403. There is deliberately no "accept every origin" switch.
	OriginPatterns []string
	// InitTimeout closes a socket that sends no connection_init in time with 4408 (10s).
	InitTimeout time.Duration
	// PingInterval is how often a peer is pinged (20s): graphql-transport-ws peers with the
	// protocol's ping message, legacy graphql-ws peers with a WebSocket ping frame (that
	// protocol has none) plus its "ka" message. A peer that has not answered by the next
	// ping is dropped.
	PingInterval time.Duration
	// WriteTimeout bounds every write; a peer that stops reading is disconnected (10s).
	WriteTimeout time.Duration
}

func (c SocketConfig) withDefaults() SocketConfig {
	if c.InitTimeout <= 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	return c
}

// Sockets is the WebSocket side of live delivery: it accepts sockets for gqlgen's websocket
// transport on github.com/coder/websocket, enforces the graphql-transport-ws close codes
// gqlgen leaves out (4400, 4401, 4408, 4409, 4429), pings peers, and closes every socket
// with 1001 on shutdown.
type Sockets struct {
	cfg      SocketConfig
	mu       sync.Mutex
	open     map[*socket]struct{}
	draining bool
	count    atomic.Int64
}

// NewSockets returns an empty set of sockets.
func NewSockets(cfg SocketConfig) *Sockets {
	return &Sockets{cfg: cfg.withDefaults(), open: map[*socket]struct{}{}}
}

// Transport returns gqlgen's websocket transport on these sockets, with init as its
// InitFunc (which must return a non-nil context, also with an error).
func (ss *Sockets) Transport(init transport.WebsocketInitFunc) graphql.Transport {
	return wsTransport{Websocket: transport.Websocket{
		Implementation: ss,
		InitFunc:       init,
		// gqlgen's timers stay off: its InitTimeout closes with 1002 (the socket closes with
		// 4408 itself), and its KeepAlivePingInterval and PingPongInterval each cost a
		// goroutine per connection; the socket's heartbeat is one runtime timer instead.
	}, sockets: ss}
}

// Open returns how many sockets are open.
func (ss *Sockets) Open() int { return int(ss.count.Load()) }

// wsTransport puts a slot for the accepted socket in the request's context, so resolvers
// can close their own socket (a subscriber that cannot keep up), and refuses upgrades once
// the service is draining.
type wsTransport struct {
	transport.Websocket
	sockets *Sockets
}

type slotKey struct{}

type slot struct{ s *socket }

func (t wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.sockets.mu.Lock()
	draining := t.sockets.draining
	t.sockets.mu.Unlock()
	if draining {
		w.Header().Set("Connection", "close")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	sl := &slot{}
	ctx := delivery.WithListener(context.WithValue(r.Context(), slotKey{}, sl), sl)
	t.Websocket.Do(w, r.WithContext(ctx), exec)
}

// Subscribed and Ready implement delivery.Listener: gqlgen's transport waits on the
// subscription's channel itself.
func (sl *slot) Subscribed() {}
func (sl *slot) Ready()      {}

// Overflow implements delivery.Listener: a subscriber that cannot keep up gets its socket
// closed with CloseTooSlow (the client reconnects and resumes with `after`).
func (sl *slot) Overflow() {
	if sl.s != nil {
		go sl.s.closeWith(CloseTooSlow, closeReasonTooSlow)
	}
}

// Accept implements transport.WebsocketImplementation.
func (ss *Sockets) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	for k, vs := range opts.ResponseHeader {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:   opts.Subprotocols,
		OriginPatterns: ss.cfg.OriginPatterns,
	})
	if err != nil {
		return nil, err
	}
	s := &socket{conn: conn, sockets: ss, transportWS: conn.Subprotocol() == subprotocolTransportWS}
	// The timers' callbacks take s.mu: they wait until both timers are set.
	s.mu.Lock()
	s.initTimer = time.AfterFunc(ss.cfg.InitTimeout, func() {
		s.closeWith(CloseInitTimeout, "Connection initialisation timeout")
	})
	s.heartbeat = time.AfterFunc(ss.cfg.PingInterval, s.beat)
	s.mu.Unlock()
	ss.mu.Lock()
	ss.open[s] = struct{}{}
	ss.mu.Unlock()
	ss.count.Add(1)
	if sl, ok := r.Context().Value(slotKey{}).(*slot); ok {
		sl.s = s
	}
	return s, nil
}

// Shutdown closes every socket with 1001 and refuses new ones, then waits until their close
// handshakes end or ctx does (whatever is left is dropped).
func (ss *Sockets) Shutdown(ctx context.Context) {
	ss.mu.Lock()
	ss.draining = true
	all := make([]*socket, 0, len(ss.open))
	for s := range ss.open {
		all = append(all, s)
	}
	ss.mu.Unlock()
	for _, s := range all {
		s.closeWith(CloseGoingAway, closeReasonGoingAway)
	}
	for ss.Open() > 0 {
		select {
		case <-ctx.Done():
			for _, s := range all {
				_ = s.conn.CloseNow()
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (ss *Sockets) forget(s *socket) {
	ss.mu.Lock()
	_, ok := ss.open[s]
	delete(ss.open, s)
	ss.mu.Unlock()
	if ok {
		ss.count.Add(-1)
	}
}

// socket is one accepted connection, adapted to gqlgen's transport.WebsocketConn.
type socket struct {
	conn        *websocket.Conn
	sockets     *Sockets
	transportWS bool
	initTimer   *time.Timer // guarded by mu
	heartbeat   *time.Timer // pings the peer every PingInterval; guarded by mu

	mu        sync.Mutex
	closing   bool
	closeDone chan struct{}
	deadline  *time.Timer
	initSeen  bool
	// awaitingPong is set by each ping and cleared by the answer.
	awaitingPong bool
	active       map[string]struct{} // operation IDs in use (graphql-transport-ws)
}

var (
	_ transport.WebsocketConn          = (*socket)(nil)
	_ transport.WebsocketReadLimiter   = (*socket)(nil)
	_ transport.WebsocketReadDeadliner = (*socket)(nil)
)

// frame is the envelope of a graphql-transport-ws message.
type frame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// NextReader returns the next message for gqlgen, after enforcing the protocol rules gqlgen
// does not: a violation closes the socket with its code and reads as a closed connection.
func (s *socket) NextReader() (int, io.Reader, error) {
	for {
		typ, data, err := s.conn.Read(context.Background())
		if err != nil {
			switch websocket.CloseStatus(err) {
			case websocket.StatusNormalClosure, websocket.StatusNoStatusRcvd, websocket.StatusGoingAway:
				return int(typ), nil, transport.ErrWebsocketClosed
			}
			if s.isClosing() {
				return int(typ), nil, transport.ErrWebsocketClosed
			}
			return int(typ), nil, err
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil || f.Type == "" {
			return s.violation(CloseBadRequest, "Invalid message received")
		}
		if !s.transportWS {
			if f.Type == "connection_init" {
				s.sawInit()
			}
			return int(typ), bytes.NewReader(data), nil
		}
		switch f.Type {
		case "connection_init":
			if !s.sawInit() {
				return s.violation(CloseTooManyInits, "Too many initialisation requests")
			}
		case "subscribe":
			if code, reason := s.claim(f.ID); code != 0 {
				return s.violation(code, reason)
			}
		case "complete":
			s.release(f.ID)
		case "pong":
			s.alive()
			if !s.initDone() {
				continue
			}
		case "ping":
			if !s.initDone() {
				// Allowed before connection_init, which gqlgen insists comes first.
				_ = s.write([]byte(`{"type":"pong"}`))
				continue
			}
		default:
			return s.violation(CloseBadRequest, "Invalid message received")
		}
		return int(typ), bytes.NewReader(data), nil
	}
}

func (s *socket) violation(code int, reason string) (int, io.Reader, error) {
	s.closeWith(code, reason)
	return 0, nil, transport.ErrWebsocketClosed
}

// sawInit records a connection_init; false when it is not the first.
func (s *socket) sawInit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initTimer.Stop()
	if s.initSeen {
		return false
	}
	s.initSeen = true
	return true
}

func (s *socket) initDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initSeen
}

// claim reserves an operation ID, or returns the close code of the violation.
func (s *socket) claim(id string) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.initSeen:
		return CloseUnauthorized, "Unauthorized"
	case id == "":
		return CloseBadRequest, "Invalid message received"
	}
	if _, ok := s.active[id]; ok {
		return CloseDuplicateID, truncate("Subscriber for " + id + " already exists")
	}
	if s.active == nil {
		s.active = map[string]struct{}{}
	}
	s.active[id] = struct{}{}
	return 0, ""
}

func (s *socket) release(id string) {
	s.mu.Lock()
	delete(s.active, id)
	s.mu.Unlock()
}

// WriteJSON sends one message; a peer that does not take it within the write timeout is
// disconnected.
func (s *socket) WriteJSON(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if s.transportWS && (bytes.HasSuffix(data, []byte(`"type":"complete"}`)) || bytes.HasSuffix(data, []byte(`"type":"error"}`))) {
		// The operation is over: its ID may be used again.
		var f frame
		if json.Unmarshal(data, &f) == nil {
			s.release(f.ID)
		}
	}
	return s.write(data)
}

func (s *socket) write(data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.sockets.cfg.WriteTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, data)
}

// WriteClose starts the close handshake with code in the background, so the transport's
// teardown never stalls on a slow or absent peer.
func (s *socket) WriteClose(code int, reason string) error {
	s.closeWith(code, reason)
	return nil
}

func (s *socket) closeWith(code int, reason string) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.closeDone = make(chan struct{})
	s.stopDeadlineLocked()
	s.initTimer.Stop()
	s.heartbeat.Stop()
	s.mu.Unlock()
	go func() {
		defer close(s.closeDone)
		defer s.sockets.forget(s)
		_ = s.conn.Close(websocket.StatusCode(code), reason)
	}()
}

func (s *socket) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Close drops the connection, unless a close handshake already owns it.
func (s *socket) Close() error {
	s.mu.Lock()
	s.initTimer.Stop()
	s.heartbeat.Stop()
	s.stopDeadlineLocked()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil
	}
	s.sockets.forget(s)
	return s.conn.CloseNow()
}

func (s *socket) Subprotocol() string { return s.conn.Subprotocol() }

func (s *socket) SetReadLimit(limit int64) { s.conn.SetReadLimit(limit) }

// SetReadDeadline drops the connection at t unless called again first (gqlgen uses it for
// the pong deadline).
func (s *socket) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopDeadlineLocked()
	if t.IsZero() || s.closing {
		return nil
	}
	s.deadline = time.AfterFunc(time.Until(t), func() {
		s.sockets.forget(s)
		_ = s.conn.CloseNow()
	})
	return nil
}

func (s *socket) stopDeadlineLocked() {
	if s.deadline != nil {
		s.deadline.Stop()
		s.deadline = nil
	}
}

// beat pings the peer, unless it has not answered the previous ping: then it is dead. A
// graphql-transport-ws peer gets the protocol's ping (its pong answers); a legacy graphql-ws
// peer gets "ka" and a WebSocket ping frame, answered by its WebSocket library. A dead peer
// is found within two intervals, at the cost of one runtime timer per socket.
func (s *socket) beat() {
	if s.isClosing() {
		return
	}
	s.mu.Lock()
	missed := s.awaitingPong
	s.awaitingPong = true
	heartbeat := s.heartbeat
	s.mu.Unlock()
	if missed {
		s.dead()
		return
	}
	every := s.sockets.cfg.PingInterval
	if s.transportWS {
		_ = s.write([]byte(`{"type":"ping"}`))
	} else {
		_ = s.write([]byte(`{"type":"ka"}`))
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := s.conn.Ping(ctx) // waits for the pong, read by gqlgen's read loop
		cancel()
		if err == nil {
			s.alive()
		}
	}
	heartbeat.Reset(every)
}

// alive records that the peer answered a ping.
func (s *socket) alive() {
	s.mu.Lock()
	s.awaitingPong = false
	s.mu.Unlock()
}

// dead drops a peer that did not answer in time, without a close handshake it could not do.
func (s *socket) dead() {
	s.mu.Lock()
	s.heartbeat.Stop()
	s.mu.Unlock()
	s.sockets.forget(s)
	_ = s.conn.CloseNow()
}

func truncate(reason string) string {
	if len(reason) > 120 { // a close reason is at most 123 bytes
		return reason[:120]
	}
	return reason
}
