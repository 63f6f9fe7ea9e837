package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/shop/api/auth"
	"github.com/shop/api/graph"
	"github.com/shop/api/loaders"
	"github.com/shop/api/resolvers"
	"github.com/shop/api/store"
)

// Config is the service's configuration; server.go reads it from the environment.
type Config struct {
	// DatabaseURL selects PostgreSQL; empty runs on the embedded SQLite file at SQLitePath.
	DatabaseURL string
	SQLitePath  string
	// RedisURL selects a Redis server; empty runs an in-process stand-in.
	RedisURL string
	// RedisPrefix namespaces every key and channel of this service in Redis; empty derives
	// it from the database's namespace (store.Namespace).
	RedisPrefix   string
	JWTSecret     []byte
	TokenTTL      time.Duration
	AdminEmail    string
	AdminPassword string
	Currency      string
	Production    bool
	Playground    bool
	Introspection bool
	// SeedDemo fills an empty store with demo data.
	SeedDemo bool
	// PasswordCost is the bcrypt cost (0: bcrypt's default); tests lower it.
	PasswordCost int
	// Loaders tunes batching; the zero value means loaders.DefaultConfig.
	Loaders *loaders.Config
	// NoCache turns the Redis read-through cache off (for benchmarks).
	NoCache bool
	// MaxBodyBytes caps request bodies (413 beyond); 0 means 1 MiB.
	MaxBodyBytes int64

	// Production hardening (limits.go, ratelimit.go, security.go, redis.go, observability.go).
	// Zero values mean the defaults documented there; RateLimit's zero value is off.
	Limits    Limits
	RateLimit RateLimit
	// RequestTimeout bounds every request but subscriptions; 0 means 15s.
	RequestTimeout time.Duration
	// DBMaxConns caps this process's PostgreSQL connections (0: 20). Every process of the
	// service holds up to this many: keep their sum under the server's max_connections.
	DBMaxConns int
	// StatementTimeout bounds each SQL statement that has no earlier deadline; 0 means 5s.
	StatementTimeout time.Duration
	// RedisBreakerOpen is how long Redis is left alone after failing; 0 means 5s.
	RedisBreakerOpen time.Duration
	// CORSOrigins are the browser origins allowed to call /graphql ("*" for any).
	CORSOrigins []string
	// Tracing exports OpenTelemetry spans as configured by the standard OTEL_* variables.
	Tracing bool
	// Live tunes subscriptions (live.go).
	Live LiveConfig
}

// Service is the shop's API with everything it depends on.
type Service struct {
	Store   *store.Store
	Redis   redis.UniversalClient
	Tokens  *auth.Tokens
	Log     *slog.Logger
	Demo    *store.Demo
	cfg     Config
	reg     *prometheus.Registry
	breaker *redisBreaker
	ops     *opsState
	handler http.Handler
	live    *liveDelivery
	closers []func()
}

// New connects to the database and Redis, applies migrations, creates the admin account
// and (when asked) demo data, and assembles the HTTP handler.
func New(ctx context.Context, cfg Config, log *slog.Logger) (s *Service, err error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Currency == "" {
		cfg.Currency = "USD"
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 24 * time.Hour
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	s = &Service{Log: log, cfg: cfg}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if s.Redis, err = s.openRedis(cfg.RedisURL); err != nil {
		return nil, err
	}
	var tracer trace.TracerProvider
	if tp := s.state().tp; tp != nil {
		tracer = tp
	}
	s.Store, err = store.Open(ctx, store.Config{
		DatabaseURL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath, PasswordCost: cfg.PasswordCost,
		MaxConns: cfg.DBMaxConns, StatementTimeout: cfg.StatementTimeout, Tracer: tracer,
	})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.Store.Close() })
	if cfg.RedisPrefix == "" {
		// Named after the database, not its URL: processes on one database share keys and
		// events however their URLs are spelled, and services on different databases that
		// share a Redis server never meet (pub/sub ignores the Redis database number).
		cfg.RedisPrefix = "shop:" + s.Store.Namespace() + ":"
		s.cfg.RedisPrefix = cfg.RedisPrefix
	}
	if !cfg.NoCache {
		s.Store.SetCache(store.NewCache(s.Redis, cfg.RedisPrefix, 10*time.Minute, 300*time.Millisecond, log))
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
	s.Tokens = auth.NewTokens(cfg.JWTSecret, cfg.TokenTTL)
	if err := s.startLive(ctx); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// RedisPrefix returns the namespace of the service's Redis keys and channels.
func (s *Service) RedisPrefix() string { return s.cfg.RedisPrefix }

// Handler returns the service's HTTP handler.
func (s *Service) Handler() http.Handler { return s.handler }

// Close releases connections and stops the embedded Redis stand-in.
func (s *Service) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// routes mounts every endpoint of the service.
func (s *Service) routes() http.Handler {
	loaderCfg := loaders.DefaultConfig
	if s.cfg.Loaders != nil {
		loaderCfg = *s.cfg.Loaders
	}
	loaderCfg = s.observeData(loaderCfg)
	root := &resolvers.Resolver{Store: s.Store, Tokens: s.Tokens, Currency: s.cfg.Currency, Log: s.Log, Events: s.live.broker}

	mux := http.NewServeMux()
	mux.Handle("/graphql", Chain(s.graphQL(root),
		WithRequestID,
		s.protect,
		LimitBody(s.cfg.MaxBodyBytes),
		s.Tokens.Middleware,
		loaders.Middleware(s.Store, loaderCfg),
	))
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.HandleFunc("GET /healthz", Healthz)
	mux.Handle("GET /readyz", Readyz(s.Log,
		Check{Name: "database", Ping: s.Store.Ping},
		Check{Name: "redis", Ping: func(ctx context.Context) error { return s.Redis.Ping(ctx).Err() }},
	))
	if s.cfg.Playground {
		mux.Handle("GET /{$}", Playground("Shop API", "/graphql"))
		mux.Handle("GET /playground/", PlaygroundAssets())
	}
	return mux
}

// graphQL builds the GraphQL handler: its transports (the first that matches a request
// wins), caches and extensions.
func (s *Service) graphQL(root *resolvers.Resolver) http.Handler {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: root, Complexity: costModel()}))
	srv.AddTransport(transport.Options{})
	// Live transports come before POST: an SSE request is a POST too.
	s.addLiveTransports(srv)
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(s.documents())
	if s.cfg.Introspection {
		srv.Use(extension.Introspection{})
	}
	s.addLimits(srv)
	s.addPersistedQueries(srv)
	s.observe(srv)
	srv.SetDisableSuggestion(s.cfg.Production)
	srv.SetErrorPresenter(ErrorPresenter(s.Log))
	srv.SetRecoverFunc(Recover(s.Log))
	return srv
}
