package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/api/observe"
	"github.com/shop/api/api/redisconn"
	"github.com/shop/api/auth"
	"github.com/shop/api/live/delivery"
	"github.com/shop/api/live/socket"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// LiveConfig tunes subscriptions; zero fields take the defaults of package live.
type LiveConfig struct {
	// Origins are the cross-origin hosts allowed to open a WebSocket (e.g. "shop.example.com",
	// "*.example.com"); same-origin and Origin-less clients are always allowed.
	Origins []string
	// InitTimeout closes sockets that send no connection_init in time (4408); PingInterval
	// is how often peers are pinged to find dead ones.
	InitTimeout, PingInterval time.Duration
	// SendBuffer is how many bytes may wait for a socket that does not read before it is
	// closed with 1013.
	SendBuffer int
	// Buffer is how many events may wait for one subscriber before it is cut off.
	Buffer int
	// MaxOperations caps the operations one socket runs at once; SetupQueue the operations
	// of every socket waiting to be set up (socket.Config has the defaults);
	// MaxSocketsPerAddress the sockets of one client address in a process (0: no cap).
	MaxOperations, SetupQueue, MaxSocketsPerAddress int
	// Seats caps the live subscriptions per account and per address across the service;
	// the zero SeatLimit turns the caps off (server.go applies guard.DefaultSeatLimit).
	Seats guard.SeatLimit
	// RelayInterval and RelayGrace: how often the relay runs, and how long an event stays
	// unpublished before the relay republishes it.
	RelayInterval, RelayGrace time.Duration
}

func (c LiveConfig) withDefaults() LiveConfig {
	if c.RelayInterval <= 0 {
		c.RelayInterval = time.Second
	}
	if c.RelayGrace <= 0 {
		c.RelayGrace = 5 * time.Second
	}
	return c
}

// Live is the running machinery of subscriptions.
type Live struct {
	Broker    *delivery.Broker
	Publisher *delivery.Publisher
	Relay     *delivery.Relay
	Sockets   *socket.Sockets
	tokens    *auth.Tokens
	revoked   *auth.Revocations
	loaders   func() *loaders.Loaders
	rdb       *redis.Client
	seats     *guard.Seats
}

