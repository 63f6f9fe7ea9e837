package api_test

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/shop/api/api"
	"github.com/shop/api/api/guard"
	"github.com/shop/api/api/observe"
	"github.com/shop/api/api/playground"
	"github.com/shop/api/api/redisconn"
	"github.com/shop/api/api/respcache"
	"github.com/shop/api/auth"
	"github.com/shop/api/checkout"
	"github.com/shop/api/loaders"
	"github.com/shop/api/resolvers"
	"github.com/shop/api/store"
)

// config is what a test varies of the service; zero fields take the packages' defaults,
// except that rate limits are off unless set, as in guard.RateLimit.
type config struct {
	DatabaseURL, SQLitePath string
	RedisURL, RedisPrefix   string
	JWTSecret               []byte
	TokenTTL                time.Duration
	AdminEmail              string
	AdminPassword           string
	PasswordCost            int
	Production              bool
	Playground              bool
	Introspection           bool
	// Loaders nil means loaders.DefaultConfig; NoCache turns the Redis cache off.
	Loaders          *loaders.Config
	NoCache          bool
	Limits           guard.Limits
	RateLimit        guard.RateLimit
	StatementTimeout time.Duration
	RequestTimeout   time.Duration
	RedisBreakerOpen time.Duration
	CORSOrigins      []string
	TrustedProxies   []netip.Prefix
	Tracing          bool
	Live             api.LiveConfig
	Trusted          api.TrustedConfig
	// ReplicaURLs are read replicas of DatabaseURL, measured every ReplicaCheckInterval
	// against ReplicaMaxLag (zero: the store's defaults).
	ReplicaURLs                         []string
	ReplicaMaxLag, ReplicaCheckInterval time.Duration
	// ReservationTTL is ORDER_RESERVATION_TTL: 0 means run's default (15m), negative none.
	ReservationTTL time.Duration
	// PaymentProvider is PAYMENT_PROVIDER ("" means test); Stripe its stripe settings.
	PaymentProvider string
	Stripe          checkout.StripeConfig

	// NoResponseCache turns the response cache off (RESPONSE_CACHE=false).
	NoResponseCache bool
}

// service is the shop's API assembled as server.go's run assembles it, with the handles
// tests look through.
type service struct {
	Store  *store.Store
	Redis  *redisconn.Conn
	Tokens *auth.Tokens
	// Checkout takes payments and works the jobs (its Test provider can be made to fail).
	Checkout   *checkout.Checkout
	live       *api.Live
	operations *guard.Operations
	prefix     string
	handler    http.Handler
	closers    []func()

	// Responses is the response cache; nil when off.
	Responses *respcache.Cache
}

