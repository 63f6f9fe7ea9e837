package socket

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// socket is one connection on the event loop: the protocol's state and its operations. Its
// messages are handled one at a time, in order, on the event loop (or, for the bytes that
// came with the upgrade, on the upgrading goroutine); nothing there blocks: operations are
// handed to the pools.
type socket struct {
	sockets     *Sockets
	exec        graphql.GraphExecutor
	init        InitFunc
	wsc         *websocket.Conn
	cancel      context.CancelFunc // ends ctx, and with it the operations' set-ups
	headers     http.Header
	transportWS bool
	slot        int    // in the heartbeat wheel; guarded by the wheel's lock
	addr        string // the client's address, for MaxSocketsPerAddress

	readMu sync.Mutex   // serialises parsing: the hand-over's early bytes, then the poller's
	queued atomic.Int64 // bytes written but not yet taken by the kernel
	// wmu orders frames from the event loop and the workers, so that nothing follows the
	// close frame.
	wmu       sync.Mutex
	closeSent bool // guarded by wmu

	mu sync.Mutex
	// ctx is the upgrade request's context until connection_init, then the one InitFunc
	// returned (the viewer); operations derive from it.
	ctx          context.Context
	initTimer    *time.Timer
	closeTimer   *time.Timer
	initSeen     bool
	closing      bool
	awaitingPong bool // set by each ping, cleared by the answer
	ops          opSet
}

// envelope is a client message of either subprotocol.
type envelope struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

func (s *socket) startTimers() {
	s.mu.Lock()
	s.initTimer = time.AfterFunc(s.sockets.cfg.InitTimeout, func() {
		s.closeWith(CloseInitTimeout, "Connection initialisation timeout")
	})
	s.mu.Unlock()
	s.sockets.beats.add(s)
}

func (s *socket) stopTimers() {
	s.mu.Lock()
	if s.initTimer != nil {
		s.initTimer.Stop()
	}
	if s.closeTimer != nil {
		s.closeTimer.Stop()
	}
	s.mu.Unlock()
	s.sockets.beats.remove(s)
}

// handle enforces the protocol: a violation closes the socket with its code.
func (s *socket) handle(mt websocket.MessageType, data []byte) {
	var m envelope
	if mt != websocket.TextMessage || json.Unmarshal(data, &m) != nil || m.Type == "" {
		s.closeWith(CloseBadRequest, "Invalid message received")
		return
	}
	switch m.Type {
	case "connection_init":
		s.connectionInit(m.Payload)
		return
	case "ping":
		if s.transportWS {
			// Allowed before connection_init too.
			s.send(message("pong", "", m.Payload))
			return
		}
	case "pong":
		if s.transportWS {
			s.alive()
			return
		}
	case "subscribe", "start":
		if s.transportWS == (m.Type == "subscribe") {
			s.startOperation(m.ID, m.Payload)
			return
		}
	case "complete", "stop":
		if s.transportWS == (m.Type == "complete") {
			s.stopOperation(m.ID)
			return
		}
	case "connection_terminate":
		if !s.transportWS {
			s.closeWith(CloseNormal, "terminated")
			return
		}
	}
	s.closeWith(CloseBadRequest, "Invalid message received")
}

// connectionInit authenticates the socket once; a second connection_init is 4429.
func (s *socket) connectionInit(raw json.RawMessage) {
	s.mu.Lock()
	if s.initSeen {
		s.mu.Unlock()
		s.closeWith(CloseTooManyInits, "Too many initialisation requests")
		return
	}
	s.initSeen = true
	s.initTimer.Stop()
	s.initTimer = nil // a stopped timer is still 200 bytes a socket
	ctx := s.ctx
	s.mu.Unlock()
	var payload map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &payload) != nil {
		s.closeWith(CloseBadRequest, "Invalid message received")
		return
	}
	// Verifying a token is a few microseconds of CPU: it runs on the event loop.
	ctx, err := s.init(ctx, payload)
	if err != nil {
		if !s.transportWS {
			msg, _ := json.Marshal(map[string]string{"message": err.Error()})
			s.send(message("connection_error", "", msg))
		}
		s.closeWith(CloseForbidden, "Forbidden")
		return
	}
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	s.send(message("connection_ack", "", nil))
	if !s.transportWS {
		s.send(message("ka", "", nil))
	}
}

// startOperation claims id and hands the operation to the set-up pool.
func (s *socket) startOperation(id string, payload json.RawMessage) {
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return
	case !s.initSeen:
		s.mu.Unlock()
		s.closeWith(CloseUnauthorized, "Unauthorized")
		return
	case id == "":
		s.mu.Unlock()
		s.closeWith(CloseBadRequest, "Invalid message received")
		return
	}
	if s.ops.get(id) != nil {
		s.mu.Unlock()
		s.closeWith(CloseDuplicateID, truncate("Subscriber for "+id+" already exists"))
		return
	}
	if !s.sockets.cfg.Authorized(s.ctx) {
		s.mu.Unlock()
		s.closeWith(CloseForbidden, closeReasonExpired)
		return
	}
	op := &operation{s: s.sockets, sock: s, id: id}
	s.ops.add(op)
	full := s.ops.len() > s.sockets.cfg.MaxOperations
	s.mu.Unlock()
	if full {
		s.sockets.Refused.Add(1)
		op.fail(rateLimited("too many operations on this connection: at most %d at once; complete one first", s.sockets.cfg.MaxOperations))
		return
	}
	if !s.sockets.setups.submit(func() { op.setUp(payload) }) {
		s.sockets.Refused.Add(1)
		op.fail(rateLimited("the server is busy setting up operations; retry shortly"))
	}
}

