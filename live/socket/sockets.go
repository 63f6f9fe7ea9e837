// Package socket is the WebSocket side of live delivery: both GraphQL subprotocols
// (graphql-transport-ws and the legacy graphql-ws) on an nbio event loop. net/http serves the
// upgrade request; the handler then hands the connection over to an epoll engine, so an open
// socket costs no goroutine and no buffer while it is idle. Operations run in two bounded
// worker pools: one sets them up (parse, validate, the resolver's database reads), one runs a
// subscription's response handler each time the broker has put an event in its channel.
package socket

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// Close codes of the graphql-transport-ws protocol, and those this service adds.
const (
	CloseNormal            = 1000
	CloseGoingAway         = 1001 // the server is shutting down: reconnect (to another process)
	CloseTooSlow           = 1013 // "try again later": the client did not read its events fast enough
	CloseBadRequest        = 4400 // invalid message
	CloseUnauthorized      = 4401 // subscribe before connection_init
	CloseForbidden         = 4403 // malformed, forged or expired token; a token that expired or was revoked while the socket was open
	CloseInitTimeout       = 4408 // no connection_init in time
	CloseDuplicateID       = 4409 // subscribe with an ID already in use
	CloseTooManyInits      = 4429 // a second connection_init
	closeReasonTooSlow     = "subscriber too slow: events would be lost; reconnect and resume with after"
	closeReasonGoingAway   = "server shutting down"
	closeReasonExpired     = "Forbidden: the token expired or was revoked"
	subprotocolTransportWS = "graphql-transport-ws"
	subprotocolLegacyWS    = "graphql-ws"
)

// Config tunes the WebSocket transport; zero fields take the defaults in parentheses.
type Config struct {
	// OriginPatterns are the cross-origin hosts allowed to open a socket (path.Match patterns
	// on the Origin's host, e.g. "shop.example.com" or "*.example.com"). Same-origin requests
	// and clients that send no Origin are always accepted; every other origin is refused
	// with 403. There is deliberately no "accept every origin" switch.
	OriginPatterns []string
	// InitTimeout closes a socket that sends no connection_init in time with 4408 (10s).
	InitTimeout time.Duration
	// PingInterval is how often a peer is pinged (20s): graphql-transport-ws peers with the
	// protocol's ping message, legacy graphql-ws peers with a WebSocket ping frame plus its
	// "ka" message. A peer that has not answered by the next ping is dropped.
	PingInterval time.Duration
	// SendBuffer is how many bytes may wait for a peer that does not read (the kernel's
	// socket buffer being full) before it is closed with 1013 (256 KiB).
	SendBuffer int
	// SetupWorkers bounds the operations being set up at once: parsing, validation and the
	// resolver's reads (16). EventWorkers bounds the subscription events being resolved and
	// written at once (4 per CPU).
	SetupWorkers, EventWorkers int
	// ReadLimit is the largest message a client may send (1 MiB).
	ReadLimit int
	// MaxOperations is how many operations one socket may run at once (100): one more is
	// answered with an error message for its ID (RATE_LIMITED), and the socket and its
	// other operations go on. A phone watches a handful, a dashboard a few dozen.
	MaxOperations int
	// MaxSocketsPerAddress is how many sockets one client address (AddressOf) may hold
	// open in this process; one more upgrade is refused with HTTP 429. 0: no cap.
	MaxSocketsPerAddress int
	// AddressOf names a request's client address for MaxSocketsPerAddress (default: the
	// peer's IP).
	AddressOf func(r *http.Request) string
	// SetupQueue is how many operations may wait for a set-up worker, over every socket of
	// the process (4096): beyond it an operation is refused at once (RATE_LIMITED) instead
	// of queueing memory without bound.
	SetupQueue int
	// Authorized reports whether the credentials a socket's context carries still hold (a
	// token expires while its socket lives on). It is asked at every heartbeat and before
	// every operation; false closes the socket with 4403. Nil: always.
	Authorized func(ctx context.Context) bool
	// Detach makes a socket's context, which its operations run in for the connection's
	// life, from the upgrade request. By default it is the request's context without its
	// cancellation; a service that copies the values it needs into a fresh one keeps
	// net/http's own out of every watching phone (its connection's and request's contexts,
	// the local address: half a KiB).
	Detach func(r *http.Request) context.Context
}

