// Package observe is what operators see of the service: Prometheus metrics, OpenTelemetry
// traces, request IDs and logs with secrets redacted.
package observe

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/trace"

	"github.com/shop/api/api/redisconn"
)

// NewRegistry returns a Prometheus registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg's metrics in the Prometheus format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// Metrics are the service's own Prometheus metrics of GraphQL operations, and of the
// features that carry on without Redis (SQL statements and cache hits: see Data).
type Metrics struct {
	log         *slog.Logger
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	errors      *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	degraded    *prometheus.CounterVec
	apq         *prometheus.CounterVec
	names       operationNames
}

// NewMetrics registers the metrics in reg; log receives the degraded-mode warnings.
func NewMetrics(reg prometheus.Registerer, log *slog.Logger) *Metrics {
	m := &Metrics{
		log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_graphql_requests_total",
			Help: "GraphQL operations by operation name, type (query, mutation, subscription; none when refused before parsing) and outcome (ok, error: errors but data, failed: no data).",
		}, []string{"operation", "type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shop_graphql_request_duration_seconds",
			Help:    "Time from receiving a GraphQL operation to its response, by operation name and type (subscriptions: to their first event).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}, []string{"operation", "type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_graphql_errors_total",
			Help: "Errors in GraphQL responses by extensions.code.",
		}, []string{"code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_rate_limited_total",
			Help: "Operations refused by a rate limit (cost: the per-caller budget; login: the sign-in throttle).",
		}, []string{"limit"}),
		degraded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_degraded_total",
			Help: "Times a feature went without Redis and carried on degraded (rate limits allowed, persisted queries not shared).",
		}, []string{"feature"}),
		apq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_persisted_query_lookups_total",
			Help: "Automatic persisted query lookups by result: hit_local, hit_redis or miss.",
		}, []string{"result"}),
		names: operationNames{seen: map[string]bool{}},
	}
	reg.MustRegister(m.requests, m.duration, m.errors, m.rateLimited, m.degraded, m.apq)
	return m
}

// RateLimited counts an operation refused by limit ("cost" or "login").
func (m *Metrics) RateLimited(limit string) { m.rateLimited.WithLabelValues(limit).Inc() }

// PersistedQuery counts an APQ lookup by result: hit_local, hit_redis or miss.
func (m *Metrics) PersistedQuery(result string) { m.apq.WithLabelValues(result).Inc() }

// Degraded records that feature carried on without Redis. An open breaker is expected
// during an outage and logged by the breaker itself, once.
func (m *Metrics) Degraded(ctx context.Context, feature string, err error) {
	m.degraded.WithLabelValues(feature).Inc()
	if !errors.Is(err, redisconn.ErrUnavailable) {
		m.log.WarnContext(ctx, "redis unavailable; carrying on without it", "feature", feature, "err", err, "request_id", RequestID(ctx))
	}
}

// Operations returns the gqlgen extension that records every GraphQL response, the early
// refusals included: metrics, one log line per operation, and a span per operation when
// tracer is not nil.
func (m *Metrics) Operations(log *slog.Logger, tracer trace.Tracer) graphql.HandlerExtension {
	return &operationObserver{m: m, log: log, tracer: tracer}
}

// operationObserver records every GraphQL response, the early refusals included.
type operationObserver struct {
	m      *Metrics
	log    *slog.Logger
	tracer trace.Tracer
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = &operationObserver{}

func (*operationObserver) ExtensionName() string                   { return "Observer" }
func (*operationObserver) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation traces each operation. A subscription's span covers its set-up
// (resolver, registration, replay): one left open for the subscription's life would reach a
// trace backend hours late, and hold its memory for every watching phone meanwhile. For the
// same reason a subscription keeps none of its set-up's statistics (the cost extension's
// map).
func (o *operationObserver) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	opCtx := graphql.GetOperationContext(ctx)
	ctx, end := o.startSpan(ctx, opCtx)
	if opCtx.Operation != nil && opCtx.Operation.Operation == ast.Subscription {
		h := next(ctx)
		end(nil)
		opCtx.Stats = graphql.Stats{}
		return h
	}
	h := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := h(ctx)
		end(resp)
		return resp
	}
}

