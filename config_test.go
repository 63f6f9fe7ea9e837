package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/api"
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

// load reads the configuration as run does, from the environment getenv.
func load(getenv func(string) string) (config, error) {
	_, settings, err := parseArgs(nil, getenv, io.Discard)
	if err != nil {
		return config{}, err
	}
	return loadConfig(settings)
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := load(env())
	if err != nil {
		t.Fatal(err)
	}
	// Unset, a limit takes the default its package exports, shown by --help...
	limits := guard.DefaultLimits
	limits.CachedDocumentBytes = 0 // no variable
	if c.Service.Limits != limits {
		t.Errorf("limits %+v, want guard's defaults", c.Service.Limits)
	}
	// ...and a timeout is left to its package's default (zero here)...
	if c.Service.RequestTimeout != 0 || c.Service.StatementTimeout != 0 ||
		c.Service.DBMaxConns != 0 || c.Service.RedisBreakerOpen != 0 || c.Service.RedisPrefix != "" || c.GCHeapFloorMiB != defaultGCHeapFloorMiB ||
		c.LogFlushInterval != 100*time.Millisecond {
		t.Errorf("defaults written here instead of in their packages: %+v", c)
	}
	// ...but the rate limits, off in a zero guard.RateLimit, are on.
	if c.Service.RateLimit != guard.DefaultRateLimit || c.Service.TrustedProxies != nil {
		t.Errorf("rate limit %+v, trusted proxies %v", c.Service.RateLimit, c.Service.TrustedProxies)
	}
	if len(c.Service.CORSOrigins) != 0 || c.Service.Tracing || !c.Service.Playground || !c.Service.Introspection || c.PprofAddr != "" {
		t.Errorf("cors %v tracing %v playground %v introspection %v pprof %q", c.Service.CORSOrigins, c.Service.Tracing, c.Service.Playground, c.Service.Introspection, c.PprofAddr)
	}
}

func TestLoadConfigProduction(t *testing.T) {
	for _, e := range []func(string) string{
		env("APP_ENV", "production"),
		env("APP_ENV", "production", "JWT_SECRET", "short"),
		env("JWT_SECRET", strings.Repeat("k", 31)), // short outside production too
		env("DATABASE_URL", "postgres://db/shop"),
	} {
		c, err := load(e)
		if err != nil {
			t.Fatal(err) // migrate needs no key
		}
		if svc, err := api.New(t.Context(), c.Service, quiet); err == nil {
			svc.Close()
			t.Errorf("a server would start with JWT_SECRET %q (production %v)", c.Service.JWTSecret, c.Service.Production)
		}
	}
	secret := strings.Repeat("k", 32)
	c, err := load(env("APP_ENV", "production", "JWT_SECRET", secret))
	if err != nil {
		t.Fatal(err)
	}
	if c.Service.Playground || c.Service.Introspection || !c.Service.Production || c.Service.SeedDemo {
		t.Errorf("production: playground %v introspection %v demo data %v", c.Service.Playground, c.Service.Introspection, c.Service.SeedDemo)
	}
	if _, err := load(env("APP_ENV", "production", "JWT_SECRET", secret, "SEED_DEMO", "true")); err == nil ||
		!strings.Contains(err.Error(), "SEED_DEMO") {
		t.Errorf("SEED_DEMO=true in production: %v, want a refusal", err)
	}
	c, _ = load(env("APP_ENV", "production", "JWT_SECRET", secret, "INTROSPECTION", "true", "PLAYGROUND", "true"))
	if !c.Service.Playground || !c.Service.Introspection {
		t.Error("INTROSPECTION/PLAYGROUND=true do not turn them on in production")
	}
}

