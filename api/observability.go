package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/go-redis/redis_rate/v10"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
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