// InterceptResponse counts, times and logs each response (each event of a subscription is
// counted, and logged at debug level).
func (o *operationObserver) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	opCtx := graphql.GetOperationContext(ctx)
	name, typ, opName := o.m.names.label(opCtx), "none", opCtx.OperationName
	if opCtx.Operation != nil {
		typ, opName = string(opCtx.Operation.Operation), opCtx.Operation.Name
	}
	outcome := "ok"
	codes := make([]string, 0, len(resp.Errors))
	for _, e := range resp.Errors {
		code, _ := e.Extensions["code"].(string)
		if code == "" {
			code = "NONE"
		}
		codes = append(codes, code)
		o.m.errors.WithLabelValues(code).Inc()
	}
	if len(resp.Errors) > 0 {
		outcome = "error"
		if len(resp.Data) == 0 || string(resp.Data) == "null" {
			outcome = "failed"
		}
	}
	o.m.requests.WithLabelValues(name, typ, outcome).Inc()
	var elapsed time.Duration
	if !opCtx.Stats.OperationStart.IsZero() {
		elapsed = time.Since(opCtx.Stats.OperationStart)
	}
	level := logLevel(typ, outcome)
	if typ == string(ast.Subscription) && len(codes) == 0 {
		return resp // events are not operations: only the start is timed
	}
	o.m.duration.WithLabelValues(name, typ).Observe(elapsed.Seconds())
	// Never the query's variables or headers: they carry passwords and tokens.
	if o.log.Enabled(ctx, level) {
		logAccess(ctx, o.log.Handler(), &accessLine{level: level, requestID: RequestID(ctx), operation: opName,
			typ: typ, outcome: outcome, codes: codes, elapsed: elapsed})
	}
	return resp
}

// operationNames keeps the operation-name label bounded: a client chooses the names, so
// after maxOperationNames distinct ones the rest count as "other".
type operationNames struct {
	mu   sync.Mutex
	seen map[string]bool
}

const maxOperationNames = 200

var saneOperationName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func (n *operationNames) label(opCtx *graphql.OperationContext) string {
	name := opCtx.OperationName
	if name == "" && opCtx.Operation != nil {
		name = opCtx.Operation.Name
	}
	switch {
	case name == "":
		return "anonymous"
	case !saneOperationName.MatchString(name), strings.HasPrefix(name, "__"):
		return "other"
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.seen[name] {
		if len(n.seen) >= maxOperationNames {
			return "other"
		}
		n.seen[name] = true
	}
	return name
}

func logLevel(typ, outcome string) slog.Level {
	switch {
	case outcome != "ok":
		return slog.LevelWarn
	case typ == string(ast.Subscription):
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// Pool returns the database pool's statistics under the names of Prometheus's
// DBStatsCollector (go_sql_*, db_name="shop").
func Pool(stats func() sql.DBStats) []prometheus.Collector {
	labels := prometheus.Labels{"db_name": "shop"}
	gauge := func(name, help string, v func(sql.DBStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "go_sql_" + name, Help: help, ConstLabels: labels},
			func() float64 { return v(stats()) })
	}
	counter := func(name, help string, v func(sql.DBStats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "go_sql_" + name, Help: help, ConstLabels: labels},
			func() float64 { return v(stats()) })
	}
	return []prometheus.Collector{
		gauge("max_open_connections", "Maximum number of open connections to the database.",
			func(s sql.DBStats) float64 { return float64(s.MaxOpenConnections) }),
		gauge("open_connections", "The number of established connections both in use and idle.",
			func(s sql.DBStats) float64 { return float64(s.OpenConnections) }),
		gauge("in_use_connections", "The number of connections currently in use.",
			func(s sql.DBStats) float64 { return float64(s.InUse) }),
		gauge("idle_connections", "The number of idle connections.",
			func(s sql.DBStats) float64 { return float64(s.Idle) }),
		counter("wait_count_total", "The total number of connections waited for.",
			func(s sql.DBStats) float64 { return float64(s.WaitCount) }),
		counter("wait_duration_seconds_total", "The total time blocked waiting for a new connection.",
			func(s sql.DBStats) float64 { return s.WaitDuration.Seconds() }),
		counter("max_idle_closed_total", "The total number of connections closed due to SetMaxIdleConns.",
			func(s sql.DBStats) float64 { return float64(s.MaxIdleClosed) }),
		counter("max_idle_time_closed_total", "The total number of connections closed due to SetConnMaxIdleTime.",
			func(s sql.DBStats) float64 { return float64(s.MaxIdleTimeClosed) }),
		counter("max_lifetime_closed_total", "The total number of connections closed due to SetConnMaxLifetime.",
			func(s sql.DBStats) float64 { return float64(s.MaxLifetimeClosed) }),
	}
}
