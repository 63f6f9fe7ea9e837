// Command api serves the shop's GraphQL API.
//
//	go run .              serve (embedded SQLite and Redis stand-in unless DATABASE_URL/REDIS_URL)
//	go run . migrate      apply database migrations and exit
//	go run . schema       print the GraphQL schema (SDL) and exit
//	go run . healthcheck  exit 0 when the server on PORT answers /healthz (for images without curl)
package main

//go:generate go run ./graph/internal/execgen

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bytedance/gopkg/util/gctuner"
	"github.com/vektah/gqlparser/v2/formatter"

	"github.com/shop/api/api"
	"github.com/shop/api/api/guard"
	"github.com/shop/api/api/observe"
	"github.com/shop/api/api/playground"
	"github.com/shop/api/api/redisconn"
	"github.com/shop/api/api/respcache"
	"github.com/shop/api/auth"
	"github.com/shop/api/checkout"
	"github.com/shop/api/graph"
	"github.com/shop/api/loaders"
	"github.com/shop/api/resolvers"
	"github.com/shop/api/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// Cache lifetimes: entries live this long in Redis, and a read gives up on Redis after
// cacheTimeout and goes to the database.
const (
	cacheTTL     = 10 * time.Minute
	cacheTimeout = 300 * time.Millisecond
	// revocationInterval is how soon a password change made on another process ends the
	// tokens issued before it here.
	revocationInterval = 2 * time.Second
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	// These two need no configuration (and must print nothing else).
	switch {
	case len(args) == 1 && args[0] == "schema":
		formatter.NewFormatter(stdout, formatter.WithComments()).FormatSchema(graph.Schema())
		return nil
	case len(args) == 1 && args[0] == "healthcheck":
		return healthcheck(ctx, cmp.Or(getenv("PORT"), "8080"))
	}
	log := newLogger(getenv("APP_ENV") == "production", stdout)
	cfg, err := loadConfig(getenv, log)
	if err != nil {
		return err
	}
	switch {
	case len(args) == 1 && args[0] == "migrate":
		st, err := store.Open(ctx, cfg.Store)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := checkout.Migrate(ctx, st, cfg.Store.DatabaseURL); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	case len(args) > 0:
		return fmt.Errorf("unknown command %q (want: migrate, schema or healthcheck)", args[0])
	}
	if err := cfg.signingKey(log); err != nil {
		return err
	}
	paceGC(cfg.GCHeapFloorMiB, getenv("GOGC"))
	trusted, err := api.NewTrustedDocuments(cfg.Trusted)
	if err != nil {
		return err
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
			return err
		}
		defer tracer.Shutdown()
	}

	rdb, err := redisconn.Open(cfg.Redis, log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg.MustRegister(rdb.Collectors()...)

	cfg.Store.Tracer = tracer.Provider()
	cfg.Store.Log = log
	store.SetCurrency(cfg.Currency)
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	reg.MustRegister(observe.Pool(st.PoolStats)...)
	// Named after the database, not its URL: processes on one database share keys and
	// events however their URLs are spelled, and services on different databases that
	// share a Redis server never meet (pub/sub ignores the Redis database number).
	prefix := cmp.Or(cfg.RedisPrefix, "shop:"+st.Namespace()+":")
	if cfg.Cache {
		cache := store.NewCache(rdb, prefix, cacheTTL, cacheTimeout, log)
		if rdb.Replicated() {
			cache.RequireReplicaAcks(1) // an invalidation must outlive a failover
		}
		st.SetCache(cache)
	}
	st.SetWriteMarks(rdb, prefix, cacheTimeout, log) // read-your-writes across processes, with replicas
	if cfg.AdminEmail != "" {
		if _, err := st.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword); err != nil {
			return fmt.Errorf("admin account: %w", err)
		}
	}
	if cfg.SeedDemo {
		demo, err := st.SeedDemo(ctx)
		if err != nil {
			return err
		}
		if demo != nil {
			fmt.Fprintf(stdout, "Demo data: %d products. Sign in with logIn as %s or %s, password %q.\n",
				demo.Products, store.DemoMerchantEmail, store.DemoCustomerEmail, store.DemoPassword)
		}
	}

	// Checkout before anything writes orders: the store writes its jobs through it.
	cfg.Checkout.Log = log
	payments, err := checkout.New(ctx, st, cfg.Checkout)
	if err != nil {
		return err
	}
	defer payments.Close()
	reg.MustRegister(payments.Collectors()...)
	// Not ctx: jobs stop when the server has drained (below), not at the signal.
	if err := payments.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer stopJobs(payments, log)

	tokens := auth.NewTokens(cfg.JWTSecret, cfg.TokenTTL)
	// A password change on any process ends the tokens issued before it on every process.
	revoked := auth.NewRevocations()
	if err := revoked.Follow(ctx, st.TokenRevocations, revocationInterval, log); err != nil {
		return err
	}
	loaderCfg := observe.Data(reg, st.Stats, cfg.Loaders)
	newLoaders := func() *loaders.Loaders { return loaders.New(st, loaderCfg) }
	liveDelivery, err := api.StartLive(ctx, cfg.Live, rdb, st, prefix, tokens, revoked, newLoaders, reg, log)
	if err != nil {
		return err
	}
	defer liveDelivery.Close()
	budget := guard.NewBudget(rdb, prefix, cfg.RateLimit, metrics)
	httpGuard := guard.NewHTTP(cfg.HTTP)
	// Responses are tagged through the entity cache's invalidations; replicas could hand a
	// fresh version an old row, so they turn it off too.
	var responses *respcache.Cache
	if tags, ok := st.ResponseTags(); ok && cfg.ResponseCache && len(cfg.Store.ReplicaURLs) == 0 {
		responses = respcache.New(cfg.Responses, rdb, prefix, tags, reg, log)
	}
	gql := api.NewGraphQL(api.GraphQLConfig{
		Resolvers: &resolvers.Resolver{Store: st, Tokens: tokens,
			Events: liveDelivery.Broker, Logins: budget, Revocations: revoked, NewLoaders: newLoaders, Payments: payments},
		Operations:        guard.NewOperations(cfg.Limits, budget),
		PersistedQueries:  api.NewPersistedQueries(rdb, prefix, metrics),
		Trusted:           trusted,
		Live:              liveDelivery,
		OperationDeadline: httpGuard.OperationDeadline(),
		Metrics:           metrics,
		Tracer:            tracer.Tracer(),
		Log:               log,
		Introspection:     cfg.Introspection,
		Production:        cfg.Production,
		ReplicaReads:      len(cfg.Store.ReplicaURLs) > 0,
		ResponseCache:     responses,
	})

	mux := http.NewServeMux()
	mux.Handle("/graphql", api.Chain(gql,
		observe.WithRequestID,
		httpGuard.Protect,
		guard.Authenticate(tokens, revoked),
		// A WebSocket lives on: no deadline, and each operation on it gets loaders of its own.
		api.Unless(guard.IsWebSocket, httpGuard.Bounded),
		api.Unless(guard.IsWebSocket, loaders.Middleware(st, loaderCfg)),
	))
	if stripe := payments.Stripe(); stripe != nil {
		mux.Handle("POST /webhooks/stripe", stripe.Webhook(st, log))
	}
	// Liveness stays on the public port (the image's healthcheck asks PORT); metrics and the
	// dependency check go to ADMIN_ADDR when it is set, where the internet cannot read them.
	mux.HandleFunc("GET /healthz", api.Healthz)
	ops := mux
	if cfg.AdminAddr != "" {
		ops = http.NewServeMux()
		ops.HandleFunc("GET /healthz", api.Healthz)
	}
	ops.Handle("GET /metrics", observe.Handler(reg))
	ops.Handle("GET /readyz", api.Readyz(log,
		api.Check{Name: "database", Ping: st.Ping},
		api.Check{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	))
	if cfg.AdminAddr != "" {
		stopOps, err := serveOn("ADMIN_ADDR", cfg.AdminAddr, ops, log)
		if err != nil {
			return err
		}
		defer stopOps()
	}
	if cfg.Playground {
		pg, err := playground.New("Shop API", "/graphql")
		if err != nil {
			return err
		}
		mux.Handle("GET /{$}", pg.Page())
		mux.Handle("GET /playground/", pg.Assets())
	}
	if cfg.PprofAddr != "" {
		stopPprof, err := serveOn("PPROF_ADDR", cfg.PprofAddr, pprofMux(), log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	var draining atomic.Bool
	srv := &http.Server{
		Handler:           closingWhen(&draining, mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	l, err := net.Listen("tcp", net.JoinHostPort("", cfg.Port))
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("listening", "url", "http://localhost:"+cfg.Port+"/", "postgres", cfg.Store.DatabaseURL != "", "redis", cfg.Redis.URL != "")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Subscriptions first: their sockets close with 1001 so clients move to another process.
	liveDelivery.Shutdown(shutdownCtx)
	// Then no new connections, but for lameDuck the open ones are kept and answer with
	// Connection: close: closing an idle one at once races a request a keep-alive proxy is
	// sending on it, which it may not resend elsewhere if it is a POST.
	_ = l.Close()
	draining.Store(true)
	select {
	case <-time.After(lameDuck):
	case <-shutdownCtx.Done():
	}
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
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

// lameDuck is how long a stopping server keeps its open connections, answering with
// Connection: close, before it closes the idle ones: under traffic a proxy takes each of
// its cached connections again within it, and retires it after that response.
const lameDuck = time.Second

// closingWhen makes every response close its connection once draining is set.
func closingWhen(draining *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// pprofMux is net/http/pprof, served on PPROF_ADDR, a listener of its own: profiles never
// reach the public port.
func pprofMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveOn serves h on a listener of its own at addr (the setting named name) until the
// returned func closes it.
func serveOn(name, addr string, h http.Handler, log *slog.Logger) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	log.Info("serving "+name, "addr", l.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// healthcheck asks the server on port for /healthz.
func healthcheck(ctx context.Context, port string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /healthz answered %s", resp.Status)
	}
	return nil
}

// config is the service's configuration, read from the environment once. Each part is the
// Config of the package it configures; a zero field takes that package's default.
type config struct {
	Port          string
	Production    bool
	Store         store.Config
	Redis         redisconn.Config
	RedisPrefix   string // empty: named after the database (store.Namespace)
	Cache         bool
	ResponseCache bool // RESPONSE_CACHE
	Responses     respcache.Config
	JWTSecret     []byte
	TokenTTL      time.Duration // 0: auth's default (24h)
	AdminEmail    string
	AdminPassword string
	Currency      string
	Playground    bool
	Introspection bool
	SeedDemo      bool
	Loaders       loaders.Config
	Limits        guard.Limits
	RateLimit     guard.RateLimit
	HTTP          guard.HTTPConfig
	Live          api.LiveConfig
	Trusted       api.TrustedConfig
	Checkout      checkout.Config
	Tracing       bool
	PprofAddr     string
	AdminAddr     string // metrics and readiness on a port of their own
	// GCHeapFloorMiB is the heap the collector lets a process grow to before it runs (see
	// paceGC); 0 leaves the pace at Go's default.
	GCHeapFloorMiB int
}

// loadConfig reads the service's configuration from the environment; README's
// "Configuration" and "Production" sections document each variable.
func loadConfig(getenv func(string) string, log *slog.Logger) (config, error) {
	c := config{
		Port:          cmp.Or(getenv("PORT"), "8080"),
		Production:    getenv("APP_ENV") == "production",
		Store:         store.Config{DatabaseURL: getenv("DATABASE_URL"), SQLitePath: getenv("SQLITE_PATH")},
		Redis:         redisconn.Config{URL: getenv("REDIS_URL")},
		Cache:         true,
		JWTSecret:     []byte(getenv("JWT_SECRET")),
		AdminEmail:    getenv("ADMIN_EMAIL"),
		AdminPassword: getenv("ADMIN_PASSWORD"),
		Currency:      cmp.Or(getenv("CURRENCY"), "USD"),
		Loaders:       loaders.DefaultConfig,
		PprofAddr:     getenv("PPROF_ADDR"),
		AdminAddr:     getenv("ADMIN_ADDR"),
	}
	c.Live.Origins = splitList(getenv("WEBSOCKET_ORIGINS"))
	c.ResponseCache = boolEnv(getenv("RESPONSE_CACHE"), true)
	c.Playground = boolEnv(getenv("PLAYGROUND"), !c.Production)
	c.Introspection = boolEnv(getenv("INTROSPECTION"), !c.Production)
	c.SeedDemo = boolEnv(getenv("SEED_DEMO"), c.Store.DatabaseURL == "" && !c.Production)
	if c.SeedDemo && c.Production {
		// Their password is in this repository.
		return c, errors.New("SEED_DEMO: the demo accounts are never created in production")
	}
	if p := getenv("REDIS_PREFIX"); p != "" {
		c.RedisPrefix = strings.TrimSuffix(p, ":") + ":"
	}
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		return c, errors.New("set both ADMIN_EMAIL and ADMIN_PASSWORD, or neither")
	}
	c.Trusted.Manifest = getenv("PERSISTED_OPERATIONS")
	// Only ADMIN may bypass the allow-list: anyone can sign up as a CUSTOMER or MERCHANT.
	switch b := getenv("PERSISTED_OPERATIONS_BYPASS"); b {
	case "", "ADMIN":
		c.Trusted.AdminBypass = true
	case "NONE":
	default:
		return c, fmt.Errorf("PERSISTED_OPERATIONS_BYPASS: want ADMIN or NONE, got %q", b)
	}
	if err := loadCheckout(&c, getenv); err != nil {
		return c, err
	}
	return c, loadHardening(&c, getenv)
}

// loadCheckout reads the reservation and the payment provider (docs/checkout.md).
func loadCheckout(c *config, getenv func(string) string) error {
	c.Store.ReservationTTL = 15 * time.Minute
	if s := getenv("ORDER_RESERVATION_TTL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("ORDER_RESERVATION_TTL: want a duration such as 15m (0: for ever), got %q", s)
		}
		c.Store.ReservationTTL = d
	}
	c.Checkout = checkout.Config{
		Provider:    getenv("PAYMENT_PROVIDER"),
		DatabaseURL: c.Store.DatabaseURL,
		Stripe: checkout.StripeConfig{APIKey: getenv("STRIPE_API_KEY"), WebhookSecret: getenv("STRIPE_WEBHOOK_SECRET"),
			APIURL: getenv("STRIPE_API_URL")},
	}
	switch {
	case c.Checkout.Provider == "" && c.Production:
		c.Checkout.Provider = checkout.ProviderNone
	case c.Checkout.Provider == "":
		c.Checkout.Provider = checkout.ProviderTest
	case c.Checkout.Provider == checkout.ProviderTest && c.Production:
		// Anyone could mark their own orders paid.
		return errors.New("PAYMENT_PROVIDER=test is refused with APP_ENV=production: set stripe or none")
	}
	return nil
}

// signingKey checks the token key a server needs (migrate does not): required with
// DATABASE_URL or in production, and of at least 32 bytes whenever it is set (HS256's key
// should be as long as its hash: a short one can be brute-forced from any token); random
// otherwise, with a warning.
func (c *config) signingKey(log *slog.Logger) error {
	switch {
	case len(c.JWTSecret) > 0:
	case c.Store.DatabaseURL != "" || c.Production:
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

// defaultSocketsPerAddress bounds the WebSockets one client address holds in a process: a
// carrier-grade NAT's worth of phones, each with one socket (the same figure as the
// subscriptions per address, which each socket's subscriptions also spend).
const defaultSocketsPerAddress = 2000

// loadHardening reads the production limits. Unset, each takes its package's default,
// except the rate limits, which are off in a zero guard.RateLimit and on by default here.
func loadHardening(c *config, getenv func(string) string) error {
	var errs []error
	num := func(name string, def int) int {
		s := getenv(name)
		if s == "" {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: want a whole number ≥ 0, got %q", name, s))
		}
		return n
	}
	dur := func(name string, def time.Duration) time.Duration {
		s := getenv(name)
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a duration such as 10s, got %q", name, s))
		}
		return d
	}
	c.Limits = guard.Limits{
		MaxDepth:      num("MAX_QUERY_DEPTH", 0),
		MaxCost:       num("MAX_QUERY_COST", 0),
		MaxAliases:    num("MAX_QUERY_ALIASES", 0),
		MaxTokens:     num("MAX_QUERY_TOKENS", 0),
		MaxQueryBytes: num("MAX_QUERY_BYTES", 0),
	}
	def := guard.DefaultRateLimit
	if getenv("RATE_LIMIT_POINTS_PER_MINUTE") != "" {
		// A budget set for every caller stays every caller's unless the anonymous one is set.
		def.AnonymousPointsPerMinute = 0
	}
	c.RateLimit = guard.RateLimit{
		PointsPerMinute:          num("RATE_LIMIT_POINTS_PER_MINUTE", def.PointsPerMinute),
		AnonymousPointsPerMinute: num("RATE_LIMIT_ANONYMOUS_POINTS_PER_MINUTE", def.AnonymousPointsPerMinute),
		LoginFailuresPerAccount:  num("LOGIN_FAILURES_PER_ACCOUNT", def.LoginFailuresPerAccount),
		LoginFailuresPerIP:       num("LOGIN_FAILURES_PER_IP", def.LoginFailuresPerIP),
		LoginWindow:              dur("LOGIN_WINDOW", def.LoginWindow),
	}
	maxCost := cmp.Or(c.Limits.MaxCost, guard.DefaultLimits.MaxCost)
	for _, b := range []struct {
		name      string
		perMinute int
	}{{"RATE_LIMIT_POINTS_PER_MINUTE", c.RateLimit.PointsPerMinute}, {"RATE_LIMIT_ANONYMOUS_POINTS_PER_MINUTE", c.RateLimit.AnonymousPointsPerMinute}} {
		if b.perMinute > 0 && b.perMinute < maxCost {
			errs = append(errs, fmt.Errorf("%s (%d) is below MAX_QUERY_COST (%d): the costliest operations could never run", b.name, b.perMinute, maxCost))
		}
	}
	trusted, err := guard.ParseTrustedProxies(getenv("TRUSTED_PROXIES"))
	if err != nil {
		errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %w", err))
	}
	if getenv("TRUST_FORWARDED_FOR") != "" {
		// Removed rather than aliased: it believed the header from any peer.
		errs = append(errs, errors.New("TRUST_FORWARDED_FOR was replaced by TRUSTED_PROXIES: set it to your proxies' addresses or CIDR prefixes (e.g. 10.0.0.0/8) and remove TRUST_FORWARDED_FOR"))
	}
	c.HTTP = guard.HTTPConfig{
		RequestTimeout: dur("REQUEST_TIMEOUT", 0),
		CORSOrigins:    splitList(getenv("CORS_ORIGINS")),
		TrustedProxies: trusted,
		Production:     c.Production,
	}
	c.Live.MaxOperations = num("MAX_OPERATIONS_PER_SOCKET", 0)
	c.Live.SetupQueue = num("MAX_QUEUED_SETUPS", 0)
	c.Live.MaxSocketsPerAddress = num("MAX_SOCKETS_PER_ADDRESS", defaultSocketsPerAddress)
	c.Live.Seats = guard.SeatLimit{
		PerUser:    num("MAX_SUBSCRIPTIONS_PER_USER", guard.DefaultSeatLimit.PerUser),
		PerAddress: num("MAX_SUBSCRIPTIONS_PER_ADDRESS", guard.DefaultSeatLimit.PerAddress),
	}
	c.Store.StatementTimeout = dur("DB_STATEMENT_TIMEOUT", 0)
	c.Store.MaxConns = num("DB_MAX_CONNS", 0)
	c.Store.ReplicaURLs = splitList(getenv("DATABASE_REPLICA_URLS"))
	c.Store.ReplicaMaxLag = dur("DATABASE_REPLICA_MAX_LAG", 0)
	if len(c.Store.ReplicaURLs) > 0 && c.Store.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_REPLICA_URLS needs DATABASE_URL: the embedded SQLite store has no replicas"))
	}
	c.Redis.BreakerOpen = dur("REDIS_BREAKER_OPEN", 0)
	c.TokenTTL = dur("TOKEN_TTL", 0)
	c.Responses.MaxAge = dur("RESPONSE_CACHE_MAX_AGE", 0)
	c.GCHeapFloorMiB = num("GC_HEAP_FLOOR_MIB", defaultGCHeapFloorMiB)
	// Tracing is opt-in through the standard OpenTelemetry variables, which the SDK reads.
	c.Tracing = (getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") &&
		!boolEnv(getenv("OTEL_SDK_DISABLED"), false) && getenv("OTEL_TRACES_EXPORTER") != "none"
	return errors.Join(errs...)
}

func newLogger(production bool, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{ReplaceAttr: observe.RedactSecrets}
	if production {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// defaultGCHeapFloorMiB is a quarter of the 512 MiB the Kubernetes deployment gives a pod.
const defaultGCHeapFloorMiB = 128

// paceGC lets the heap grow to floorMiB before the collector runs, where Go's default
// (GOGC=100) runs it whenever the heap doubles. A process that serves reads keeps a live heap
// of a few dozen MiB and allocates fast: at GOGC=100 the collector took a fifth of a
// storefront read's CPU. The tuner sets GOGC after each collection from the heap in use, to
// reach floorMiB, never below 100: once the live heap passes half the floor (a process
// holding many watching phones), the pace is Go's default and so is the memory. A GOGC the
// operator set wins.
func paceGC(floorMiB int, gogc string) {
	if floorMiB <= 0 || gogc != "" {
		return
	}
	// Once a process: gctuner reads its bounds without synchronisation after each
	// collection (v0.1.4), so they are set before its first tuner runs and never again.
	gcBounds.Do(func() {
		gctuner.SetMinGCPercent(100)
		gctuner.SetMaxGCPercent(1000)
	})
	gctuner.Tuning(uint64(floorMiB) << 20)
}

var gcBounds sync.Once

// splitList returns the non-empty items of a comma-separated list.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func boolEnv(s string, def bool) bool {
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	return def
}
