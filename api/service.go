package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

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
	"github.com/shop/api/store/cache"
	"github.com/shop/api/store/replicas"
)

// The service's constants, and the defaults server.go shows in --help.
const (
	// CacheTTL is how long an entry lives in the Redis cache; CacheTimeout how soon a read
	// gives up on Redis and goes to the database.
	CacheTTL     = 10 * time.Minute
	CacheTimeout = 300 * time.Millisecond
	// DefaultRevocationInterval is how soon a password change made on another process
	// ends the tokens issued before it here.
	DefaultRevocationInterval = 2 * time.Second
	// DefaultReservationTTL is how long a PENDING order holds its stock unpaid.
	DefaultReservationTTL = 15 * time.Minute
	// DefaultSocketsPerAddress bounds the WebSockets one client address holds in a process:
	// a carrier-grade NAT's worth of phones, each with one socket (the same figure as the
	// subscriptions per address, which each socket's subscriptions also spend).
	DefaultSocketsPerAddress = 2000
)

// Config is every setting of the service, as New takes it: server.go fills it from the
// environment (README's configuration table), the tests write it. A zero field takes the
// default of the package it configures, except where its comment says otherwise.
type Config struct {
	// DatabaseURL is a postgres:// URL; empty: the embedded SQLite file at SQLitePath.
	DatabaseURL, SQLitePath string
	// DBMaxConns caps the PostgreSQL pool; StatementTimeout bounds each SQL statement.
	DBMaxConns       int
	StatementTimeout time.Duration
	// ReplicaURLs are read replicas of DatabaseURL, measured every ReplicaCheckInterval
	// against ReplicaMaxLag (zero: store/replicas' defaults).
	ReplicaURLs                         []string
	ReplicaMaxLag, ReplicaCheckInterval time.Duration
	// PasswordCost is bcrypt's cost for new passwords (0: bcrypt's default; tests lower it).
	PasswordCost int
	// ReservationTTL is how long a PENDING order holds its stock: 0 means
	// DefaultReservationTTL, a negative value for ever.
	ReservationTTL time.Duration
	// Currency is the shop's currency code; empty: store.DefaultCurrency.
	Currency string

	// RedisURL is a redis:// or redis-sentinel:// URL; empty: an in-process stand-in.
	RedisURL string
	// RedisPrefix namespaces every key and channel; empty: named after the database.
	RedisPrefix      string
	RedisBreakerOpen time.Duration
	// NoCache turns the Redis read-through cache off. CacheTimeout is how soon a read gives
	// up on Redis for the database (0: CacheTimeout).
	NoCache      bool
	CacheTimeout time.Duration

	// JWTSecret signs tokens: required with DatabaseURL or in production, random (with a
	// warning) otherwise. TokenTTL is a token's life (0: auth's default).
	JWTSecret []byte
	TokenTTL  time.Duration
	// RevocationInterval is how often revoked tokens are read (0: DefaultRevocationInterval).
	RevocationInterval time.Duration
	// AdminEmail and AdminPassword: an ADMIN created, or its password reset, at start.
	AdminEmail, AdminPassword string
	// SeedDemo fills an empty store with demo data (refused in production); Service.Demo
	// tells what was created.
	SeedDemo bool

	// Production hides what developers want (suggestions, detailed errors) and refuses the
	// test payment provider and demo data; Playground and Introspection are not implied.
	Production, Playground, Introspection bool
	// Loaders nil means loaders.DefaultConfig.
	Loaders *loaders.Config
	Limits  guard.Limits
	// RateLimit: the zero value turns every rate limit off (server.go applies
	// guard.DefaultRateLimit).
	RateLimit      guard.RateLimit
	RequestTimeout time.Duration
	CORSOrigins    []string
	TrustedProxies []netip.Prefix
	Live           LiveConfig
	Trusted        TrustedConfig
	// PaymentProvider is "test", "stripe" or "none"; empty: test, or none in production.
	PaymentProvider string
	Stripe          checkout.StripeConfig
	// Tracing exports spans through the standard OTEL_* variables.
	Tracing bool
	// SeparateAdmin serves /metrics and /readyz on AdminHandler instead of Handler.
	SeparateAdmin bool
	// NoResponseCache turns the response cache off; it is off with read replicas too, where
	// a lagging replica could pair an old row with a new version.
	NoResponseCache bool
	Responses       respcache.Config
}