// StartLive connects live delivery to Redis: one subscription for this process, the
// publisher st tells of every commit, and the relay. Events travel on prefix's channel;
// newLoaders gives each subscription event and each operation sent over a socket fresh
// loaders.
func StartLive(ctx context.Context, cfg LiveConfig, conn *redisconn.Conn, st *store.Store, prefix string,
	tokens *auth.Tokens, revoked *auth.Revocations, newLoaders func() *loaders.Loaders, reg prometheus.Registerer, log *slog.Logger) (*Live, error) {
	cfg = cfg.withDefaults()
	sockets, err := socket.NewSockets(socket.Config{OriginPatterns: cfg.Origins, InitTimeout: cfg.InitTimeout,
		PingInterval: cfg.PingInterval, SendBuffer: cfg.SendBuffer, Detach: socketContext,
		MaxOperations: cfg.MaxOperations, SetupQueue: cfg.SetupQueue, MaxSocketsPerAddress: cfg.MaxSocketsPerAddress,
		AddressOf: func(r *http.Request) string { return guard.ClientAddress(r.Context()) },
		Authorized: func(ctx context.Context) bool {
			return !auth.Expired(ctx, time.Now()) && !revoked.Revoked(auth.SessionFrom(ctx))
		}})
	if err != nil {
		return nil, err
	}
	// A client of its own: pub/sub holds a connection for the process's life, and the
	// publisher and relay handle Redis outages themselves (they must not be cut off by the
	// command client's circuit breaker, nor trip it).
	rdb := conn.NewClient()
	channel := prefix + "order-events"
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shop_live_dispatch_lag_seconds",
		Help:    "Time from an order status event's commit to its hand-over to this process's subscribers.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	seatsDown := prometheus.NewCounter(prometheus.CounterOpts{Name: "shop_live_seats_unavailable_total",
		Help: "Subscriptions admitted, or seats given back, without Redis: the caps per account and address then hold per process only."})
	// The command client: counting seats is a command like a rate limit's, and fails open
	// the same way when Redis is down.
	seats := guard.NewSeats(conn, prefix, cfg.Seats, log, func(err error) {
		seatsDown.Inc()
		if !errors.Is(err, redisconn.ErrUnavailable) {
			log.Warn("live: redis unavailable for the subscription caps; allowing", "err", err)
		}
	})
	l := &Live{
		Broker: delivery.NewBroker(rdb, st, delivery.Config{Channel: channel, Buffer: cfg.Buffer, Seats: seats.Take,
			OnDispatch: func(d time.Duration) { lag.Observe(d.Seconds()) }}, log),
		seats:     seats,
		Publisher: delivery.NewPublisher(rdb, st, channel, log),
		Relay:     delivery.NewRelay(rdb, st, channel, cfg.RelayInterval, cfg.RelayGrace, log),
		Sockets:   sockets,
		tokens:    tokens,
		revoked:   revoked,
		loaders:   newLoaders,
		rdb:       rdb,
	}
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	l.Broker.Start(startCtx) // Redis may be down: the broker keeps trying and catches up
	l.Publisher.Start()
	st.SetEventSink(l.Publisher)
	l.Relay.Start()
	reg.MustRegister(lag, seatsDown,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_live_operations_refused_total",
			Help: "Socket operations and upgrades refused for a cap: operations per socket, the set-up queue, sockets per address."},
			func() float64 { return float64(l.Sockets.Refused.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_live_sockets", Help: "Open GraphQL WebSockets."},
			func() float64 { return float64(l.Sockets.Open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_live_subscribers", Help: "Live subscriptions in this process."},
			func() float64 { return float64(l.Broker.Subscribers()) }),
		// The same count under the name dashboards know; counted by the broker, so that a
		// subscription needs no hook on its context.
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_graphql_active_subscriptions",
			Help: "Subscriptions running now, over WebSocket and server-sent events."},
			func() float64 { return float64(l.Broker.Subscribers()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_live_events_delivered_total", Help: "Events handed to subscribers."},
			func() float64 { return float64(l.Broker.Delivered.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_live_slow_subscribers_total", Help: "Subscribers cut off because they could not keep up."},
			func() float64 { return float64(l.Broker.Overflows.Load() + l.Sockets.Slow.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_live_publish_failures_total", Help: "Events left to the relay because publishing failed."},
			func() float64 { return float64(l.Publisher.Failed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_live_relayed_total", Help: "Events republished by the relay."},
			func() float64 { return float64(l.Relay.Relayed.Load()) }),
	)
	return l, nil
}

// Close stops the relay, the publisher, the broker and the sockets' event loop.
func (l *Live) Close() {
	l.Sockets.Close()
	l.Relay.Close()
	l.Publisher.Close()
	l.Broker.Close()
	l.seats.Close()
	_ = l.rdb.Close()
}

// install adds the transports that carry subscriptions: WebSocket (both subprotocols) and
// Server-Sent Events; and gives every subscription event fresh loaders.
func (l *Live) install(srv *handler.Server) {
	srv.AddTransport(l.Sockets.Transport(l.initSocket))
	srv.AddTransport(sse{transport.SSE{KeepAlivePingInterval: 15 * time.Second}})
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		// Never loaders of the connection (it has none: they would serve every event what
		// they cached for the first). Queries and mutations sent over a socket have no
		// request of their own: each gets fresh loaders too.
		if isSubscription(ctx) || !loaders.Has(ctx) {
			ctx = loaders.With(ctx, l.loaders())
		}
		return next(ctx)
	})
}

// isSubscription reports whether ctx is a subscription's; requests that failed before
// they had an operation (parse errors) have no operation context at all.
func isSubscription(ctx context.Context) bool {
	if !graphql.HasOperationContext(ctx) {
		return false
	}
	oc := graphql.GetOperationContext(ctx)
	return oc.Operation != nil && oc.Operation.Operation == ast.Subscription
}

// initSocket authenticates a WebSocket from its connection_init payload ({"Authorization":
// "Bearer <token>"}, key in any case) or else the upgrade's Authorization header. An invalid
// token is an error (the socket closes with 4403); no token leaves it anonymous.
func (l *Live) initSocket(ctx context.Context, payload map[string]any) (context.Context, error) {
	errForbidden := errors.New("forbidden: invalid or expired token")
	if auth.TokenError(ctx) != nil {
		return nil, errForbidden
	}
	for k, v := range payload {
		if !strings.EqualFold(k, "Authorization") {
			continue
		}
		header, ok := v.(string)
		if !ok {
			return nil, errForbidden
		}
		se, err := l.tokens.FromHeader(header)
		if err != nil || l.revoked.Revoked(se) {
			return nil, errForbidden
		}
		return auth.WithSession(ctx, se), nil
	}
	return ctx, nil
}

// socketContext keeps of a WebSocket's upgrade request what its operations read: the
// request ID (logs), the client's address (rate limits), and the viewer or token error of
// its Authorization header.
func socketContext(r *http.Request) context.Context {
	from := r.Context()
	return auth.Carry(guard.CarryClientIP(observe.CarryRequestID(context.Background(), from), from), from)
}

// Shutdown ends live subscriptions so clients reconnect to another process: WebSockets
// close with 1001 (going away) and SSE streams complete. Call it before http.Server.Shutdown,
// which neither sees hijacked WebSockets nor ends streams.
func (l *Live) Shutdown(ctx context.Context) {
	l.Sockets.Shutdown(ctx)
	l.Broker.CloseSubscriptions()
}
