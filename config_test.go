package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/api/guard"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	// Unset, every limit and timeout is left to its package's default (zero here)...
	if c.Limits != (guard.Limits{}) || c.HTTP.RequestTimeout != 0 || c.Store.StatementTimeout != 0 ||
		c.Store.MaxConns != 0 || c.Redis.BreakerOpen != 0 || c.RedisPrefix != "" || c.GCHeapFloorMiB != defaultGCHeapFloorMiB {
		t.Errorf("defaults written here instead of in their packages: %+v", c)
	}
	// ...but the rate limits, off in a zero guard.RateLimit, are on.
	if c.RateLimit != guard.DefaultRateLimit || c.HTTP.TrustedProxies != nil {
		t.Errorf("rate limit %+v, trusted proxies %v", c.RateLimit, c.HTTP.TrustedProxies)
	}
	if len(c.HTTP.CORSOrigins) != 0 || c.Tracing || !c.Playground || !c.Introspection || c.PprofAddr != "" {
		t.Errorf("cors %v tracing %v playground %v introspection %v pprof %q", c.HTTP.CORSOrigins, c.Tracing, c.Playground, c.Introspection, c.PprofAddr)
	}
}

func TestLoadConfigProduction(t *testing.T) {
	for _, e := range []func(string) string{
		env("APP_ENV", "production"),
		env("APP_ENV", "production", "JWT_SECRET", "short"),
		env("JWT_SECRET", strings.Repeat("k", 31)), // short outside production too
		env("DATABASE_URL", "postgres://db/shop"),
	} {
		c, err := loadConfig(e, quiet)
		if err != nil {
			t.Fatal(err) // migrate needs no key
		}
		if err := c.signingKey(quiet); err == nil {
			t.Errorf("a server would start with JWT_SECRET %q (production %v)", c.JWTSecret, c.Production)
		}
	}
	secret := strings.Repeat("k", 32)
	c, err := loadConfig(env("APP_ENV", "production", "JWT_SECRET", secret), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if c.Playground || c.Introspection || !c.Production || c.SeedDemo {
		t.Errorf("production: playground %v introspection %v demo data %v", c.Playground, c.Introspection, c.SeedDemo)
	}
	if _, err := loadConfig(env("APP_ENV", "production", "JWT_SECRET", secret, "SEED_DEMO", "true"), quiet); err == nil ||
		!strings.Contains(err.Error(), "SEED_DEMO") {
		t.Errorf("SEED_DEMO=true in production: %v, want a refusal", err)
	}
	c, _ = loadConfig(env("APP_ENV", "production", "JWT_SECRET", secret, "INTROSPECTION", "true", "PLAYGROUND", "true"), quiet)
	if !c.Playground || !c.Introspection {
		t.Error("INTROSPECTION/PLAYGROUND=true do not turn them on in production")
	}
}

func TestLoadConfigHardening(t *testing.T) {
	c, err := loadConfig(env("MAX_QUERY_DEPTH", "8", "RATE_LIMIT_POINTS_PER_MINUTE", "0", "CORS_ORIGINS", "https://a.example, https://b.example",
		"REQUEST_TIMEOUT", "3s", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,fd00::/8",
		"DB_MAX_CONNS", "5", "REDIS_PREFIX", "tenant-a", "GC_HEAP_FLOOR_MIB", "0"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxDepth != 8 || c.RateLimit.PointsPerMinute != 0 || len(c.HTTP.CORSOrigins) != 2 || c.HTTP.CORSOrigins[1] != "https://b.example" ||
		c.HTTP.RequestTimeout != 3*time.Second || !c.Tracing || fmt.Sprint(c.HTTP.TrustedProxies) != "[10.0.0.0/8 192.168.1.7/32 fd00::/8]" ||
		c.Store.MaxConns != 5 || c.RedisPrefix != "tenant-a:" || c.GCHeapFloorMiB != 0 {
		t.Errorf("config %+v", c)
	}
	if c, _ := loadConfig(env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_SDK_DISABLED", "true"), quiet); c.Tracing {
		t.Error("OTEL_SDK_DISABLED=true leaves tracing on")
	}
	for _, bad := range [][]string{
		{"MAX_QUERY_COST", "lots"},
		{"GC_HEAP_FLOOR_MIB", "128MiB"},
		{"REQUEST_TIMEOUT", "soon"},
		{"RATE_LIMIT_POINTS_PER_MINUTE", "100"}, // below the cost of the costliest operation
		{"RATE_LIMIT_ANONYMOUS_POINTS_PER_MINUTE", "100"},
		{"TRUSTED_PROXIES", "10.0.0.0/33"},
		{"TRUSTED_PROXIES", "10.0.0.1, nginx.internal"},
		{"TRUST_FORWARDED_FOR", "true"}, // removed: it would silently trust every peer
	} {
		_, err := loadConfig(env(bad...), quiet)
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: error %v, want one naming the variable", bad[0], bad[1], err)
		}
	}
}

// RATE_LIMIT_POINTS_PER_MINUTE set alone stays the budget of every caller, anonymous ones
// included; unset, anonymous addresses get the larger default of their own.
func TestLoadConfigAnonymousBudget(t *testing.T) {
	for _, tc := range []struct {
		env             []string
		user, anonymous int
	}{
		{nil, 30_000, 300_000},
		{[]string{"RATE_LIMIT_POINTS_PER_MINUTE", "12000"}, 12_000, 0},
		{[]string{"RATE_LIMIT_POINTS_PER_MINUTE", "0"}, 0, 0},
		{[]string{"RATE_LIMIT_ANONYMOUS_POINTS_PER_MINUTE", "50000"}, 30_000, 50_000},
		{[]string{"RATE_LIMIT_POINTS_PER_MINUTE", "12000", "RATE_LIMIT_ANONYMOUS_POINTS_PER_MINUTE", "90000"}, 12_000, 90_000},
	} {
		c, err := loadConfig(env(tc.env...), quiet)
		if err != nil {
			t.Fatal(err)
		}
		// 0 is guard.RateLimit's "same as PointsPerMinute".
		if c.RateLimit.PointsPerMinute != tc.user || c.RateLimit.AnonymousPointsPerMinute != tc.anonymous {
			t.Errorf("%v: user %d anonymous %d, want %d and %d", tc.env, c.RateLimit.PointsPerMinute, c.RateLimit.AnonymousPointsPerMinute, tc.user, tc.anonymous)
		}
	}
}

func TestLoadConfigPersistedOperations(t *testing.T) {
	for _, c := range []struct {
		bypass      string
		adminBypass bool
	}{{"", true}, {"ADMIN", true}, {"NONE", false}} {
		cfg, err := loadConfig(env("PERSISTED_OPERATIONS", "/etc/shop/manifest.json", "PERSISTED_OPERATIONS_BYPASS", c.bypass), quiet)
		if err != nil || cfg.Trusted.Manifest != "/etc/shop/manifest.json" || cfg.Trusted.AdminBypass != c.adminBypass {
			t.Errorf("PERSISTED_OPERATIONS_BYPASS=%q: %+v, %v", c.bypass, cfg.Trusted, err)
		}
	}
	// Anyone can sign up as a CUSTOMER or MERCHANT: such a bypass would be no allow-list.
	for _, bad := range []string{"MERCHANT", "CUSTOMER", "admin"} {
		if _, err := loadConfig(env("PERSISTED_OPERATIONS_BYPASS", bad), quiet); err == nil {
			t.Errorf("PERSISTED_OPERATIONS_BYPASS=%s accepted", bad)
		}
	}
	// A manifest that cannot be read stops the server before it opens anything.
	err := run(t.Context(), nil, env("PERSISTED_OPERATIONS", filepath.Join(t.TempDir(), "missing.json")), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PERSISTED_OPERATIONS") {
		t.Fatalf("run with a missing manifest: %v", err)
	}
}

func TestLoadConfigReplicas(t *testing.T) {
	c, err := loadConfig(env("DATABASE_URL", "postgres://db/shop",
		"DATABASE_REPLICA_URLS", "postgres://r1/shop, postgres://r2/shop", "DATABASE_REPLICA_MAX_LAG", "5s"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Store.ReplicaURLs) != 2 || c.Store.ReplicaURLs[1] != "postgres://r2/shop" || c.Store.ReplicaMaxLag != 5*time.Second {
		t.Errorf("replicas %q, max lag %s", c.Store.ReplicaURLs, c.Store.ReplicaMaxLag)
	}
	for _, bad := range [][]string{
		{"DATABASE_REPLICA_URLS", "postgres://r1/shop"}, // the embedded SQLite store has no replicas
		{"DATABASE_URL", "postgres://db/shop", "DATABASE_REPLICA_URLS", "postgres://r1/shop", "DATABASE_REPLICA_MAX_LAG", "soon"},
	} {
		if _, err := loadConfig(env(bad...), quiet); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The caps of live connections are on by default, the subscriptions per account at most
// 1,000 (issue 23); each can be set, and 0 turns it off.
func TestLoadConfigLiveCaps(t *testing.T) {
	c, err := loadConfig(env(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Live.Seats; s.PerUser <= 0 || s.PerUser > 1000 || s.PerAddress < s.PerUser || c.Live.MaxSocketsPerAddress <= 0 {
		t.Errorf("default caps %+v, sockets per address %d", s, c.Live.MaxSocketsPerAddress)
	}
	c, err = loadConfig(env("MAX_SUBSCRIPTIONS_PER_USER", "20", "MAX_SUBSCRIPTIONS_PER_ADDRESS", "0", "MAX_OPERATIONS_PER_SOCKET", "7",
		"MAX_QUEUED_SETUPS", "64", "MAX_SOCKETS_PER_ADDRESS", "0"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Live; s.Seats.PerUser != 20 || s.Seats.PerAddress != 0 || s.MaxOperations != 7 || s.SetupQueue != 64 || s.MaxSocketsPerAddress != 0 {
		t.Errorf("caps %+v", s)
	}
	if _, err := loadConfig(env("MAX_SUBSCRIPTIONS_PER_USER", "many"), quiet); err == nil || !strings.Contains(err.Error(), "MAX_SUBSCRIPTIONS_PER_USER") {
		t.Errorf("a bad cap: %v", err)
	}
}

// TestLoadConfigCheckout: ORDER_RESERVATION_TTL (default 15m, 0 for ever) and
// PAYMENT_PROVIDER (test by default, none in production, where test refuses to start).
func TestLoadConfigCheckout(t *testing.T) {
	for _, c := range []struct {
		env      func(string) string
		ttl      time.Duration
		provider string
		fails    bool
	}{
		{env: env(), ttl: 15 * time.Minute, provider: "test"},
		{env: env("ORDER_RESERVATION_TTL", "0"), ttl: 0, provider: "test"},
		{env: env("ORDER_RESERVATION_TTL", "90s", "PAYMENT_PROVIDER", "none"), ttl: 90 * time.Second, provider: "none"},
		{env: env("APP_ENV", "production"), ttl: 15 * time.Minute, provider: "none"},
		{env: env("APP_ENV", "production", "PAYMENT_PROVIDER", "stripe"), ttl: 15 * time.Minute, provider: "stripe"},
		{env: env("APP_ENV", "production", "PAYMENT_PROVIDER", "test"), fails: true},
		{env: env("ORDER_RESERVATION_TTL", "-1m"), fails: true},
		{env: env("ORDER_RESERVATION_TTL", "soon"), fails: true},
	} {
		cfg, err := loadConfig(c.env, quiet)
		if c.fails {
			if err == nil {
				t.Errorf("%v %v: loaded, want an error", c.env("APP_ENV"), c.env("PAYMENT_PROVIDER"))
			}
			continue
		}
		if err != nil || cfg.Store.ReservationTTL != c.ttl || cfg.Checkout.Provider != c.provider {
			t.Errorf("ttl %v provider %q err %v, want %v %q", cfg.Store.ReservationTTL, cfg.Checkout.Provider, err, c.ttl, c.provider)
		}
	}
}

// TestLoadConfigResponseCache: on by default, RESPONSE_CACHE=false turns it off, and
// RESPONSE_CACHE_MAX_AGE is a duration left to the package's default when unset.
func TestLoadConfigResponseCache(t *testing.T) {
	c, err := loadConfig(env(), quiet)
	if err != nil || !c.ResponseCache || c.Responses.MaxAge != 0 {
		t.Fatalf("defaults: on %v, max-age %v, err %v", c.ResponseCache, c.Responses.MaxAge, err)
	}
	c, err = loadConfig(env("RESPONSE_CACHE", "false", "RESPONSE_CACHE_MAX_AGE", "30s"), quiet)
	if err != nil || c.ResponseCache || c.Responses.MaxAge != 30*time.Second {
		t.Fatalf("set: on %v, max-age %v, err %v", c.ResponseCache, c.Responses.MaxAge, err)
	}
	if _, err := loadConfig(env("RESPONSE_CACHE_MAX_AGE", "soon"), quiet); err == nil || !strings.Contains(err.Error(), "RESPONSE_CACHE_MAX_AGE") {
		t.Errorf("a bad max-age: %v", err)
	}
}
