package api

import (
	"context"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"

	"github.com/shop/api/graph"
)

type fieldMiddleware struct{}

func (fieldMiddleware) ExtensionName() string                   { return "fieldMiddleware" }
func (fieldMiddleware) Validate(graphql.ExecutableSchema) error { return nil }
func (fieldMiddleware) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	return next(ctx)
}

// TestFieldMiddlewareIsRefused: plain leaf fields skip field middleware, so installing
// some must fail loudly rather than see only part of a response's fields.
func TestFieldMiddlewareIsRefused(t *testing.T) {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{}))
	defer func() {
		r := recover()
		if msg, _ := r.(string); !strings.Contains(msg, "fieldMiddleware intercepts fields") {
			t.Fatalf("useExtension of field middleware: recovered %v", r)
		}
	}()
	useExtension(srv, fieldMiddleware{})
}
