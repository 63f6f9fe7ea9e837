package observe_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/shop/api/api"
	"github.com/shop/api/api/apitest"
	"github.com/shop/api/api/observe"
)

// What operators see of a running service: its metrics, its logs and its traces, through
// the service as server.go runs it (apitest.Start).

// metric returns the sum of the samples of the named metric on /metrics whose labels
// contain all of labels, and whether there was any.
func metric(t *testing.T, srv *apitest.Server, name string, labels ...string) (sum float64, found bool) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
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
		found = true
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum, found
}

func TestMetricsCountOperationsAndErrors(t *testing.T) {
	srv := apitest.Start(t, api.Config{}, nil)
	if r := srv.Post(t, "", `query ListProducts { products(first: 2) { totalCount } }`); r.Errors != nil {
		t.Fatalf("ListProducts: %v", r.Errors)
	}
	srv.Post(t, "", `query TooDeep { products { nodes { merchant { products { nodes { merchant { products { nodes { merchant { products { nodes { merchant { products { nodes { merchant { id } } } } } } } } } } } } } } } }`)
	srv.Post(t, "", `{ products(first: 500) { totalCount } }`)
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
		if _, ok := metric(t, srv, c.name, c.labels...); !ok {
			t.Errorf("no sample of %s%v on /metrics", c.name, c.labels)
		}
	}
	if v, _ := metric(t, srv, "shop_graphql_requests_total", `operation="ListProducts"`); v != 1 {
		t.Errorf("ListProducts counted %v times, want 1", v)
	}
}

func TestLogsNeverShowSecrets(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: observe.RedactSecrets}))
	srv := apitest.Start(t, api.Config{}, log)
	var signUp struct{ SignUp struct{ Token string } }
	r := srv.Post(t, "", `mutation { signUp(input: {email: "logs@example.com", name: "Logs", password: "password123"}) { token } }`)
	if err := json.Unmarshal(r.Data, &signUp); err != nil || signUp.SignUp.Token == "" {
		t.Fatalf("signUp: %s %v", r.Data, r.Errors)
	}
	token := signUp.SignUp.Token
	srv.Post(t, "", `mutation { logIn(input: {email: "logs@example.com", password: "not-the-password"}) { token } }`)
	if r := srv.Post(t, token, `query Me { me { id } }`); r.Errors != nil {
		t.Fatalf("Me: %v", r.Errors)
	}
	log.Info("oops", "password", "hunter2", "authToken", token)

	out := logs.String()
	for _, secret := range []string{"password123", "not-the-password", "hunter2", token, apitest.Secret} {
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
	srv := apitest.Start(t, api.Config{Tracing: true}, nil)
	if r := srv.Post(t, "", `query TracedProducts { products(first: 2) { totalCount nodes { id } } }`); r.Errors != nil {
		t.Fatalf("TracedProducts: %v", r.Errors)
	}
	srv.Close() // flushes the spans

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
