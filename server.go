// Command api serves the shop's GraphQL API.
//
//	go run .              serve (embedded SQLite and Redis stand-in unless DATABASE_URL/REDIS_URL)
//	go run . migrate      apply database migrations and exit
//	go run . schema       print the GraphQL schema (SDL) and exit
//	go run . healthcheck  exit 0 when the server on PORT answers /healthz (for images without curl)
//	go run . --help       every setting: its environment variable and its default
//
// run reads the configuration once (the cli struct below), builds the service with api.New,
// serves it and drains it on a signal.
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
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/vektah/gqlparser/v2/formatter"

	"github.com/shop/api/api"
	"github.com/shop/api/api/guard"
	"github.com/shop/api/api/observe"
	"github.com/shop/api/api/respcache"
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
	cmd, settings, err := parseArgs(args, getenv, stdout)
	if err != nil {
		return err
	}
	switch cmd {
	case "help":
		return nil
	case "schema": // must print nothing else
		formatter.NewFormatter(stdout, formatter.WithComments()).FormatSchema(graph.Schema())
		return nil
	case "healthcheck":
		return healthcheck(ctx, settings.Port)
	}
	cfg, err := loadConfig(settings)
	if err != nil {
		return err
	}
	log, flushLog := newLogger(cfg.Production, cfg.LogFlushInterval, stdout)
	defer flushLog() // the last, after every request and Close has logged
	if cmd == "migrate" {
		if err := api.Migrate(ctx, cfg.Service, log); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return nil
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

// cli is the command line: a command (serve when none is named) and every setting. A
// setting is read from its environment variable (the envvar tag) or a flag of its own;
// --help lists them all with their defaults. A default in braces comes from the package it
// configures; one in words is left to that package (a zero value here).
type cli struct {
	Serve       struct{} `cmd:"" default:"1" help:"Serve the API (the default)."`
	Migrate     struct{} `cmd:"" help:"Apply the database migrations and exit."`
	Schema      struct{} `cmd:"" help:"Print the GraphQL schema (SDL) and exit."`
	Healthcheck struct{} `cmd:"" help:"Exit 0 when the server on PORT answers /healthz (for images without curl)."`

	Port             string        `envvar:"PORT" default:"8080" help:"HTTP port."`
	AppEnv           string        `envvar:"APP_ENV" help:"production turns off the playground, introspection and field suggestions, and logs JSON (default: development)."`
	Playground       *bool         `envvar:"PLAYGROUND" help:"Serve GraphiQL (default: on outside production)."`
	Introspection    *bool         `envvar:"INTROSPECTION" help:"Answer introspection (default: on outside production)."`
	SeedDemo         *bool         `envvar:"SEED_DEMO" help:"Fill an empty store with demo data; refused in production (default: on in embedded mode)."`
	AdminAddr        string        `envvar:"ADMIN_ADDR" help:"Serve /metrics and /readyz on this address instead of the public port (default: the public port)."`
	PprofAddr        string        `envvar:"PPROF_ADDR" help:"Serve net/http/pprof on this address (default: off)."`
	GCHeapFloorMiB   int           `envvar:"GC_HEAP_FLOOR_MIB" default:"${gc_heap_floor}" help:"Heap a process grows to before the collector runs; 0 leaves GOGC alone."`
	LogFlushInterval time.Duration `envvar:"LOG_FLUSH_INTERVAL" default:"100ms" help:"In production, how long access lines may wait to be written together (other records never wait); 0 writes each at once."`

	DatabaseURL      string        `envvar:"DATABASE_URL" help:"PostgreSQL URL (default: the embedded SQLite file)."`
	SQLitePath       string        `envvar:"SQLITE_PATH" help:"The embedded database file (default: shop.db)."`
	ReplicaURLs      string        `envvar:"DATABASE_REPLICA_URLS" help:"Comma-separated URLs of streaming replicas serving reads; needs DATABASE_URL (default: none)."`
	ReplicaMaxLag    time.Duration `envvar:"DATABASE_REPLICA_MAX_LAG" help:"How far behind a replica may be and still serve reads (default: 2s)."`
	DBMaxConns       int           `envvar:"DB_MAX_CONNS" help:"PostgreSQL connections one process may hold (default: 20)."`
	StatementTimeout time.Duration `envvar:"DB_STATEMENT_TIMEOUT" help:"Deadline of each SQL statement (default: 5s)."`
	RedisURL         string        `envvar:"REDIS_URL" help:"redis:// or redis-sentinel:// URL (default: an in-process stand-in)."`
	RedisPrefix      string        `envvar:"REDIS_PREFIX" help:"Namespace of every Redis key and channel (default: shop:<the database's namespace>:)."`
	RedisBreakerOpen time.Duration `envvar:"REDIS_BREAKER_OPEN" help:"How long Redis is skipped after 3 consecutive failures (default: 5s)."`

	JWTSecret      string        `envvar:"JWT_SECRET" help:"HMAC key for tokens, 32 bytes or more (default: random per start; required with DATABASE_URL or in production)."`
	TokenTTL       time.Duration `envvar:"TOKEN_TTL" help:"How long a token lasts (default: 24h)."`
	AdminEmail     string        `envvar:"ADMIN_EMAIL" help:"An ADMIN account created, or its password reset, at start (default: none)."`
	AdminPassword  string        `envvar:"ADMIN_PASSWORD" help:"The ADMIN account's password (default: none)."`
	Currency       string        `envvar:"CURRENCY" default:"${currency}" help:"The shop's currency code."`
	ReservationTTL time.Duration `envvar:"ORDER_RESERVATION_TTL" default:"${reservation_ttl}" help:"How long a PENDING order holds its stock unpaid; 0: for ever."`
	Payments       string        `envvar:"PAYMENT_PROVIDER" help:"test, stripe or none (default: test; none in production)."`
	StripeKey      string        `envvar:"STRIPE_API_KEY" help:"Stripe's secret key, required with stripe (default: none)."`
	StripeSecret   string        `envvar:"STRIPE_WEBHOOK_SECRET" help:"Stripe's webhook signing secret, required with stripe (default: none)."`
	StripeURL      string        `envvar:"STRIPE_API_URL" help:"The Stripe API's base URL (default: Stripe's own)."`

	RequestTimeout    time.Duration `envvar:"REQUEST_TIMEOUT" help:"Deadline of every request except subscriptions (default: 15s)."`
	CORSOrigins       string        `envvar:"CORS_ORIGINS" help:"Comma-separated browser origins allowed to call /graphql, * for any (default: none)."`
	WebSocketOrigins  string        `envvar:"WEBSOCKET_ORIGINS" help:"Hosts (comma-separated path.Match patterns) whose cross-origin WebSocket upgrades are accepted (default: none)."`
	TrustedProxies    string        `envvar:"TRUSTED_PROXIES" help:"Comma-separated CIDR prefixes or addresses of your proxies, whose X-Forwarded-For names the client (default: none)."`
	TrustForwardedFor string        `envvar:"TRUST_FORWARDED_FOR" hidden:"" help:"Removed: set TRUSTED_PROXIES."`
	MaxDepth          int           `envvar:"MAX_QUERY_DEPTH" default:"${max_depth}" help:"Deepest nesting of fields."`
	MaxCost           int           `envvar:"MAX_QUERY_COST" default:"${max_cost}" help:"Highest cost of one operation."`
	MaxAliases        int           `envvar:"MAX_QUERY_ALIASES" default:"${max_aliases}" help:"Aliased fields per operation."`
	MaxTokens         int           `envvar:"MAX_QUERY_TOKENS" default:"${max_tokens}" help:"Lexical tokens per document."`
	MaxQueryBytes     int           `envvar:"MAX_QUERY_BYTES" default:"${max_query_bytes}" help:"Bytes of query text, at every transport."`
	PointsPerMinute   *int          `envvar:"RATE_LIMIT_POINTS_PER_MINUTE" help:"Cost points a caller may spend per minute, also the burst; 0 turns it off (default: ${points})."`
	AnonymousPoints   *int          `envvar:"RATE_LIMIT_ANONYMOUS_POINTS_PER_MINUTE" help:"Cost points all anonymous callers at one address may spend per minute (default: ${anonymous_points}; when only RATE_LIMIT_POINTS_PER_MINUTE is set, that)."`
	SubsPerUser       int           `envvar:"MAX_SUBSCRIPTIONS_PER_USER" default:"${subs_per_user}" help:"Live subscriptions one account may hold; 0 turns it off."`
	SubsPerAddress    int           `envvar:"MAX_SUBSCRIPTIONS_PER_ADDRESS" default:"${subs_per_address}" help:"Live subscriptions one client address may hold; 0 turns it off."`
	OpsPerSocket      int           `envvar:"MAX_OPERATIONS_PER_SOCKET" help:"Operations one WebSocket may run at once (default: 100)."`
	SocketsPerAddress int           `envvar:"MAX_SOCKETS_PER_ADDRESS" default:"${sockets_per_address}" help:"WebSockets one client address may hold open in a process; 0 turns it off."`
	QueuedSetups      int           `envvar:"MAX_QUEUED_SETUPS" help:"Socket operations waiting to be set up in one process (default: 4096)."`
	LoginsPerAccount  int           `envvar:"LOGIN_FAILURES_PER_ACCOUNT" default:"${logins_per_account}" help:"Failed logIns per window for one email address."`
	LoginsPerIP       int           `envvar:"LOGIN_FAILURES_PER_IP" default:"${logins_per_ip}" help:"Failed logIns per window from one client address."`
	LoginWindow       time.Duration `envvar:"LOGIN_WINDOW" default:"${login_window}" help:"The sign-in throttle's window."`
	Persisted         string        `envvar:"PERSISTED_OPERATIONS" help:"Path of an Apollo persisted query manifest: only its operations run (default: every operation runs)."`
	PersistedBypass   string        `envvar:"PERSISTED_OPERATIONS_BYPASS" default:"ADMIN" enum:"ADMIN,NONE" help:"ADMIN: admins may still run any operation; NONE: nobody may."`
	ResponseCache     *bool         `envvar:"RESPONSE_CACHE" help:"Answer anonymous public queries from cached responses; off with read replicas (default: on)."`
	ResponseMaxAge    time.Duration `envvar:"RESPONSE_CACHE_MAX_AGE" help:"max-age of Cache-Control on public GET answers to persisted queries (default: 5s)."`

	OTLPEndpoint       string `envvar:"OTEL_EXPORTER_OTLP_ENDPOINT" help:"Export OpenTelemetry traces over OTLP/HTTP; the standard OTEL_* variables apply (default: tracing off)."`
	OTLPTracesEndpoint string `envvar:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" help:"The traces endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT's)."`
	OTelDisabled       bool   `envvar:"OTEL_SDK_DISABLED" hidden:""`
	OTelTracesExporter string `envvar:"OTEL_TRACES_EXPORTER" hidden:""`
}

// defaults are the defaults --help shows and the settings take, each from its package.
func defaults() kong.Vars {
	d := func(v time.Duration) string { // 15m, not 15m0s
		s := v.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
	return kong.Vars{
		"gc_heap_floor":       strconv.Itoa(defaultGCHeapFloorMiB),
		"currency":            store.DefaultCurrency,
		"reservation_ttl":     d(api.DefaultReservationTTL),
		"max_depth":           strconv.Itoa(guard.DefaultLimits.MaxDepth),
		"max_cost":            strconv.Itoa(guard.DefaultLimits.MaxCost),
		"max_aliases":         strconv.Itoa(guard.DefaultLimits.MaxAliases),
		"max_tokens":          strconv.Itoa(guard.DefaultLimits.MaxTokens),
		"max_query_bytes":     strconv.Itoa(guard.DefaultLimits.MaxQueryBytes),
		"points":              strconv.Itoa(guard.DefaultRateLimit.PointsPerMinute),
		"anonymous_points":    strconv.Itoa(guard.DefaultRateLimit.AnonymousPointsPerMinute),
		"subs_per_user":       strconv.Itoa(guard.DefaultSeatLimit.PerUser),
		"subs_per_address":    strconv.Itoa(guard.DefaultSeatLimit.PerAddress),
		"sockets_per_address": strconv.Itoa(api.DefaultSocketsPerAddress),
		"logins_per_account":  strconv.Itoa(guard.DefaultRateLimit.LoginFailuresPerAccount),
		"logins_per_ip":       strconv.Itoa(guard.DefaultRateLimit.LoginFailuresPerIP),
		"login_window":        d(guard.DefaultRateLimit.LoginWindow),
	}
}

// parseArgs reads the command and the settings from args and the environment (getenv).
// It returns the selected command ("serve" with no command named); --help prints to stdout
// and returns "help".
func parseArgs(args []string, getenv func(string) string, stdout io.Writer) (string, *cli, error) {
	var c cli
	exited := false
	parser, err := kong.New(&c, kong.Name("shop-api"),
		kong.Description("The shop's GraphQL API. Every setting is an environment variable (or the flag beside it)."),
		defaults(),
		kong.Writers(stdout, stdout),
		kong.Exit(func(int) { exited = true }),
		kong.ConfigureHelp(kong.HelpOptions{NoExpandSubcommands: true}),
		// Each flag is named after its variable: --max-query-depth for MAX_QUERY_DEPTH.
		kong.PostBuild(func(k *kong.Kong) error {
			for _, f := range k.Model.Flags {
				if env := f.Tag.Get("envvar"); env != "" {
					f.Name = strings.ToLower(strings.ReplaceAll(env, "_", "-"))
				}
			}
			return nil
		}),
		kong.ValueFormatter(func(v *kong.Value) string {
			if v.Tag.Get("envvar") == "" {
				return v.Help
			}
			help := "$" + v.Tag.Get("envvar") + ": " + v.Help
			if v.Default != "" && !strings.Contains(v.Help, "default") {
				help += " (default: " + v.Default + ")"
			}
			return help
		}),
		kong.Resolvers(kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
			name := f.Tag.Get("envvar")
			s := getenv(name)
			if s == "" || name == "" {
				return nil, nil
			}
			return s, checkSetting(name, s, f.Target.Type())
		})))
	if err != nil {
		return "", nil, err
	}
	ctx, err := parser.Parse(args)
	if exited {
		return "help", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	return strings.Fields(ctx.Command())[0], &c, nil
}

// checkSetting refuses a number or a duration that is malformed or negative, or a
// malformed switch, naming the variable (ORDER_RESERVATION_TTL and LOG_FLUSH_INTERVAL may
// be 0, other durations may not).
func checkSetting(name, s string, typ reflect.Type) error {
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d == 0 && name != "ORDER_RESERVATION_TTL" && name != "LOG_FLUSH_INTERVAL" {
			return fmt.Errorf("%s: want a duration such as 10s, got %q", name, s)
		}
	case typ.Kind() == reflect.Int:
		if n, err := strconv.Atoi(s); err != nil || n < 0 {
			return fmt.Errorf("%s: want a whole number ≥ 0, got %q", name, s)
		}
	case typ.Kind() == reflect.Bool:
		if !slices.Contains([]string{"true", "1", "yes", "false", "0", "no"}, strings.ToLower(s)) {
			return fmt.Errorf("%s: want true or false, got %q", name, s)
		}
	}
	return nil
}