// rateLimited is the error of an operation refused for a cap of the connection or the
// process. It is the contract's RATE_LIMITED: the caller asks for more at once than it may,
// and may retry once some of it is over (the operation itself is fine, so not
// COMPLEXITY_LIMIT_EXCEEDED, which refuses an operation for its shape).
func rateLimited(format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	errcode.Set(err, codeRateLimited)
	return err
}

// codeRateLimited is the contract's code (guard.CodeRateLimited, which this package does
// not import).
const codeRateLimited = "RATE_LIMITED"

// context is the socket's context, in which its operations run.
func (s *socket) context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx
}

// endOperations ends every operation, sending nothing: the socket is closing.
func (s *socket) endOperations() {
	s.mu.Lock()
	ops := s.ops.clear()
	s.mu.Unlock()
	for _, op := range ops {
		op.end()
	}
}

// stopOperation ends the client's operation id; nothing more is sent for it.
func (s *socket) stopOperation(id string) {
	s.mu.Lock()
	op := s.ops.remove(id, nil)
	s.mu.Unlock()
	if op != nil {
		op.stop()
	}
}

// release frees id once op is over, so that the client may use it again.
func (s *socket) release(id string, op *operation) {
	s.mu.Lock()
	s.ops.remove(id, op)
	s.mu.Unlock()
}

// message renders a message of either subprotocol.
func message(typ, id string, payload []byte) []byte {
	b := make([]byte, 0, 32+len(id)+len(payload))
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if id != "" {
		quoted, _ := json.Marshal(id)
		b = append(b, `,"id":`...)
		b = append(b, quoted...)
	}
	if len(payload) > 0 {
		b = append(b, `,"payload":`...)
		b = append(b, payload...)
	}
	return append(b, '}')
}

// send writes a text message unless the socket is closing. A peer whose backlog is over the
// send buffer is not reading: it is closed with 1013 instead of growing memory.
func (s *socket) send(msg []byte) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return
	}
	if s.queued.Load() > int64(s.sockets.cfg.SendBuffer) {
		s.tooSlow()
		return
	}
	s.writeFrame(websocket.TextMessage, msg)
}

// writeFrame writes one frame without blocking (nbio keeps what the kernel does not take
// yet) and counts it into the backlog; after the close frame it writes nothing.
func (s *socket) writeFrame(mt websocket.MessageType, data []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closeSent {
		return
	}
	s.closeSent = mt == websocket.CloseMessage
	n := int64(len(data) + frameHeader(len(data)))
	s.queued.Add(n)
	if err := s.wsc.WriteMessage(mt, data); err != nil {
		s.queued.Add(-n)
	}
}

func frameHeader(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 65535:
		return 4
	}
	return 10
}

// tooSlow closes a socket whose peer does not keep up with its events (1013): the client
// reconnects and resumes with `after`.
func (s *socket) tooSlow() {
	if s.closeWith(CloseTooSlow, closeReasonTooSlow) {
		s.sockets.Slow.Add(1)
	}
}

// closeWith starts the close handshake with code: every operation ends, and the connection is
// dropped when the peer answers or after closeGrace. It reports whether this call closed it.
func (s *socket) closeWith(code int, reason string) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	s.closing = true
	if s.initTimer != nil {
		s.initTimer.Stop()
	}
	s.closeTimer = time.AfterFunc(closeGrace, s.drop)
	s.mu.Unlock()
	s.sockets.beats.remove(s)
	s.cancel()
	s.endOperations()
	buf := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(buf, uint16(code))
	copy(buf[2:], reason)
	s.writeFrame(websocket.CloseMessage, buf)
	return true
}

// peerClosed answers the peer's close frame (unless it answers ours); nbio then drops the
// connection.
func (s *socket) peerClosed(code int, reason string) {
	s.mu.Lock()
	answer := !s.closing
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	s.endOperations()
	if !answer {
		return
	}
	var buf []byte
	if code != 1005 { // no status: answer with none
		buf = make([]byte, 2+len(reason))
		binary.BigEndian.PutUint16(buf, uint16(code))
		copy(buf[2:], reason)
	}
	s.writeFrame(websocket.CloseMessage, buf)
}

// drop closes the connection without a handshake.
func (s *socket) drop() {
	_ = s.wsc.Close()
}

// gone runs once the connection is closed, however it ended.
func (s *socket) gone() {
	s.stopTimers()
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	s.endOperations()
	s.sockets.forget(s)
}

// beat pings the peer, unless it has not answered the previous ping: then it is dead and
// dropped without a close handshake it could not do. graphql-transport-ws peers get the
// protocol's ping (answered by pong); legacy graphql-ws peers get "ka" and a WebSocket ping
// frame, answered by their WebSocket library.
func (s *socket) beat() {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	missed := s.awaitingPong
	s.awaitingPong = true
	authorized := s.sockets.cfg.Authorized(s.ctx)
	s.mu.Unlock()
	if !authorized {
		s.closeWith(CloseForbidden, closeReasonExpired)
		return
	}
	if missed {
		s.drop()
		return
	}
	if s.transportWS {
		s.send(message("ping", "", nil))
		return
	}
	s.send(message("ka", "", nil))
	s.writeFrame(websocket.PingMessage, nil)
}

// alive records that the peer answered a ping.
func (s *socket) alive() {
	s.mu.Lock()
	s.awaitingPong = false
	s.mu.Unlock()
}

func truncate(reason string) string {
	if len(reason) > 120 { // a close reason is at most 123 bytes
		return reason[:120]
	}
	return reason
}
