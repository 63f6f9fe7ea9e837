package exec

import (
	"context"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
)

// WithFieldContext stands for graphql.WithFieldContext in a batch field marshaled without
// ResolveField (see BatchFor): the field context and the context node that holds it are one
// allocation, as a list element's are, where gqlgen's are two.
func WithFieldContext(parent context.Context, fc graphql.FieldContext) context.Context {
	n := &fieldNode{Context: parent, fc: fc}
	n.fc.Parent = graphql.GetFieldContext(parent)
	return n
}

// fieldNode is a field's context node holding its field context.
type fieldNode struct {
	context.Context
	fc graphql.FieldContext
	// span and offset are the span of the lists of the field's batch and this list's place in
	// it (WithSpan).
	span   *span
	offset int
}

// Value answers gqlgen's field context key with the node's, as graphql.WithFieldContext's would.
func (n *fieldNode) Value(key any) any {
	if key == fieldContextKey {
		return &n.fc
	}
	return n.Context.Value(key)
}

// Child holds a Child function of the field contexts of one type's fields, made once an
// operation (ChildOf).
type Child struct{ f atomic.Pointer[ChildFunc] }

// ChildFunc is graphql.FieldContext's Child.
type ChildFunc = func(context.Context, graphql.CollectedField) (*graphql.FieldContext, error)

// ChildOf stands for the closure over the executor that each of gqlgen's field contexts of
// an object field allocates as its Child (see graph/internal/execgen): the closure calls
// childFields, the executor's method, and is made once an operation and kept in c.
func ChildOf[E any](c *Child, ec E, childFields func(E, context.Context, graphql.CollectedField) (*graphql.FieldContext, error)) ChildFunc {
	if f := c.f.Load(); f != nil {
		return *f
	}
	f := ChildFunc(func(ctx context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
		return childFields(ec, ctx, field)
	})
	c.f.CompareAndSwap(nil, &f)
	return *c.f.Load()
}