// startService builds every part in run's order and mounts the same /graphql chain and
// probes (the playground and metrics as well).
func startService(ctx context.Context, cfg config, log *slog.Logger) (s *service, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s = &service{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	trusted, err := api.NewTrustedDocuments(cfg.Trusted)
	if err != nil {
		return nil, err
	}
	reg := observe.NewRegistry()
	metrics := observe.NewMetrics(reg, log)
	var tracer observe.Tracing
	if cfg.Tracing {
		if tracer, err = observe.StartTracing(ctx); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, tracer.Shutdown)
	}
	if s.Redis, err = redisconn.Open(redisconn.Config{URL: cfg.RedisURL, BreakerOpen: cfg.RedisBreakerOpen}, log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.Redis.Close() })
	reg.MustRegister(s.Redis.Collectors()...)
	ttl := cmp.Or(cfg.ReservationTTL, 15*time.Minute)
	if ttl < 0 {
		ttl = 0
	}
	s.Store, err = store.Open(ctx, store.Config{DatabaseURL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath,
		PasswordCost: cfg.PasswordCost, StatementTimeout: cfg.StatementTimeout, Tracer: tracer.Provider(),
		ReplicaURLs: cfg.ReplicaURLs, ReplicaMaxLag: cfg.ReplicaMaxLag, ReplicaCheckInterval: cfg.ReplicaCheckInterval, Log: log,
		ReservationTTL: ttl})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.Store.Close() })
	if s.Checkout, err = checkout.New(ctx, s.Store, checkout.Config{Provider: cfg.PaymentProvider, Stripe: cfg.Stripe,
		DatabaseURL: cfg.DatabaseURL, Log: log}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Checkout.Close)
	reg.MustRegister(s.Checkout.Collectors()...)
	if err := s.Checkout.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Checkout.Stop(stopCtx)
	})
	reg.MustRegister(observe.Pool(s.Store.PoolStats)...)
	s.prefix = cmp.Or(cfg.RedisPrefix, "shop:"+s.Store.Namespace()+":")
	if !cfg.NoCache {
		cache := store.NewCache(s.Redis, s.prefix, 10*time.Minute, 300*time.Millisecond, log)
		if s.Redis.Replicated() {
			cache.RequireReplicaAcks(1)
		}
		s.Store.SetCache(cache)
	}
	s.Store.SetWriteMarks(s.Redis, s.prefix, 300*time.Millisecond, log)
	if cfg.AdminEmail != "" {
		if _, err := s.Store.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword); err != nil {
			return nil, err
		}
	}
	s.Tokens = auth.NewTokens(cfg.JWTSecret, cfg.TokenTTL)
	revoked := auth.NewRevocations()
	followCtx, stopFollowing := context.WithCancel(ctx)
	s.closers = append(s.closers, stopFollowing)
	if err := revoked.Follow(followCtx, s.Store.TokenRevocations, 200*time.Millisecond, log); err != nil {
		return nil, err
	}
	loaderCfg := observe.Data(reg, s.Store.Stats, *cmp.Or(cfg.Loaders, &loaders.DefaultConfig))
	newLoaders := func() *loaders.Loaders { return loaders.New(s.Store, loaderCfg) }
	if s.live, err = api.StartLive(ctx, cfg.Live, s.Redis, s.Store, s.prefix, s.Tokens, revoked, newLoaders, reg, log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.live.Close)
	budget := guard.NewBudget(s.Redis, s.prefix, cfg.RateLimit, metrics)
	s.operations = guard.NewOperations(cfg.Limits, budget)
	if tags, ok := s.Store.ResponseTags(); ok && !cfg.NoResponseCache && len(cfg.ReplicaURLs) == 0 {
		s.Responses = respcache.New(respcache.Config{}, s.Redis, s.prefix, tags, reg, log)
	}
	httpGuard := guard.NewHTTP(guard.HTTPConfig{RequestTimeout: cfg.RequestTimeout, CORSOrigins: cfg.CORSOrigins, TrustedProxies: cfg.TrustedProxies, Production: cfg.Production})
	gql := api.NewGraphQL(api.GraphQLConfig{
		Resolvers: &resolvers.Resolver{Store: s.Store, Tokens: s.Tokens,
			Events: s.live.Broker, Logins: budget, Revocations: revoked, NewLoaders: newLoaders, Payments: s.Checkout},
		Operations:        s.operations,
		PersistedQueries:  api.NewPersistedQueries(s.Redis, s.prefix, metrics),
		Trusted:           trusted,
		Live:              s.live,
		OperationDeadline: httpGuard.OperationDeadline(),
		Metrics:           metrics,
		Tracer:            tracer.Tracer(),
		Log:               log,
		Introspection:     cfg.Introspection,
		Production:        cfg.Production,
		ReplicaReads:      len(cfg.ReplicaURLs) > 0,
		ResponseCache:     s.Responses,
	})
	mux := http.NewServeMux()
	mux.Handle("/graphql", api.Chain(gql,
		observe.WithRequestID,
		httpGuard.Protect,
		guard.Authenticate(s.Tokens, revoked),
		api.Unless(guard.IsWebSocket, httpGuard.Bounded),
		api.Unless(guard.IsWebSocket, loaders.Middleware(s.Store, loaderCfg)),
	))
	if stripe := s.Checkout.Stripe(); stripe != nil {
		mux.Handle("POST /webhooks/stripe", stripe.Webhook(s.Store, log))
	}
	mux.Handle("GET /metrics", observe.Handler(reg))
	mux.HandleFunc("GET /healthz", api.Healthz)
	mux.Handle("GET /readyz", api.Readyz(log,
		api.Check{Name: "database", Ping: s.Store.Ping},
		api.Check{Name: "redis", Ping: func(ctx context.Context) error { return s.Redis.Ping(ctx).Err() }},
	))
	if cfg.Playground {
		pg, err := playground.New("Shop API", "/graphql")
		if err != nil {
			return nil, err
		}
		mux.Handle("GET /{$}", pg.Page())
		mux.Handle("GET /playground/", pg.Assets())
	}
	s.handler = mux
	return s, nil
}

func (s *service) Handler() http.Handler { return s.handler }

// RedisPrefix returns the namespace of the service's Redis keys and channels.
func (s *service) RedisPrefix() string { return s.prefix }

// Shutdown ends live subscriptions as run does on SIGTERM.
func (s *service) Shutdown(ctx context.Context) { s.live.Shutdown(ctx) }

// Close releases everything, last built first.
func (s *service) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// liveStats are the live machinery's counters.
type liveStats struct {
	Sockets, Subscribers             int
	Published, Relayed, Delivered    int64
	PublishFailures, SlowSubscribers int64
	RedisSubscribed                  bool
}

func (s *service) LiveStats() liveStats {
	l := s.live
	return liveStats{
		Sockets: l.Sockets.Open(), Subscribers: l.Broker.Subscribers(),
		Published: l.Publisher.Published.Load(), Relayed: l.Relay.Relayed.Load(), Delivered: l.Broker.Delivered.Load(),
		PublishFailures: l.Publisher.Failed.Load(), SlowSubscribers: l.Broker.Overflows.Load() + l.Sockets.Slow.Load(),
		RedisSubscribed: l.Broker.Connected(),
	}
}

// RelayOnce runs one relay round now and returns how many events it published.
func (s *service) RelayOnce() int { return s.live.Relay.RelayOnce() }