func (c Config) withDefaults() Config {
	if c.Detach == nil {
		c.Detach = func(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }
	}
	if c.Authorized == nil {
		c.Authorized = func(context.Context) bool { return true }
	}
	if c.InitTimeout <= 0 {
		c.InitTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.SendBuffer <= 0 {
		c.SendBuffer = 256 << 10
	}
	if c.SetupWorkers <= 0 {
		c.SetupWorkers = 16
	}
	if c.EventWorkers <= 0 {
		c.EventWorkers = 4 * runtime.GOMAXPROCS(0)
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = 1 << 20
	}
	if c.AddressOf == nil {
		c.AddressOf = func(r *http.Request) string {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			return host
		}
	}
	if c.MaxOperations <= 0 {
		c.MaxOperations = 100
	}
	if c.SetupQueue <= 0 {
		c.SetupQueue = 4096
	}
	return c
}

// closeGrace is how long a socket waits for the peer's answer to its close frame before it
// drops the connection.
const closeGrace = 2 * time.Second

// Sockets holds every open socket of the process: it accepts them (Transport), pings them,
// and closes them with 1001 on shutdown.
type Sockets struct {
	cfg      Config
	engine   *nbhttp.Engine
	upgrader *websocket.Upgrader
	setups   *pool
	events   *pool
	beats    *wheel

	mu       sync.Mutex
	open     map[*socket]struct{}
	byAddr   map[string]int // open sockets per client address, with MaxSocketsPerAddress
	draining bool
	count    atomic.Int64
	// handedOver is the fence between the goroutine that builds a socket and the event
	// loop that then serves it: nbio's code is invisible to the race detector (go:norace),
	// so the hand-over through the kernel's epoll has to be made visible.
	handedOver atomic.Int64
	// Slow counts sockets closed with 1013 because their peer stopped reading.
	Slow atomic.Int64
	// Refused counts operations and upgrades refused for a cap: MaxOperations, SetupQueue,
	// MaxSocketsPerAddress.
	Refused atomic.Int64
}

// NewSockets starts the event loop, the worker pools and the heartbeat; Close stops them.
func NewSockets(cfg Config) (*Sockets, error) {
	cfg = cfg.withDefaults()
	// nbio logs every engine start and stop at info level on its own logger; its failures
	// reach us as errors anyway.
	logging.SetLevel(logging.LevelError)
	engine := nbhttp.NewEngine(nbhttp.Config{
		Name:                    "live",
		SupportServerOnly:       true, // no client task pool (2.4 MB) for dialing
		NPoller:                 max(1, runtime.GOMAXPROCS(0)/2),
		ReleaseWebsocketPayload: true,
		ReadLimit:               cfg.ReadLimit + 14, // plus a frame's header
		// One frame per message, so that the bytes written can be counted per message. No
		// MaxWriteBufferSize: nbio would drop the connection without a close frame; the
		// socket's own accounting closes it with 1013 (its backlog stays under SendBuffer
		// plus one message).
		MaxWebsocketFramePayloadSize: 64 << 20,
	})
	ss := &Sockets{
		cfg:    cfg,
		engine: engine,
		setups: newPool(cfg.SetupWorkers, cfg.SetupQueue),
		events: newPool(cfg.EventWorkers, 0),
		open:   map[*socket]struct{}{},
		byAddr: map[string]int{},
	}
	// Bytes left the process: the socket's backlog shrinks.
	engine.OnWrittenSize(func(c *nbio.Conn, _ []byte, n int) {
		if s := ss.socketOf(c); s != nil {
			s.queued.Add(-int64(n))
		}
	})
	ss.upgrader = ss.newUpgrader()
	if err := engine.Start(); err != nil {
		ss.setups.stop()
		ss.events.stop()
		return nil, errors.Join(errors.New("live: start the WebSocket event loop"), err)
	}
	ss.beats = newWheel(cfg.PingInterval, func(s *socket) { s.beat() })
	return ss, nil
}

// published makes a socket just built visible to the event loop (see handedOver).
func (ss *Sockets) published() { ss.handedOver.Add(1) }

// seen is the event loop's side of published.
func (ss *Sockets) seen() { ss.handedOver.Load() }

// socketOf returns the socket an nbio connection carries, if any.
func (ss *Sockets) socketOf(c *nbio.Conn) *socket {
	ss.seen()
	wsc, ok := c.Session().(*websocket.Conn)
	if !ok {
		return nil
	}
	s, _ := wsc.Session().(*socket)
	return s
}

// Open returns how many sockets are open.
func (ss *Sockets) Open() int { return int(ss.count.Load()) }

// add registers a socket; false once the service is draining.
func (ss *Sockets) add(s *socket) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.draining {
		return false
	}
	ss.open[s] = struct{}{}
	ss.count.Add(1)
	return true
}