func TestLoadConfigHardening(t *testing.T) {
	c, err := load(env("MAX_QUERY_DEPTH", "8", "RATE_LIMIT_POINTS_PER_MINUTE", "0", "CORS_ORIGINS", "https://a.example, https://b.example",
		"REQUEST_TIMEOUT", "3s", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,fd00::/8",
		"DB_MAX_CONNS", "5", "REDIS_PREFIX", "tenant-a", "GC_HEAP_FLOOR_MIB", "0", "LOG_FLUSH_INTERVAL", "0"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Service.Limits.MaxDepth != 8 || c.Service.RateLimit.PointsPerMinute != 0 || len(c.Service.CORSOrigins) != 2 || c.Service.CORSOrigins[1] != "https://b.example" ||
		c.Service.RequestTimeout != 3*time.Second || !c.Service.Tracing || fmt.Sprint(c.Service.TrustedProxies) != "[10.0.0.0/8 192.168.1.7/32 fd00::/8]" ||
		c.Service.DBMaxConns != 5 || c.Service.RedisPrefix != "tenant-a:" || c.GCHeapFloorMiB != 0 || c.LogFlushInterval != 0 {
		t.Errorf("config %+v", c)
	}
	if c, _ := load(env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_SDK_DISABLED", "true")); c.Service.Tracing {
		t.Error("OTEL_SDK_DISABLED=true leaves tracing on")
	}
	for _, bad := range [][]string{
		{"MAX_QUERY_COST", "lots"},
		{"GC_HEAP_FLOOR_MIB", "128MiB"},
		{"LOG_FLUSH_INTERVAL", "often"},
		{"REQUEST_TIMEOUT", "soon"},
		{"RATE_LIMIT_POINTS_PER_MINUTE", "100"}, // below the cost of the costliest operation
		{"RATE_LIMIT_ANONYMOUS_POINTS_PER_MINUTE", "100"},
		{"TRUSTED_PROXIES", "10.0.0.0/33"},
		{"TRUSTED_PROXIES", "10.0.0.1, nginx.internal"},
		{"TRUST_FORWARDED_FOR", "true"}, // removed: it would silently trust every peer
		{"PLAYGROUND", "maybe"},
	} {
		_, err := load(env(bad...))
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
		c, err := load(env(tc.env...))
		if err != nil {
			t.Fatal(err)
		}
		// 0 is guard.RateLimit's "same as PointsPerMinute".
		if c.Service.RateLimit.PointsPerMinute != tc.user || c.Service.RateLimit.AnonymousPointsPerMinute != tc.anonymous {
			t.Errorf("%v: user %d anonymous %d, want %d and %d", tc.env, c.Service.RateLimit.PointsPerMinute, c.Service.RateLimit.AnonymousPointsPerMinute, tc.user, tc.anonymous)
		}
	}
}

func TestLoadConfigPersistedOperations(t *testing.T) {
	for _, c := range []struct {
		bypass      string
		adminBypass bool
	}{{"", true}, {"ADMIN", true}, {"NONE", false}} {
		cfg, err := load(env("PERSISTED_OPERATIONS", "/etc/shop/manifest.json", "PERSISTED_OPERATIONS_BYPASS", c.bypass))
		if err != nil || cfg.Service.Trusted.Manifest != "/etc/shop/manifest.json" || cfg.Service.Trusted.AdminBypass != c.adminBypass {
			t.Errorf("PERSISTED_OPERATIONS_BYPASS=%q: %+v, %v", c.bypass, cfg.Service.Trusted, err)
		}
	}
	// Anyone can sign up as a CUSTOMER or MERCHANT: such a bypass would be no allow-list.
	for _, bad := range []string{"MERCHANT", "CUSTOMER", "admin"} {
		if _, err := load(env("PERSISTED_OPERATIONS_BYPASS", bad)); err == nil {
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
	c, err := load(env("DATABASE_URL", "postgres://db/shop",
		"DATABASE_REPLICA_URLS", "postgres://r1/shop, postgres://r2/shop", "DATABASE_REPLICA_MAX_LAG", "5s"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Service.ReplicaURLs) != 2 || c.Service.ReplicaURLs[1] != "postgres://r2/shop" || c.Service.ReplicaMaxLag != 5*time.Second {
		t.Errorf("replicas %q, max lag %s", c.Service.ReplicaURLs, c.Service.ReplicaMaxLag)
	}
	for _, bad := range [][]string{
		{"DATABASE_REPLICA_URLS", "postgres://r1/shop"}, // the embedded SQLite store has no replicas
		{"DATABASE_URL", "postgres://db/shop", "DATABASE_REPLICA_URLS", "postgres://r1/shop", "DATABASE_REPLICA_MAX_LAG", "soon"},
	} {
		if _, err := load(env(bad...)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The caps of live connections are on by default, the subscriptions per account at most
// 1,000 (issue 23); each can be set, and 0 turns it off.
func TestLoadConfigLiveCaps(t *testing.T) {
	c, err := load(env())
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Service.Live.Seats; s.PerUser <= 0 || s.PerUser > 1000 || s.PerAddress < s.PerUser || c.Service.Live.MaxSocketsPerAddress <= 0 {
		t.Errorf("default caps %+v, sockets per address %d", s, c.Service.Live.MaxSocketsPerAddress)
	}
	c, err = load(env("MAX_SUBSCRIPTIONS_PER_USER", "20", "MAX_SUBSCRIPTIONS_PER_ADDRESS", "0", "MAX_OPERATIONS_PER_SOCKET", "7",
		"MAX_QUEUED_SETUPS", "64", "MAX_SOCKETS_PER_ADDRESS", "0"))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Service.Live; s.Seats.PerUser != 20 || s.Seats.PerAddress != 0 || s.MaxOperations != 7 || s.SetupQueue != 64 || s.MaxSocketsPerAddress != 0 {
		t.Errorf("caps %+v", s)
	}
	if _, err := load(env("MAX_SUBSCRIPTIONS_PER_USER", "many")); err == nil || !strings.Contains(err.Error(), "MAX_SUBSCRIPTIONS_PER_USER") {
		t.Errorf("a bad cap: %v", err)
	}
}

// TestLoadConfigCheckout: ORDER_RESERVATION_TTL (unset: 15m; 0 for ever, which api.Config
// spells negative) and PAYMENT_PROVIDER (unset: api.New picks test, or
// none in production, where test refuses to start).
func TestLoadConfigCheckout(t *testing.T) {
	for _, c := range []struct {
		env      func(string) string
		ttl      time.Duration
		provider string
		fails    bool
	}{
		{env: env(), ttl: 15 * time.Minute, provider: ""},
		{env: env("ORDER_RESERVATION_TTL", "0"), ttl: -1, provider: ""},
		{env: env("ORDER_RESERVATION_TTL", "90s", "PAYMENT_PROVIDER", "none"), ttl: 90 * time.Second, provider: "none"},
		{env: env("APP_ENV", "production"), ttl: 15 * time.Minute, provider: ""},
		{env: env("APP_ENV", "production", "PAYMENT_PROVIDER", "stripe"), ttl: 15 * time.Minute, provider: "stripe"},
		{env: env("APP_ENV", "production", "PAYMENT_PROVIDER", "test"), fails: true},
		{env: env("ORDER_RESERVATION_TTL", "-1m"), fails: true},
		{env: env("ORDER_RESERVATION_TTL", "soon"), fails: true},
	} {
		cfg, err := load(c.env)
		if c.fails {
			if err == nil {
				t.Errorf("%v %v: loaded, want an error", c.env("APP_ENV"), c.env("PAYMENT_PROVIDER"))
			}
			continue
		}
		if err != nil || cfg.Service.ReservationTTL != c.ttl || cfg.Service.PaymentProvider != c.provider {
			t.Errorf("ttl %v provider %q err %v, want %v %q", cfg.Service.ReservationTTL, cfg.Service.PaymentProvider, err, c.ttl, c.provider)
		}
	}
}

// TestHelpListsEverySetting: --help names every setting's variable with its default, and
// README's configuration table lists the same variables.
func TestHelpListsEverySetting(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"--help"}, env(), &out); err != nil {
		t.Fatal(err)
	}
	help := strings.Join(strings.Fields(out.String()), " ") // undo the wrapping
	var names []string
	typ := reflect.TypeFor[cli]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("envvar")
		if _, hidden := f.Tag.Lookup("hidden"); name == "" || hidden {
			continue
		}
		names = append(names, name)
		at := strings.Index(help, "$"+name+":")
		if at < 0 {
			t.Errorf("--help does not name $%s", name)
			continue
		}
		entry := help[at+1:]
		if next := strings.Index(entry, " --"); next >= 0 {
			entry = entry[:next]
		}
		if !strings.Contains(entry, "default") {
			t.Errorf("--help gives no default for %s: %s", name, entry)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)[strings.Index(string(readme), "## Configuration"):]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	var listed []string
	for _, line := range strings.Split(section, "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 2 && strings.HasPrefix(line, "| `") {
			for _, m := range regexp.MustCompile("`([A-Z0-9_]+)`").FindAllStringSubmatch(cells[1], -1) {
				listed = append(listed, m[1])
			}
		}
	}
	slices.Sort(names)
	slices.Sort(listed)
	if !slices.Equal(names, listed) {
		t.Errorf("README's configuration table lists\n%q\n--help lists\n%q", listed, names)
	}
}

// TestLoadConfigResponseCache: on by default, RESPONSE_CACHE=false turns it off, and
// RESPONSE_CACHE_MAX_AGE is a duration left to the package's default when unset.
func TestLoadConfigResponseCache(t *testing.T) {
	c, err := load(env())
	if err != nil || c.Service.NoResponseCache || c.Service.Responses.MaxAge != 0 {
		t.Fatalf("defaults: off %v, max-age %v, err %v", c.Service.NoResponseCache, c.Service.Responses.MaxAge, err)
	}
	c, err = load(env("RESPONSE_CACHE", "false", "RESPONSE_CACHE_MAX_AGE", "30s"))
	if err != nil || !c.Service.NoResponseCache || c.Service.Responses.MaxAge != 30*time.Second {
		t.Fatalf("set: off %v, max-age %v, err %v", c.Service.NoResponseCache, c.Service.Responses.MaxAge, err)
	}
	if _, err := load(env("RESPONSE_CACHE_MAX_AGE", "soon")); err == nil || !strings.Contains(err.Error(), "RESPONSE_CACHE_MAX_AGE") {
		t.Errorf("a bad max-age: %v", err)
	}
}
