// Command api serves the shop's GraphQL API.
//
//	go run .            serve (embedded SQLite and Redis stand-in unless DATABASE_URL/REDIS_URL)
//	go run . migrate    apply database migrations and exit
package main

//go:generate go tool gqlgen generate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shop/api/api"
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
	log := newLogger(getenv("APP_ENV") == "production", stdout)
	port := or(getenv("PORT"), "8080")
	cfg, err := loadConfig(getenv, log)
	if err != nil {
		return err
	}
	switch {
	case len(args) == 1 && args[0] == "migrate":
		s, err := store.Open(ctx, store.Config{DatabaseURL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return s.Close()
	case len(args) > 0:
		return fmt.Errorf("unknown command %q (want: migrate)", args[0])
	}

	svc, err := api.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	if svc.Demo != nil {
		fmt.Fprintf(stdout, "Demo data: %d products. Sign in with logIn as %s or %s, password %q.\n",
			svc.Demo.Products, store.DemoMerchantEmail, store.DemoCustomerEmail, store.DemoPassword)
	}

	srv := &http.Server{
		Addr:              net.JoinHostPort("", port),
		Handler:           svc.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "url", "http://localhost:"+port+"/", "postgres", cfg.DatabaseURL != "", "redis", cfg.RedisURL != "")

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
	return srv.Shutdown(shutdownCtx)
}

// loadConfig reads the service's configuration from the environment, once.
func loadConfig(getenv func(string) string, log *slog.Logger) (api.Config, error) {
	c := api.Config{
		DatabaseURL:   getenv("DATABASE_URL"),
		RedisURL:      getenv("REDIS_URL"),
		SQLitePath:    or(getenv("SQLITE_PATH"), "shop.db"),
		JWTSecret:     []byte(getenv("JWT_SECRET")),
		AdminEmail:    getenv("ADMIN_EMAIL"),
		AdminPassword: getenv("ADMIN_PASSWORD"),
		Currency:      or(getenv("CURRENCY"), "USD"),
		Production:    getenv("APP_ENV") == "production",
	}
	c.Live.Origins = splitList(getenv("WEBSOCKET_ORIGINS"))
	c.Playground = boolEnv(getenv("PLAYGROUND"), !c.Production)
	c.Introspection = boolEnv(getenv("INTROSPECTION"), !c.Production)
	c.SeedDemo = boolEnv(getenv("SEED_DEMO"), c.DatabaseURL == "")
	// Unset, the service derives its Redis namespace from the database it opens.
	if p := getenv("REDIS_PREFIX"); p != "" {
		c.RedisPrefix = strings.TrimSuffix(p, ":") + ":"
	}
	switch {
	case len(c.JWTSecret) > 0:
	case c.DatabaseURL != "" || c.Production:
		return c, errors.New("JWT_SECRET is required with DATABASE_URL or in production")
	default:
		c.JWTSecret = make([]byte, 32)
		_, _ = rand.Read(c.JWTSecret)
		log.Warn("JWT_SECRET is not set: using a random key, so tokens end with this process")
	}
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		return c, errors.New("set both ADMIN_EMAIL and ADMIN_PASSWORD, or neither")
	}
	if c.Production && len(c.JWTSecret) < 32 {
		return c, errors.New("JWT_SECRET must be at least 32 bytes in production")
	}
	return c, loadHardening(&c, getenv)
}

// loadHardening reads the production limits; README's "Production" section documents each
// variable and its default.
func loadHardening(c *api.Config, getenv func(string) string) error {
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
	c.Limits = api.Limits{
		MaxDepth:   num("MAX_QUERY_DEPTH", api.DefaultLimits.MaxDepth),
		MaxCost:    num("MAX_QUERY_COST", api.DefaultLimits.MaxCost),
		MaxAliases: num("MAX_QUERY_ALIASES", api.DefaultLimits.MaxAliases),
		MaxTokens:  num("MAX_QUERY_TOKENS", api.DefaultLimits.MaxTokens),
	}
	c.RateLimit = api.RateLimit{
		PointsPerMinute:         num("RATE_LIMIT_POINTS_PER_MINUTE", 30_000),
		LoginFailuresPerAccount: num("LOGIN_FAILURES_PER_ACCOUNT", 10),
		LoginFailuresPerIP:      num("LOGIN_FAILURES_PER_IP", 50),
		LoginWindow:             dur("LOGIN_WINDOW", 15*time.Minute),
		TrustForwardedFor:       boolEnv(getenv("TRUST_FORWARDED_FOR"), false),
	}
	if p := c.RateLimit.PointsPerMinute; p > 0 && p < c.Limits.MaxCost {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_POINTS_PER_MINUTE (%d) is below MAX_QUERY_COST (%d): the costliest operations could never run", p, c.Limits.MaxCost))
	}
	c.RequestTimeout = dur("REQUEST_TIMEOUT", 15*time.Second)
	c.StatementTimeout = dur("DB_STATEMENT_TIMEOUT", 5*time.Second)
	c.DBMaxConns = num("DB_MAX_CONNS", 20)
	c.RedisBreakerOpen = dur("REDIS_BREAKER_OPEN", 5*time.Second)
	for _, o := range strings.Split(getenv("CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	// Tracing is opt-in through the standard OpenTelemetry variables, which the SDK reads.
	c.Tracing = (getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") &&
		!boolEnv(getenv("OTEL_SDK_DISABLED"), false) && getenv("OTEL_TRACES_EXPORTER") != "none"
	return errors.Join(errs...)
}

func newLogger(production bool, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{ReplaceAttr: api.RedactSecrets}
	if production {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
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

func boolEnv(s string, def bool) bool {
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	return def
}
