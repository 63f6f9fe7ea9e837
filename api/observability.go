package api

import (
	"context"
	"database/sql/driver"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/go-redis/redis_rate/v10"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"gorm.io/gorm"
)

// opsState is what the production hooks (limits, rate limits, persisted queries, metrics,
// tracing) share for the life of the service. It is built once, while New assembles the
// service, and only read afterwards.
type opsState struct {
	limits  Limits
	docs    *lru.LRU[*ast.QueryDocument]
	limiter *redis_rate.Limiter
	metrics *metrics
	tracer  trace.Tracer
	// tp exports spans; nil when tracing is off.
	tp *sdktrace.TracerProvider
}

func (s *Service) state() *opsState {
	if s.ops == nil {
		st := &opsState{
			limits:  s.cfg.Limits.withDefaults(),
			metrics: newMetrics(s.registry()),
			tracer:  noop.NewTracerProvider().Tracer(""),
		}
		st.docs = lru.New[*ast.QueryDocument](st.limits.CachedDocuments)
		st.limiter = redis_rate.NewLimiter(s.Redis)
		s.ops = st
		if s.cfg.Tracing {
			s.startTracing()
		}
	}
	return s.ops
}

// degraded records that feature carried on without Redis. An open breaker is expected
// during an outage and logged by the breaker itself, once.
func (s *Service) degraded(ctx context.Context, feature string, err error) {
	s.state().metrics.degraded.WithLabelValues(feature).Inc()
	if !errors.Is(err, ErrRedisUnavailable) {
		s.Log.WarnContext(ctx, "redis unavailable; carrying on without it", "feature", feature, "err", err, "request_id", RequestID(ctx))
	}
}

func (s *Service) logLevel(typ, outcome string) slog.Level {
	switch {
	case outcome != "ok":
		return slog.LevelWarn
	case typ == string(ast.Subscription):
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// defaultStatementTimeout bounds SQL statements run outside a request (start-up, background
// work), or under a request deadline further away.
const defaultStatementTimeout = 5 * time.Second

// guardDatabase gives every SQL statement a deadline (cfg.StatementTimeout, unless its
// context already has an earlier one) and, with tracing on, a span.
func (s *Service) guardDatabase() {
	db := s.Store.DB()
	timeout := s.cfg.StatementTimeout
	if timeout <= 0 {
		timeout = defaultStatementTimeout
	}
	const cancelKey = "api:statement_cancel"
	before := func(tx *gorm.DB) {
		if tx.DryRun {
			return // gorm rendering a subquery: nothing is sent
		}
		ctx := tx.Statement.Context
		if ctx == nil {
			ctx = context.Background()
		}
		if d, ok := ctx.Deadline(); ok && time.Until(d) <= timeout {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		tx.Statement.Context = ctx
		tx.InstanceSet(cancelKey, cancel)
	}
	after := func(tx *gorm.DB) {
		if c, ok := tx.InstanceGet(cancelKey); ok {
			c.(context.CancelFunc)()
		}
	}
	cb := db.Callback()
	_ = cb.Create().Before("gorm:create").Register("api:deadline", before)
	_ = cb.Create().After("gorm:create").Register("api:deadline_end", after)
	_ = cb.Query().Before("gorm:query").Register("api:deadline", before)
	_ = cb.Query().After("gorm:query").Register("api:deadline_end", after)
	_ = cb.Update().Before("gorm:update").Register("api:deadline", before)
	_ = cb.Update().After("gorm:update").Register("api:deadline_end", after)
	_ = cb.Delete().Before("gorm:delete").Register("api:deadline", before)
	_ = cb.Delete().After("gorm:delete").Register("api:deadline_end", after)
	_ = cb.Row().Before("gorm:row").Register("api:deadline", before)
	_ = cb.Raw().Before("gorm:raw").Register("api:deadline", before)
	_ = cb.Raw().After("gorm:raw").Register("api:deadline_end", after)
	// Row statements hand their rows to the caller, who reads them after the callbacks:
	// their deadline ends with the request's, not here.

	if tp := s.state().tp; tp != nil {
		traceSQL(db, tp.Tracer("github.com/shop/api/sql"), s.Store.Postgres())
	}
}

// traceSQL gives every SQL statement a client span named after its operation, with the
// statement text (placeholders only: values never leave the process).
func traceSQL(db *gorm.DB, tracer trace.Tracer, postgres bool) {
	system := "sqlite"
	if postgres {
		system = "postgresql"
	}
	const spanKey = "api:span"
	start := func(op string) func(*gorm.DB) {
		return func(tx *gorm.DB) {
			if tx.DryRun {
				return // gorm rendering a subquery: nothing is sent
			}
			ctx, span := tracer.Start(tx.Statement.Context, "sql "+op, trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("db.system", system), attribute.String("db.operation.name", op)))
			tx.Statement.Context = ctx
			tx.InstanceSet(spanKey, span)
		}
	}
	end := func(tx *gorm.DB) {
		v, ok := tx.InstanceGet(spanKey)
		if !ok {
			return
		}
		span := v.(trace.Span)
		span.SetAttributes(attribute.String("db.query.text", tx.Statement.SQL.String()),
			attribute.Int64("db.rows_affected", tx.Statement.RowsAffected))
		if err := tx.Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			span.RecordError(err)
			span.SetStatus(codes.Error, "sql error")
		}
		span.End()
	}
	cb := db.Callback()
	_ = cb.Create().Before("gorm:create").Register("api:trace", start("INSERT"))
	_ = cb.Create().After("gorm:create").Register("api:trace_end", end)
	_ = cb.Query().Before("gorm:query").Register("api:trace", start("SELECT"))
	_ = cb.Query().After("gorm:query").Register("api:trace_end", end)
	_ = cb.Update().Before("gorm:update").Register("api:trace", start("UPDATE"))
	_ = cb.Update().After("gorm:update").Register("api:trace_end", end)
	_ = cb.Delete().Before("gorm:delete").Register("api:trace", start("DELETE"))
	_ = cb.Delete().After("gorm:delete").Register("api:trace_end", end)
	_ = cb.Row().Before("gorm:row").Register("api:trace", start("ROW"))
	_ = cb.Row().After("gorm:row").Register("api:trace_end", end)
	_ = cb.Raw().Before("gorm:raw").Register("api:trace", start("RAW"))
	_ = cb.Raw().After("gorm:raw").Register("api:trace_end", end)
}

// startTracing exports spans with OTLP over HTTP, configured by the standard variables
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER…), which the SDK reads.
func (s *Service) startTracing() {
	exp, err := otlptracehttp.New(context.Background())
	if err != nil {
		s.Log.Warn("tracing off: OTLP exporter", "err", err)
		return
	}
	res, _ := sdkresource.Merge(sdkresource.Default(),
		sdkresource.NewSchemaless(attribute.String("service.name", "shop-api")))
	// Merged last so that OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
	if env, err := sdkresource.New(context.Background(), sdkresource.WithFromEnv()); err == nil {
		res, _ = sdkresource.Merge(res, env)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	s.ops.tp = tp
	s.ops.tracer = tp.Tracer("github.com/shop/api")
	s.closers = append(s.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	})
}