// config is the process's configuration: the service's (api.Config) and how this process
// serves it.
type config struct {
	Port, AdminAddr, PprofAddr string
	Production                 bool
	GCHeapFloorMiB             int
	LogFlushInterval           time.Duration
	Service                    api.Config
}

// loadConfig turns the parsed settings into the process's configuration, refusing
// combinations that cannot work.
func loadConfig(c *cli) (config, error) {
	production := c.AppEnv == "production"
	on := func(b *bool, def bool) bool {
		if b == nil {
			return def
		}
		return *b
	}
	points, anonymous := guard.DefaultRateLimit.PointsPerMinute, guard.DefaultRateLimit.AnonymousPointsPerMinute
	if c.PointsPerMinute != nil {
		// A budget set for every caller stays every caller's unless the anonymous one is set.
		points, anonymous = *c.PointsPerMinute, 0
	}
	if c.AnonymousPoints != nil {
		anonymous = *c.AnonymousPoints
	}
	trusted, err := guard.ParseTrustedProxies(c.TrustedProxies)
	cfg := config{Port: c.Port, AdminAddr: c.AdminAddr, PprofAddr: c.PprofAddr, Production: production,
		GCHeapFloorMiB: c.GCHeapFloorMiB, LogFlushInterval: c.LogFlushInterval, Service: api.Config{
			DatabaseURL: c.DatabaseURL, SQLitePath: c.SQLitePath, DBMaxConns: c.DBMaxConns, StatementTimeout: c.StatementTimeout,
			ReplicaURLs: splitList(c.ReplicaURLs), ReplicaMaxLag: c.ReplicaMaxLag,
			ReservationTTL: cmp.Or(c.ReservationTTL, -1), Currency: c.Currency,
			RedisURL: c.RedisURL, RedisBreakerOpen: c.RedisBreakerOpen,
			JWTSecret: []byte(c.JWTSecret), TokenTTL: c.TokenTTL, AdminEmail: c.AdminEmail, AdminPassword: c.AdminPassword,
			SeedDemo:      on(c.SeedDemo, c.DatabaseURL == "" && !production),
			Production:    production,
			Playground:    on(c.Playground, !production),
			Introspection: on(c.Introspection, !production),
			Limits: guard.Limits{MaxDepth: c.MaxDepth, MaxCost: c.MaxCost, MaxAliases: c.MaxAliases,
				MaxTokens: c.MaxTokens, MaxQueryBytes: c.MaxQueryBytes},
			RateLimit: guard.RateLimit{PointsPerMinute: points, AnonymousPointsPerMinute: anonymous,
				LoginFailuresPerAccount: c.LoginsPerAccount, LoginFailuresPerIP: c.LoginsPerIP, LoginWindow: c.LoginWindow},
			RequestTimeout: c.RequestTimeout, CORSOrigins: splitList(c.CORSOrigins), TrustedProxies: trusted,
			Live: api.LiveConfig{Origins: splitList(c.WebSocketOrigins), MaxOperations: c.OpsPerSocket, SetupQueue: c.QueuedSetups,
				MaxSocketsPerAddress: c.SocketsPerAddress, Seats: guard.SeatLimit{PerUser: c.SubsPerUser, PerAddress: c.SubsPerAddress}},
			// Only ADMIN may bypass the allow-list: anyone can sign up as a CUSTOMER or MERCHANT.
			Trusted:         api.TrustedConfig{Manifest: c.Persisted, AdminBypass: c.PersistedBypass == "ADMIN"},
			PaymentProvider: c.Payments,
			Stripe:          checkout.StripeConfig{APIKey: c.StripeKey, WebhookSecret: c.StripeSecret, APIURL: c.StripeURL},
			// Opt-in through the standard OpenTelemetry variables, which the SDK reads.
			Tracing:         (c.OTLPEndpoint != "" || c.OTLPTracesEndpoint != "") && !c.OTelDisabled && c.OTelTracesExporter != "none",
			SeparateAdmin:   c.AdminAddr != "",
			NoResponseCache: !on(c.ResponseCache, true),
			Responses:       respcache.Config{MaxAge: c.ResponseMaxAge},
		}}
	s := &cfg.Service
	if c.RedisPrefix != "" {
		s.RedisPrefix = strings.TrimSuffix(c.RedisPrefix, ":") + ":"
	}
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %w", err))
	}
	if c.TrustForwardedFor != "" {
		// Removed rather than aliased: it believed the header from any peer.
		errs = append(errs, errors.New("TRUST_FORWARDED_FOR was replaced by TRUSTED_PROXIES: set it to your proxies' addresses or CIDR prefixes (e.g. 10.0.0.0/8) and remove TRUST_FORWARDED_FOR"))
	}
	for name, perMinute := range map[string]int{"RATE_LIMIT_POINTS_PER_MINUTE": s.RateLimit.PointsPerMinute,
		"RATE_LIMIT_ANONYMOUS_POINTS_PER_MINUTE": s.RateLimit.AnonymousPointsPerMinute} {
		if perMinute > 0 && perMinute < s.Limits.MaxCost {
			errs = append(errs, fmt.Errorf("%s (%d) is below MAX_QUERY_COST (%d): the costliest operations could never run", name, perMinute, s.Limits.MaxCost))
		}
	}
	if len(s.ReplicaURLs) > 0 && s.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_REPLICA_URLS needs DATABASE_URL: the embedded SQLite store has no replicas"))
	}
	if s.SeedDemo && production {
		// Their password is in this repository.
		errs = append(errs, errors.New("SEED_DEMO: the demo accounts are never created in production"))
	}
	if (s.AdminEmail == "") != (s.AdminPassword == "") {
		errs = append(errs, errors.New("set both ADMIN_EMAIL and ADMIN_PASSWORD, or neither"))
	}
	if s.PaymentProvider == checkout.ProviderTest && production {
		// Anyone could mark their own orders paid.
		errs = append(errs, errors.New("PAYMENT_PROVIDER=test is refused with APP_ENV=production: set stripe or none"))
	}
	return cfg, errors.Join(errs...)
}