// Service is the assembled service: its handlers and the handles tests look through.
type Service struct {
	Store  *store.Store
	Redis  *redisconn.Conn
	Tokens *auth.Tokens
	// Checkout takes payments and works the jobs (its Test provider can be made to fail).
	Checkout *checkout.Checkout
	// Operations are the shape limits and the rate limits of every operation.
	Operations *guard.Operations
	// Demo is what SeedDemo created; nil when it created nothing.
	Demo *store.Demo
	// Responses is the response cache; nil when off.
	Responses *respcache.Cache

	live    *Live
	prefix  string
	handler http.Handler
	admin   http.Handler
	closers []func()
}

// New builds every part of the service in order: observability, Redis, the store and its
// cache, checkout and its jobs, tokens and their revocations, live delivery, the guards,
// the GraphQL handler, and the routes. Close releases what it built; a nil log discards.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Service, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.check(log); err != nil {
		return nil, err
	}
	s := &Service{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	trusted, err := NewTrustedDocuments(cfg.Trusted)
	if err != nil {
		return nil, err
	}
	if trusted != nil {
		log.Info("persisted operations only", "operations", trusted.Operations(), "admin_bypass", cfg.Trusted.AdminBypass)
	}

	// Observability first: the store's SQL spans and the Redis breaker report into it.
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

	storeCfg := cfg.storeConfig(tracer)
	var reads *replicas.Set // the replica routing around the store
	if len(cfg.ReplicaURLs) > 0 {
		if reads, err = replicas.New(replicas.Config{URLs: cfg.ReplicaURLs, MaxLag: cfg.ReplicaMaxLag,
			CheckInterval: cfg.ReplicaCheckInterval, MaxConns: cfg.DBMaxConns, Log: log}); err != nil {
			return nil, err
		}
		storeCfg.Replicas = reads // the store starts and closes it
	}
	if s.Store, err = store.Open(ctx, storeCfg); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.Store.Close() })
	reg.MustRegister(observe.Pool(s.Store.PoolStats)...)
	// Named after the database, not its URL: processes on one database share keys and
	// events however their URLs are spelled, and services on different databases that
	// share a Redis server never meet (pub/sub ignores the Redis database number).
	s.prefix = cmp.Or(cfg.RedisPrefix, "shop:"+s.Store.Namespace()+":")
	var entities *cache.Cache // the entity cache around the store
	if !cfg.NoCache {
		entities = cache.New(s.Redis, s.prefix, CacheTTL, cmp.Or(cfg.CacheTimeout, CacheTimeout), log)
		if s.Redis.Replicated() {
			entities.RequireReplicaAcks(1) // an invalidation must outlive a failover
		}
		s.Store.SetCache(entities)
	}
	if reads != nil {
		reads.SetWriteMarks(s.Redis, s.prefix, cmp.Or(cfg.CacheTimeout, CacheTimeout), log) // read-your-writes across processes
	}
	if cfg.AdminEmail != "" {
		if _, err := s.Store.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword); err != nil {
			return nil, fmt.Errorf("admin account: %w", err)
		}
	}
	if cfg.SeedDemo {
		if s.Demo, err = s.Store.SeedDemo(ctx); err != nil {
			return nil, err
		}
	}

	// Checkout before anything writes orders: the store writes its jobs through it.
	if s.Checkout, err = checkout.New(ctx, s.Store, checkout.Config{Provider: cfg.PaymentProvider, Stripe: cfg.Stripe,
		DatabaseURL: cfg.DatabaseURL, Log: log}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Checkout.Close)
	reg.MustRegister(s.Checkout.Collectors()...)
	// Not ctx: jobs stop when Close is called after the server has drained, not at the signal.
	if err := s.Checkout.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { stopJobs(s.Checkout, log) })

	s.Tokens = auth.NewTokens(cfg.JWTSecret, cfg.TokenTTL)
	// A password change on any process ends the tokens issued before it on every process.
	revoked := auth.NewRevocations()
	followCtx, stopFollowing := context.WithCancel(ctx)
	s.closers = append(s.closers, stopFollowing)
	if err := revoked.Follow(followCtx, s.Store.TokenRevocations, cmp.Or(cfg.RevocationInterval, DefaultRevocationInterval), log); err != nil {
		return nil, err
	}
	loaderCfg := observe.Data(reg, s.Store.Stats, *cmp.Or(cfg.Loaders, &loaders.DefaultConfig))
	newLoaders := func() *loaders.Loaders { return loaders.New(s.Store, loaderCfg) }
	if s.live, err = StartLive(ctx, cfg.Live, s.Redis, s.Store, s.prefix, s.Tokens, revoked, newLoaders, reg, log); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.live.Close)
	budget := guard.NewBudget(s.Redis, s.prefix, cfg.RateLimit, metrics)
	s.Operations = guard.NewOperations(cfg.Limits, budget)
	// Responses are tagged through the entity cache's invalidations.
	if entities != nil && !cfg.NoResponseCache && len(cfg.ReplicaURLs) == 0 {
		s.Responses = respcache.New(cfg.Responses, s.Redis, s.prefix, entities.ResponseTags(), reg, log)
	}
	httpGuard := guard.NewHTTP(guard.HTTPConfig{RequestTimeout: cfg.RequestTimeout, CORSOrigins: cfg.CORSOrigins,
		TrustedProxies: cfg.TrustedProxies, Production: cfg.Production})
	gql := NewGraphQL(GraphQLConfig{
		Resolvers: &resolvers.Resolver{Store: s.Store, Tokens: s.Tokens,
			Events: s.live.Broker, Logins: budget, Revocations: revoked, NewLoaders: newLoaders, Payments: s.Checkout},
		Operations:        s.Operations,
		PersistedQueries:  NewPersistedQueries(s.Redis, s.prefix, metrics),
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
	mux.Handle("/graphql", Chain(gql,
		observe.WithRequestID,
		httpGuard.Protect,
		guard.Authenticate(s.Tokens, revoked),
		// A WebSocket lives on: no deadline, and each operation on it gets loaders of its own.
		Unless(guard.IsWebSocket, httpGuard.Bounded),
		Unless(guard.IsWebSocket, loaders.Middleware(s.Store, loaderCfg)),
	))
	if stripe := s.Checkout.Stripe(); stripe != nil {
		mux.Handle("POST /webhooks/stripe", stripe.Webhook(s.Store, log))
	}
	// Liveness stays on the public handler (the image's healthcheck asks PORT); metrics and
	// the dependency check move to the admin handler when it is separate.
	mux.HandleFunc("GET /healthz", Healthz)
	ops := mux
	if cfg.SeparateAdmin {
		ops = http.NewServeMux()
		ops.HandleFunc("GET /healthz", Healthz)
		s.admin = ops
	}
	ops.Handle("GET /metrics", observe.Handler(reg))
	ops.Handle("GET /readyz", Readyz(log,
		Check{Name: "database", Ping: s.Store.Ping},
		Check{Name: "redis", Ping: func(ctx context.Context) error { return s.Redis.Ping(ctx).Err() }},
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

// check refuses settings that must not go together, and picks a random token key where
// one may be random.
func (c *Config) check(log *slog.Logger) error {
	if c.Production && c.SeedDemo {
		// Their password is in this repository.
		return errors.New("SEED_DEMO: the demo accounts are never created in production")
	}
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		return errors.New("set both ADMIN_EMAIL and ADMIN_PASSWORD, or neither")
	}
	switch {
	case c.PaymentProvider == "" && c.Production:
		c.PaymentProvider = checkout.ProviderNone
	case c.PaymentProvider == checkout.ProviderTest && c.Production:
		// Anyone could mark their own orders paid.
		return errors.New("PAYMENT_PROVIDER=test is refused with APP_ENV=production: set stripe or none")
	}
	// HS256's key should be as long as its hash: a short one can be brute-forced from any token.
	switch {
	case len(c.JWTSecret) > 0:
	case c.DatabaseURL != "" || c.Production:
		return errors.New("JWT_SECRET is required with DATABASE_URL or in production")
	default:
		c.JWTSecret = make([]byte, 32)
		_, _ = rand.Read(c.JWTSecret)
		log.Warn("JWT_SECRET is not set: using a random key, so tokens end with this process")
	}
	if len(c.JWTSecret) < 32 {
		return errors.New("JWT_SECRET must be at least 32 bytes")
	}
	return nil
}

// storeConfig is the store's part of c.
func (c Config) storeConfig(tracer observe.Tracing) store.Config {
	ttl := cmp.Or(c.ReservationTTL, DefaultReservationTTL)
	if ttl < 0 {
		ttl = 0 // for ever
	}
	return store.Config{DatabaseURL: c.DatabaseURL, SQLitePath: c.SQLitePath, MaxConns: c.DBMaxConns,
		PasswordCost: c.PasswordCost, StatementTimeout: c.StatementTimeout, Tracer: tracer.Provider(),
		ReservationTTL: ttl, Currency: c.Currency}
}

// Migrate applies the database migrations of the store and of checkout's job queue.
func Migrate(ctx context.Context, cfg Config, log *slog.Logger) error {
	st, err := store.Open(ctx, cfg.storeConfig(observe.Tracing{}))
	if err != nil {
		return err
	}
	defer st.Close()
	return checkout.Migrate(ctx, st, cfg.DatabaseURL)
}

// stopJobs stops working checkout's jobs, giving running ones a few seconds to finish (one
// cut short is worked again, here or by another process).
func stopJobs(c *checkout.Checkout, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		log.Warn("stopping jobs", "err", err)
	}
}

// Handler serves the public routes: /graphql, the Stripe webhook, /healthz, the playground,
// and /metrics and /readyz unless SeparateAdmin.
func (s *Service) Handler() http.Handler { return s.handler }

// AdminHandler serves /metrics, /readyz and /healthz with SeparateAdmin; nil otherwise.
func (s *Service) AdminHandler() http.Handler { return s.admin }

// RedisPrefix returns the namespace of the service's Redis keys and channels.
func (s *Service) RedisPrefix() string { return s.prefix }

// Shutdown ends live subscriptions, their sockets closing with 1001 so that clients move to
// another process: the first step of draining.
func (s *Service) Shutdown(ctx context.Context) { s.live.Shutdown(ctx) }

// Close releases everything, last built first.
func (s *Service) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// LiveStats are the live machinery's counters.
type LiveStats struct {
	Sockets, Subscribers             int
	Published, Relayed, Delivered    int64
	PublishFailures, SlowSubscribers int64
	RedisSubscribed                  bool
}

// LiveStats returns the live machinery's counters now.
func (s *Service) LiveStats() LiveStats {
	l := s.live
	return LiveStats{
		Sockets: l.Sockets.Open(), Subscribers: l.Broker.Subscribers(),
		Published: l.Publisher.Published.Load(), Relayed: l.Relay.Relayed.Load(), Delivered: l.Broker.Delivered.Load(),
		PublishFailures: l.Publisher.Failed.Load(), SlowSubscribers: l.Broker.Overflows.Load() + l.Sockets.Slow.Load(),
		RedisSubscribed: l.Broker.Connected(),
	}
}

// RelayOnce runs one relay round now and returns how many events it published.
func (s *Service) RelayOnce() int { return s.live.Relay.RelayOnce() }
