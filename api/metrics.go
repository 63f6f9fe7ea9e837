package api

import (
	"context"
	"database/sql"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vektah/gqlparser/v2/ast"
)

// registry returns the service's Prometheus registry, created on first use.
func (s *Service) registry() *prometheus.Registry {
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return s.reg
}

// metricsHandler serves the service's metrics in the Prometheus format.
func (s *Service) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry(), promhttp.HandlerOpts{})
}

// metrics are the service's own Prometheus metrics (SQL statements and cache hits are
// registered by metrics_data.go).
type metrics struct {
	requests            *prometheus.CounterVec
	duration            *prometheus.HistogramVec
	errors              *prometheus.CounterVec
	rateLimited         *prometheus.CounterVec
	degraded            *prometheus.CounterVec
	apq                 *prometheus.CounterVec
	activeSubscriptions prometheus.Gauge
	names               operationNames
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
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
		activeSubscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shop_graphql_active_subscriptions",
			Help: "Subscriptions running now, over WebSocket and server-sent events.",
		}),
		names: operationNames{seen: map[string]bool{}},
	}
	reg.MustRegister(m.requests, m.duration, m.errors, m.rateLimited, m.degraded, m.apq, m.activeSubscriptions)
	return m
}

// ActiveSubscriptions returns the gauge of running subscriptions. observe keeps it up to
// date for every subscription gqlgen runs.
func (s *Service) ActiveSubscriptions() prometheus.Gauge {
	return s.state().metrics.activeSubscriptions
}

// observe instruments GraphQL operations: metrics, one log line per operation, and
// (when enabled) a trace span per operation. It also registers the database pool and Redis
// breaker metrics.
func (s *Service) observe(srv *handler.Server) {
	st := s.state()
	reg := s.registry()
	reg.MustRegister(poolMetrics(s.Store.PoolStats)...)
	if b := s.breaker; b != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "shop_redis_breaker_state",
				Help: "The Redis circuit breaker: 0 closed (healthy), 1 half-open (probing), 2 open (Redis skipped).",
			}, func() float64 { return float64(b.State()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "shop_redis_breaker_rejected_total",
				Help: "Redis commands failed at once because the circuit breaker was open.",
			}, func() float64 { return float64(b.Rejected()) }),
		)
	}
	srv.Use(&operationObserver{svc: s, m: st.metrics})
}

// operationObserver records every GraphQL response, the early refusals included.
type operationObserver struct {
	svc *Service
	m   *metrics
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = &operationObserver{}

func (*operationObserver) ExtensionName() string                   { return "Observer" }
func (*operationObserver) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation traces each operation and counts running subscriptions.
func (o *operationObserver) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	opCtx := graphql.GetOperationContext(ctx)
	ctx, end := o.svc.startOperationSpan(ctx, opCtx)
	if opCtx.Operation != nil && opCtx.Operation.Operation == ast.Subscription {
		o.m.activeSubscriptions.Inc()
		context.AfterFunc(ctx, func() {
			o.m.activeSubscriptions.Dec()
			end(nil)
		})
		return next(ctx)
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
	level := o.svc.logLevel(typ, outcome)
	if typ == string(ast.Subscription) && len(codes) == 0 {
		return resp // events are not operations: only the start is timed
	}
	o.m.duration.WithLabelValues(name, typ).Observe(elapsed.Seconds())
	// Never the query's variables or headers: they carry passwords and tokens.
	o.svc.Log.Log(ctx, level, "graphql",
		"request_id", RequestID(ctx),
		"operation", opName,
		"type", typ,
		"outcome", outcome,
		"codes", codes,
		"duration_ms", float64(elapsed.Microseconds())/1000,
	)
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

// poolMetrics are the database pool's statistics under the names of Prometheus's
// DBStatsCollector (go_sql_*, db_name="shop").
func poolMetrics(stats func() sql.DBStats) []prometheus.Collector {
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
