package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/shop/api/auth"
	"github.com/shop/api/live/delivery"
	"github.com/shop/api/live/socket"
	"github.com/shop/api/loaders"
)

// LiveConfig tunes subscriptions; zero fields take the defaults of package live.
type LiveConfig struct {
	// Origins are the cross-origin hosts allowed to open a WebSocket (e.g. "shop.example.com",
	// "*.example.com"); same-origin and Origin-less clients are always allowed.
	Origins []string
	// InitTimeout closes sockets that send no connection_init in time (4408); PingInterval
	// is how often peers are pinged to find dead ones.
	InitTimeout, PingInterval time.Duration
	// Buffer is how many events may wait for one subscriber before it is cut off.
	Buffer int
	// RelayInterval and RelayGrace: how often the relay runs, and how long an event stays
	// unpublished before the relay republishes it.
	RelayInterval, RelayGrace time.Duration
}

// liveDelivery is the running machinery of subscriptions.
type liveDelivery struct {
	broker    *delivery.Broker
	publisher *delivery.Publisher
	relay     *delivery.Relay
	sockets   *socket.Sockets
}

// startLive connects live delivery to Redis: one subscription for this process, the
// publisher the store tells of every commit, and the relay.
func (s *Service) startLive(ctx context.Context) error {
	cfg := s.cfg.Live
	// A client of its own: pub/sub holds a connection for the process's life, and the
	// publisher and relay handle Redis outages themselves (they must not be cut off by the
	// command client's circuit breaker, nor trip it).
	base, ok := s.Redis.(*redis.Client)
	if !ok {
		return fmt.Errorf("live: need a *redis.Client, have %T", s.Redis)
	}
	opts := *base.Options()
	rdb := redis.NewClient(&opts)
	s.closers = append(s.closers, func() { _ = rdb.Close() })

	channel := s.cfg.RedisPrefix + "order-events"
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shop_live_dispatch_lag_seconds",
		Help:    "Time from an order status event's commit to its hand-over to this process's subscribers.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	l := &liveDelivery{
		broker: delivery.NewBroker(rdb, s.Store, delivery.Config{Channel: channel, Buffer: cfg.Buffer,
			OnDispatch: func(d time.Duration) { lag.Observe(d.Seconds()) }}, s.Log),
		publisher: delivery.NewPublisher(rdb, s.Store, channel, s.Log),
		sockets:   socket.NewSockets(socket.SocketConfig{OriginPatterns: cfg.Origins, InitTimeout: cfg.InitTimeout, PingInterval: cfg.PingInterval}),
	}
	relayEvery, grace := cfg.RelayInterval, cfg.RelayGrace
	if relayEvery <= 0 {
		relayEvery = time.Second
	}
	if grace <= 0 {
		grace = 5 * time.Second
	}
	l.relay = delivery.NewRelay(rdb, s.Store, channel, relayEvery, grace, s.Log)

	startCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	l.broker.Start(startCtx) // Redis may be down: the broker keeps trying and catches up
	s.closers = append(s.closers, l.broker.Close)
	l.publisher.Start()
	s.closers = append(s.closers, l.publisher.Close)
	s.Store.SetEventSink(l.publisher)
	l.relay.Start()
	s.closers = append(s.closers, l.relay.Close)
	s.live = l
	s.registry().MustRegister(lag,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_live_sockets", Help: "Open GraphQL WebSockets."},
			func() float64 { return float64(l.sockets.Open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shop_live_subscribers", Help: "Live subscriptions in this process."},
			func() float64 { return float64(l.broker.Subscribers()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_live_events_delivered_total", Help: "Events handed to subscribers."},
			func() float64 { return float64(l.broker.Delivered.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_live_slow_subscribers_total", Help: "Subscribers cut off because they could not keep up."},
			func() float64 { return float64(l.broker.Overflows.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_live_publish_failures_total", Help: "Events left to the relay because publishing failed."},
			func() float64 { return float64(l.publisher.Failed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shop_live_relayed_total", Help: "Events republished by the relay."},
			func() float64 { return float64(l.relay.Relayed.Load()) }),
	)
	return nil
}

// addLiveTransports adds the transports that carry subscriptions: WebSocket (both
// subprotocols) and Server-Sent Events; and gives every subscription event fresh loaders.
func (s *Service) addLiveTransports(srv *handler.Server) {
	srv.AddTransport(s.live.sockets.Transport(s.initSocket))
	srv.AddTransport(transport.SSE{KeepAlivePingInterval: 15 * time.Second})

	loaderCfg := loaders.DefaultConfig
	if s.cfg.Loaders != nil {
		loaderCfg = *s.cfg.Loaders
	}
	// Never loaders of the connection (it has none: they would serve every event what they
	// cached for the first): setting a subscription up gets loaders of its
	// own, and each event fresh ones. The set-up's loaders must not outlive it (memory per
	// subscriber is what bounds a process), so the subscription's lifetime is tied to the
	// context without them.
	srv.AroundFields(func(ctx context.Context, next graphql.Resolver) (any, error) {
		if fc := graphql.GetFieldContext(ctx); fc == nil || fc.Object != "Subscription" {
			return next(ctx)
		}
		return next(delivery.WithLifetime(loaders.With(ctx, loaders.New(s.Store, loaderCfg)), ctx))
	})
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		// Queries and mutations sent over a socket have no request of their own: each gets
		// fresh loaders too.
		if isSubscription(ctx) || !loaders.Has(ctx) {
			ctx = loaders.With(ctx, loaders.New(s.Store, loaderCfg))
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
// token closes the socket with 4403; no token leaves it anonymous.
func (s *Service) initSocket(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	forbidden := func() (context.Context, *transport.InitPayload, error) {
		ctx := transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, socket.CloseForbidden), "Forbidden")
		return ctx, nil, errors.New("forbidden: invalid or expired token")
	}
	if auth.TokenError(ctx) != nil {
		return forbidden()
	}
	for k, v := range payload {
		if !strings.EqualFold(k, "Authorization") {
			continue
		}
		header, ok := v.(string)
		if !ok {
			return forbidden()
		}
		viewer, err := s.Tokens.FromHeader(header)
		if err != nil {
			return forbidden()
		}
		return auth.WithViewer(ctx, viewer), nil, nil
	}
	return ctx, nil, nil
}

// Shutdown ends live subscriptions so clients reconnect to another process: WebSockets
// close with 1001 (going away) and SSE streams complete. Call it before http.Server.Shutdown,
// which neither sees hijacked WebSockets nor ends streams.
func (s *Service) Shutdown(ctx context.Context) {
	if s.live == nil {
		return
	}
	s.live.sockets.Shutdown(ctx)
	s.live.broker.CloseSubscriptions()
}

// LiveStats reports the live machinery's counters, for tests and benchmarks.
type LiveStats struct {
	Sockets, Subscribers             int
	Published, Relayed, Delivered    int64
	PublishFailures, SlowSubscribers int64
	RedisSubscribed                  bool
}

// LiveStats returns the current counters of live delivery.
func (s *Service) LiveStats() LiveStats {
	l := s.live
	return LiveStats{
		Sockets: l.sockets.Open(), Subscribers: l.broker.Subscribers(),
		Published: l.publisher.Published.Load(), Relayed: l.relay.Relayed.Load(), Delivered: l.broker.Delivered.Load(),
		PublishFailures: l.publisher.Failed.Load(), SlowSubscribers: l.broker.Overflows.Load(),
		RedisSubscribed: l.broker.Connected(),
	}
}

// RelayOnce runs one relay round now, for tests; it returns how many events it published.
func (s *Service) RelayOnce() int { return s.live.relay.RelayOnce() }
