package observe

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// startTracing exports spans with OTLP over HTTP, configured by the standard variables
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER…), which the SDK reads.
// The caller shuts it down, which flushes the spans still queued.
func StartTracing(ctx context.Context) (Tracing, error) {
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return Tracing{}, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, _ := sdkresource.Merge(sdkresource.Default(),
		sdkresource.NewSchemaless(attribute.String("service.name", "shop-api")))
	// Merged last so that OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
	if env, err := sdkresource.New(context.Background(), sdkresource.WithFromEnv()); err == nil {
		res, _ = sdkresource.Merge(res, env)
	}
	return Tracing{tp: sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))}, nil
}

// Tracing exports spans; its zero value traces nothing.
type Tracing struct{ tp *sdktrace.TracerProvider }

// Provider returns the provider of tracers, nil when tracing is off.
func (t Tracing) Provider() trace.TracerProvider {
	if t.tp == nil {
		return nil
	}
	return t.tp
}

// Tracer returns the tracer of GraphQL operations, nil when tracing is off.
func (t Tracing) Tracer() trace.Tracer {
	if t.tp == nil {
		return nil
	}
	return t.tp.Tracer("github.com/shop/api")
}

// Shutdown flushes the spans still queued, waiting at most 5 seconds.
func (t Tracing) Shutdown() {
	if t.tp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.tp.Shutdown(ctx)
}

// propagator reads the caller's W3C trace context, so our spans join its trace.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// startSpan starts the span of one GraphQL operation; end finishes it once.
func (o *operationObserver) startSpan(ctx context.Context, opCtx *graphql.OperationContext) (context.Context, func(*graphql.Response)) {
	if o.tracer == nil {
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
	ctx, span := o.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("graphql.operation.type", typ),
			attribute.String("graphql.operation.name", opCtx.Operation.Name),
			attribute.String("request.id", RequestID(ctx)),
		))
	if c, ok := opCtx.Stats.GetExtension("cost").(interface{ Cost() int }); ok {
		span.SetAttributes(attribute.Int("graphql.operation.cost", c.Cost()))
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
