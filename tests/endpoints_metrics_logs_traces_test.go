package tests

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/shop/api/api/observe"
)

// metricValue returns the sum of every sample of the named metric on /metrics whose labels
// contain all of labels (e.g. `code="BAD_USER_INPUT"`).
func metricValue(t *testing.T, env *testEnv, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(env.srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func TestMetricsCountOperationsAndErrors(t *testing.T) {
	env := embedded(t, config{})
	env.anon().must(`query ListProducts { products(first: 2) { totalCount } }`, nil, nil)
	env.anon().post(`query TooDeep { products { nodes { merchant { products { nodes { merchant { products { nodes { merchant { products { nodes { merchant { products { nodes { merchant { id } } } } } } } } } } } } } } } }`, nil)
	env.anon().post(`{ products(first: 500) { totalCount } }`, nil)
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"shop_graphql_requests_total", []string{`operation="ListProducts"`, `outcome="ok"`, `type="query"`}},
		{"shop_graphql_request_duration_seconds_count", []string{`operation="ListProducts"`}},
		{"shop_graphql_errors_total", []string{`code="COMPLEXITY_LIMIT_EXCEEDED"`}},
		{"shop_graphql_errors_total", []string{`code="BAD_USER_INPUT"`}},
		{"shop_graphql_requests_total", []string{`operation="anonymous"`, `outcome="failed"`}},
		{"go_sql_max_open_connections", []string{`db_name="shop"`}},
		{"shop_redis_breaker_state", nil},
	} {
		if _, ok := seen(t, env, c.name, c.labels...); !ok {
			t.Errorf("no sample of %s%v on /metrics", c.name, c.labels)
		}
	}
	if v := metricValue(t, env, "shop_graphql_requests_total", `operation="ListProducts"`); v != 1 {
		t.Errorf("ListProducts counted %v times, want 1", v)
	}
}

func seen(t *testing.T, env *testEnv, name string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(env.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			return metricValue(t, env, name, labels...), true
		}
	}
	return 0, false
}

func TestLogsNeverShowSecrets(t *testing.T) {
	var logs bytes.Buffer
	cfg := config{SQLitePath: backends[0].config(t).SQLitePath, JWTSecret: []byte("test-secret-of-at-least-32-bytes!!"), PasswordCost: 4}
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: observe.RedactSecrets}))
	svc, err := startService(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{t: t, svc: svc}
	env.srv = httptestServer(t, svc)
	acct := env.signUp("CUSTOMER")
	env.anon().post(`mutation { logIn(input: {email: "`+acct.Email+`", password: "not-the-password"}) { token } }`, nil)
	env.as(acct.Token).must(`query Me { me { id } }`, nil, nil)
	log.Info("oops", "password", "hunter2", "authToken", acct.Token)

	out := logs.String()
	for _, secret := range []string{"password123", "not-the-password", "hunter2", acct.Token, string(cfg.JWTSecret)} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret reached the log: %q", secret)
		}
	}
	for _, want := range []string{`"operation":"Me"`, `"request_id":`, `"duration_ms":`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func httptestServer(t *testing.T, svc *service) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return srv
}

func TestTracingExportsOperationAndSQLSpans(t *testing.T) {
	var mu sync.Mutex
	var spans []*tracepb.Span
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("collector: %v", err)
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	// Tracing is configured by the standard variables, read by the OpenTelemetry SDK.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	env := embedded(t, config{Tracing: true})
	env.anon().must(`query TracedProducts { products(first: 2) { totalCount nodes { id } } }`, nil, nil)
	env.svc.Close() // flushes the spans

	mu.Lock()
	defer mu.Unlock()
	var op *tracepb.Span
	for _, s := range spans {
		if s.Name == "query TracedProducts" {
			op = s
		}
	}
	if op == nil {
		t.Fatalf("no operation span among %d spans", len(spans))
	}
	sql := 0
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "sql ") && bytes.Equal(s.TraceId, op.TraceId) {
			sql++
			for _, a := range s.Attributes {
				if a.Key == "db.query.text" && strings.Contains(a.Value.GetStringValue(), "'") {
					t.Errorf("SQL span carries a literal value: %s", a.Value.GetStringValue())
				}
			}
		}
	}
	if sql == 0 {
		t.Errorf("no SQL span in the operation's trace")
	}
}

func TestActiveSubscriptionsGauge(t *testing.T) {
	env := embedded(t, config{})
	customer := env.signUp("CUSTOMER")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.srv.URL+"/graphql",
		strings.NewReader(`{"query":"subscription { myOrderEvents { status } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+customer.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, 10*time.Second, "the subscription to count", func() bool {
		return metricValue(t, env, "shop_graphql_active_subscriptions") == 1
	})
	cancel()
	waitFor(t, 10*time.Second, "the ended subscription to stop counting", func() bool {
		return metricValue(t, env, "shop_graphql_active_subscriptions") == 0
	})
}