// propagator reads the caller's W3C trace context, so our spans join its trace.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// startOperationSpan starts the span of one GraphQL operation; end finishes it once.
func (s *Service) startOperationSpan(ctx context.Context, opCtx *graphql.OperationContext) (context.Context, func(*graphql.Response)) {
	if s.state().tp == nil {
		return ctx, func(*graphql.Response) {}
	}
	if opCtx.Headers != nil {
		ctx = propagator.Extract(ctx, propagation.HeaderCarrier(opCtx.Headers))
	}
	typ := string(opCtx.Operation.Operation)
	name := typ
	if opCtx.Operation.Name != "" {
		name += " " + opCtx.Operation.Name
	}
	ctx, span := s.state().tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("graphql.operation.type", typ),
			attribute.String("graphql.operation.name", opCtx.Operation.Name),
			attribute.String("request.id", RequestID(ctx)),
		))
	if st, ok := opCtx.Stats.GetExtension(costExtension).(*costStats); ok {
		span.SetAttributes(attribute.Int("graphql.operation.cost", st.Requested))
	}
	var once sync.Once
	return ctx, func(resp *graphql.Response) {
		once.Do(func() {
			if resp != nil && len(resp.Errors) > 0 {
				codesSeen := make([]string, 0, len(resp.Errors))
				for _, e := range resp.Errors {
					c, _ := e.Extensions["code"].(string)
					codesSeen = append(codesSeen, c)
				}
				span.SetAttributes(attribute.StringSlice("graphql.error.codes", codesSeen))
				span.SetStatus(codes.Error, strings.Join(codesSeen, ","))
			}
			span.End()
		})
	}
}

// secretKeys are log attribute names whose values never reach a log.
var secretKeys = []string{"password", "token", "secret", "authorization", "cookie"}

// RedactSecrets is a slog ReplaceAttr that blanks attributes named like a secret (password,
// token, secret, authorization, cookie), wherever a caller logs one by mistake.
func RedactSecrets(_ []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return slog.String(a.Key, "[REDACTED]")
		}
	}
	return a
}

// unavailable reports whether err comes from a dependency that could not be reached or
// did not answer in time (the database down or restarting, a deadline passed), as opposed
// to a bug: the client may retry.
func unavailable(err error) bool {
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &netErr) || errors.As(err, &connectErr) || pgconn.SafeToRetry(err)
}