// newLogger returns the process's logger and what writes the access lines it holds back
// (production, flushEvery above 0).
func newLogger(production bool, flushEvery time.Duration, w io.Writer) (*slog.Logger, func()) {
	switch {
	case production && flushEvery > 0:
		h, flush := observe.NewBufferedJSONHandler(w, nil, flushEvery)
		return slog.New(h), flush
	case production:
		return slog.New(observe.NewJSONHandler(w, nil)), func() {}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: observe.RedactSecrets})), func() {}
}

// defaultGCHeapFloorMiB is a quarter of the 512 MiB the Kubernetes deployment gives a pod.
const defaultGCHeapFloorMiB = 128

// paceGC lets the heap grow to floorMiB before the collector runs, where Go's default
// (GOGC=100) runs it whenever the heap doubles. A process that serves reads keeps a live heap
// of a few dozen MiB and allocates fast: at GOGC=100 the collector took a fifth of a
// storefront read's CPU. After each collection GOGC is set from the live heap that
// collection marked, to reach floorMiB, between 100 and 1000: once the live heap passes half
// the floor (a process holding many watching phones), the pace is Go's default and so is
// the memory. A GOGC the operator set wins.
func paceGC(floorMiB int, gogc string) {
	if floorMiB <= 0 || gogc != "" {
		return
	}
	pacer.pace(uint64(floorMiB) << 20)
}

