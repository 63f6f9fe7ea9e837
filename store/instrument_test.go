package store_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// With a tracer, every statement gets a client span named after its operation, with the
// statement's text; a missing row is not an error, a failed statement is.
func TestStatementSpans(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := openStore(t, store.Config{SQLitePath: storetest.SQLitePath(t), Tracer: tp})
	ctx := context.Background()
	if _, err := s.FindUsersByIDs(ctx, []int64{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindLatestOrderEvent(ctx, 42); store.ErrorCode(err) != store.CodeNotFound {
		t.Fatalf("latest event of no order: %v", err)
	}
	var selects, errored int
	for _, span := range rec.Ended() {
		attrs := map[attribute.Key]string{}
		for _, a := range span.Attributes() {
			attrs[a.Key] = a.Value.String()
		}
		if span.Name() == "sql SELECT" || span.Name() == "sql ROW" {
			selects++
			if attrs["db.system"] != "sqlite" || attrs["db.query.text"] == "" || attrs["db.operation.name"] == "" {
				t.Errorf("span %s: attributes %v", span.Name(), attrs)
			}
		}
		if span.Status().Code == codes.Error {
			errored++
		}
	}
	if selects < 2 || errored != 0 {
		t.Errorf("%d SELECT spans (want 2 or more), %d with an error status (want 0)", selects, errored)
	}
}