func (ss *Sockets) forget(s *socket) {
	ss.mu.Lock()
	_, ok := ss.open[s]
	delete(ss.open, s)
	ss.mu.Unlock()
	if ok {
		ss.count.Add(-1)
		ss.beats.remove(s)
		ss.releaseAddress(s.addr)
	}
}

// holdAddress counts one more socket of addr, unless addr holds MaxSocketsPerAddress.
func (ss *Sockets) holdAddress(addr string) bool {
	if ss.cfg.MaxSocketsPerAddress <= 0 {
		return true
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byAddr[addr] >= ss.cfg.MaxSocketsPerAddress {
		return false
	}
	ss.byAddr[addr]++
	return true
}

func (ss *Sockets) releaseAddress(addr string) {
	if ss.cfg.MaxSocketsPerAddress <= 0 {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byAddr[addr]--; ss.byAddr[addr] <= 0 {
		delete(ss.byAddr, addr)
	}
}

func (ss *Sockets) isDraining() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.draining
}

func (ss *Sockets) all() []*socket {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	all := make([]*socket, 0, len(ss.open))
	for s := range ss.open {
		all = append(all, s)
	}
	return all
}

// Shutdown closes every socket with 1001 and refuses new ones, then waits until their close
// handshakes end or ctx does (whatever is left is dropped).
func (ss *Sockets) Shutdown(ctx context.Context) {
	ss.mu.Lock()
	ss.draining = true
	ss.mu.Unlock()
	all := ss.all()
	for _, s := range all {
		s.closeWith(CloseGoingAway, closeReasonGoingAway)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ss.Open() > 0 {
		select {
		case <-ctx.Done():
			for _, s := range all {
				s.drop()
			}
			return
		case <-tick.C:
		}
	}
}

// engineStopWait bounds how long Close waits for the event loop to stop.
const engineStopWait = 5 * time.Second

// Close drops every socket and stops the event loop, the pools and the heartbeat.
func (ss *Sockets) Close() {
	ss.mu.Lock()
	ss.draining = true
	ss.mu.Unlock()
	for _, s := range ss.all() {
		s.drop()
	}
	ss.beats.stop()
	// nbio's Stop waits for every connection's close callback; it has been seen (rarely,
	// under load) to wait for ever with no connection left, which held a process's exit, or
	// a test, until it was killed. A few seconds is plenty for the callbacks of sockets
	// already dropped above; past that the event loop is left to the process's end.
	stopped := make(chan struct{})
	go func() {
		ss.engine.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(engineStopWait):
	}
	ss.setups.stop()
	ss.events.stop()
}
