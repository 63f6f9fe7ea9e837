package exec

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
)

// MarshalList stands for graphql.MarshalSliceConcurrently in the generated executor (see
// graph/internal/execgen). gqlgen resolves each element of a list in a goroutine of its own,
// whose stack then grows as it descends the element's fields; with batch resolvers and the
// loaders' read-ahead most lists wait for nothing, and those goroutines were the larger part
// of a storefront read's CPU. Here the elements are resolved one after another in the
// caller's goroutine until one of them waits for the loaders' batch window: its siblings
// would then each wait in turn, so the rest go concurrently, as gqlgen would have them, and
// meet in one window. (The executor's worker_limit, unset here, bounds only gqlgen's path.)
func MarshalList(ctx context.Context, n int, workerLimit int64, omitPanicHandler bool,
	marshal func(context.Context, int) graphql.Marshaler) graphql.Array {
	l := WindowIn(ctx)
	if n == 0 || l == nil {
		return graphql.MarshalSliceConcurrently(ctx, n, workerLimit, omitPanicHandler, marshal)
	}
	ret := make(graphql.Array, n)
	elems := make([]element, n) // the elements' field contexts, one allocation a list
	for i := range n {
		windows := l.Windows()
		elems[i].window = l
		ret[i] = marshalElement(ctx, &elems[i], i, omitPanicHandler, marshal)
		if l.Windows() != windows {
			marshalRest(ctx, ret, elems, i+1, omitPanicHandler, marshal)
			break
		}
	}
	return ret
}

// marshalRest resolves the elements from first on concurrently, a goroutine each.
func marshalRest(ctx context.Context, ret graphql.Array, elems []element, first int, omitPanicHandler bool,
	marshal func(context.Context, int) graphql.Marshaler) {
	var wg sync.WaitGroup
	for i := first; i < len(ret); i++ {
		elems[i].window = elems[first-1].window
		wg.Go(func() { ret[i] = marshalElement(ctx, &elems[i], i, omitPanicHandler, marshal) })
	}
	wg.Wait()
}

// element is a list element's context: its field context, with the index it points to, and
// the context node that holds it, where graphql.WithFieldContext adds a node of its own.
type element struct {
	context.Context
	fc    graphql.FieldContext
	index int
	// window is the loaders' window in the list's context, which every object of an
	// element asks for (LaterFields.Now) and found at the far end of the request's chain.
	window Window
}

// Value answers gqlgen's field context key with the element's, as the node
// graphql.WithFieldContext adds would, and the window's key with the list's window.
func (e *element) Value(key any) any {
	switch key {
	case fieldContextKey:
		return &e.fc
	case windowKey{}:
		return e.window
	}
	return e.Context.Value(key)
}

// fieldContextKey is the key graphql.GetFieldContext asks a context for (unexported in
// gqlgen), learned by asking a context that records it. TestElementIsAFieldContext holds
// element to what graphql.WithFieldContext does.
var fieldContextKey = func() any {
	var p keyProbe
	graphql.GetFieldContext(&p)
	return p.key
}()

// keyProbe is a context that records the key it is asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
}

// marshalElement resolves element i in its own field context e, its panic becoming the
// element's error as in gqlgen.
func marshalElement(ctx context.Context, e *element, i int, omitPanicHandler bool,
	marshal func(context.Context, int) graphql.Marshaler) (m graphql.Marshaler) {
	e.index = i
	e.fc.Index = &e.index
	e.fc.Parent = graphql.GetFieldContext(ctx)
	e.Context = ctx
	ctx = e
	if !omitPanicHandler {
		defer func() {
			if r := recover(); r != nil {
				graphql.AddError(ctx, graphql.Recover(ctx, r))
				m = graphql.Null
			}
		}()
	}
	return marshal(ctx, i)
}

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
}

// Value answers gqlgen's field context key with the node's, as graphql.WithFieldContext's would.
func (n *fieldNode) Value(key any) any {
	if key == fieldContextKey {
		return &n.fc
	}
	return n.Context.Value(key)
}
