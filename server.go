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
	"github.com/shop/api/checkout"
	"github.com/shop/api/graph"
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
		if err := api.Migrate(ctx, cfg.Service, log); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	case len(args) > 0:
		return fmt.Errorf("unknown command %q (want: migrate, schema or healthcheck)", args[0])
	}
	paceGC(cfg.GCHeapFloorMiB, getenv("GOGC"))
	svc, err := api.New(ctx, cfg.Service, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	if demo := svc.Demo; demo != nil {
		fmt.Fprintf(stdout, "Demo data: %d products. Sign in with logIn as %s or %s, password %q.\n",
			demo.Products, store.DemoMerchantEmail, store.DemoCustomerEmail, store.DemoPassword)
	}
	if cfg.AdminAddr != "" {
		stopOps, err := serveOn("ADMIN_ADDR", cfg.AdminAddr, svc.AdminHandler(), log)
		if err != nil {
			return err
		}
		defer stopOps()
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
		Handler:           closingWhen(&draining, svc.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	l, err := net.Listen("tcp", net.JoinHostPort("", cfg.Port))
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("listening", "url", "http://localhost:"+cfg.Port+"/", "postgres", cfg.Service.DatabaseURL != "", "redis", cfg.Service.RedisURL != "")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Subscriptions first: their sockets close with 1001 so clients move to another process.
	svc.Shutdown(shutdownCtx)
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

// config is the process's configuration, read from the environment once: the service's
// (api.Config) and how this process serves it.
type config struct {
	Port      string
	PprofAddr string
	AdminAddr string // metrics and readiness on a port of their own
	// GCHeapFloorMiB is the heap the collector lets a process grow to before it runs (see
	// paceGC); 0 leaves the pace at Go's default.
	GCHeapFloorMiB int
	Service        api.Config
}

// loadConfig reads the service's configuration from the environment; README's
// "Configuration" and "Production" sections document each variable.
func loadConfig(getenv func(string) string, _ *slog.Logger) (config, error) {
	production := getenv("APP_ENV") == "production"
	c := config{
		Port:      cmp.Or(getenv("PORT"), "8080"),
		PprofAddr: getenv("PPROF_ADDR"),
		AdminAddr: getenv("ADMIN_ADDR"),
		Service: api.Config{
			Production:      production,
			DatabaseURL:     getenv("DATABASE_URL"),
			SQLitePath:      getenv("SQLITE_PATH"),
			RedisURL:        getenv("REDIS_URL"),
			JWTSecret:       []byte(getenv("JWT_SECRET")),
			AdminEmail:      getenv("ADMIN_EMAIL"),
			AdminPassword:   getenv("ADMIN_PASSWORD"),
			Currency:        cmp.Or(getenv("CURRENCY"), api.DefaultCurrency),
			PaymentProvider: getenv("PAYMENT_PROVIDER"),
			Stripe: checkout.StripeConfig{APIKey: getenv("STRIPE_API_KEY"), WebhookSecret: getenv("STRIPE_WEBHOOK_SECRET"),
				APIURL: getenv("STRIPE_API_URL")},
		},
	}
	s := &c.Service
	s.SeparateAdmin = c.AdminAddr != ""
	s.Live.Origins = splitList(getenv("WEBSOCKET_ORIGINS"))
	s.Playground = boolEnv(getenv("PLAYGROUND"), !production)
	s.Introspection = boolEnv(getenv("INTROSPECTION"), !production)
	s.SeedDemo = boolEnv(getenv("SEED_DEMO"), s.DatabaseURL == "" && !production)
	if s.SeedDemo && production {
		// Their password is in this repository.
		return c, errors.New("SEED_DEMO: the demo accounts are never created in production")
	}
	if p := getenv("REDIS_PREFIX"); p != "" {
		s.RedisPrefix = strings.TrimSuffix(p, ":") + ":"
	}
	if (s.AdminEmail == "") != (s.AdminPassword == "") {
		return c, errors.New("set both ADMIN_EMAIL and ADMIN_PASSWORD, or neither")
	}
	s.Trusted.Manifest = getenv("PERSISTED_OPERATIONS")
	// Only ADMIN may bypass the allow-list: anyone can sign up as a CUSTOMER or MERCHANT.
	switch b := getenv("PERSISTED_OPERATIONS_BYPASS"); b {
	case "", "ADMIN":
		s.Trusted.AdminBypass = true
	case "NONE":
	default:
		return c, fmt.Errorf("PERSISTED_OPERATIONS_BYPASS: want ADMIN or NONE, got %q", b)
	}
	if ttl := getenv("ORDER_RESERVATION_TTL"); ttl != "" {
		d, err := time.ParseDuration(ttl)
		if err != nil || d < 0 {
			return c, fmt.Errorf("ORDER_RESERVATION_TTL: want a duration such as 15m (0: for ever), got %q", ttl)
		}
		s.ReservationTTL = cmp.Or(d, -1) // api.Config's "for ever"
	}
	if s.PaymentProvider == checkout.ProviderTest && production {
		return c, errors.New("PAYMENT_PROVIDER=test is refused with APP_ENV=production: set stripe or none")
	}
	return c, loadHardening(&c, getenv)
}

// loadHardening reads the production limits. Unset, each takes its package's default,
// except the rate limits, which are off in a zero guard.RateLimit and on by default here.
func loadHardening(cfg *config, getenv func(string) string) error {
	c := &cfg.Service
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
	c.RequestTimeout = dur("REQUEST_TIMEOUT", 0)
	c.CORSOrigins = splitList(getenv("CORS_ORIGINS"))
	c.TrustedProxies = trusted
	c.Live.MaxOperations = num("MAX_OPERATIONS_PER_SOCKET", 0)
	c.Live.SetupQueue = num("MAX_QUEUED_SETUPS", 0)
	c.Live.MaxSocketsPerAddress = num("MAX_SOCKETS_PER_ADDRESS", api.DefaultSocketsPerAddress)
	c.Live.Seats = guard.SeatLimit{
		PerUser:    num("MAX_SUBSCRIPTIONS_PER_USER", guard.DefaultSeatLimit.PerUser),
		PerAddress: num("MAX_SUBSCRIPTIONS_PER_ADDRESS", guard.DefaultSeatLimit.PerAddress),
	}
	c.StatementTimeout = dur("DB_STATEMENT_TIMEOUT", 0)
	c.DBMaxConns = num("DB_MAX_CONNS", 0)
	c.ReplicaURLs = splitList(getenv("DATABASE_REPLICA_URLS"))
	c.ReplicaMaxLag = dur("DATABASE_REPLICA_MAX_LAG", 0)
	if len(c.ReplicaURLs) > 0 && c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_REPLICA_URLS needs DATABASE_URL: the embedded SQLite store has no replicas"))
	}
	c.RedisBreakerOpen = dur("REDIS_BREAKER_OPEN", 0)
	c.TokenTTL = dur("TOKEN_TTL", 0)
	cfg.GCHeapFloorMiB = num("GC_HEAP_FLOOR_MIB", defaultGCHeapFloorMiB)
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
