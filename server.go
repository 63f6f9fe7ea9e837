// Command api serves the shop's GraphQL API.
//
//	go run .            serve (embedded SQLite and Redis stand-in unless DATABASE_URL/REDIS_URL)
//	go run . migrate    apply database migrations and exit
package main

//go:generate go tool gqlgen generate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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
	// The namespace keeps services that share a Redis server but not a database apart, in
	// keys and in pub/sub channels (which ignore the Redis database number).
	sum := sha256.Sum256([]byte(c.DatabaseURL + "|" + c.SQLitePath + "|" + c.RedisURL))
	c.RedisPrefix = or(getenv("REDIS_PREFIX"), "shop:"+hex.EncodeToString(sum[:4])) + ":"
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
	return c, nil
}

func newLogger(production bool, w io.Writer) *slog.Logger {
	if production {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
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