// pacer is the process's one gcPacer.
var pacer gcPacer

// gcPacer sets GOGC after each collection. It reads the live heap the collection marked
// (runtime/metrics), not the heap in use, which until the sweep is done still holds the
// garbage: gctuner, which read that (through ReadMemStats, which stops the world), set a
// GOGC of 100 after every other collection, and W1's process collected twice as often as
// its floor allowed.
type gcPacer struct {
	mu     sync.Mutex
	floor  uint64 // bytes; 0: not pacing
	armed  bool
	sample [1]metrics.Sample
}

func (p *gcPacer) pace(floor uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.floor = floor
	if !p.armed {
		p.armed = true
		p.sample[0].Name = "/gc/heap/live:bytes"
		p.arm()
	}
}

// stop stops pacing, GOGC back to 100.
func (p *gcPacer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.floor = 0
	debug.SetGCPercent(100)
}

// arm has collected called after the next collection: once a new object, unreachable at
// once, has been collected.
func (p *gcPacer) arm() {
	runtime.AddCleanup(new([64]byte), (*gcPacer).collected, p)
}

func (p *gcPacer) collected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.floor > 0 {
		metrics.Read(p.sample[:])
		if live := p.sample[0].Value.Uint64(); live > 0 {
			debug.SetGCPercent(int(min(max((int64(p.floor)-int64(live))*100/int64(live), 100), 1000)))
		}
	}
	p.arm()
}

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
