package exec

import (
	"context"
	"io"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// MarshalList stands for graphql.MarshalSliceConcurrently in the generated executor (see
// graph/internal/execgen). gqlgen resolves each element of a list in a goroutine of its own,
// whose stack then grows as it descends the element's fields; with batch resolvers and the
// loaders' read-ahead most lists wait for nothing, and those goroutines were the larger part
// of a storefront read's CPU. Here the elements are resolved one after another in the
// caller's goroutine until one of them waits for the loaders' batch window: its siblings
// would then each wait in turn, so the rest go concurrently, as gqlgen would have them, and
// meet in one window. (The executor's worker_limit, unset here, bounds only gqlgen's path.)
// It returns the list's marshaler and whether an element is null, which a list of non-null
// elements is null for.
func MarshalList(ctx context.Context, n int, workerLimit int64, omitPanicHandler bool,
	marshal func(context.Context, int) graphql.Marshaler) (graphql.Marshaler, bool) {
	return marshalList(ctx, n, workerLimit, omitPanicHandler, closure(marshal))
}

// MarshalValues is MarshalList for a list of objects held by value (an order's items): each
// element is marshaled by the executor's method for its object (a method expression), with
// the element's address as its field context's result, as the generated closure did; the
// list costs no closure.
func MarshalValues[E, T any](ctx context.Context, workerLimit int64, omitPanicHandler bool, ec E, sel ast.SelectionSet, v []T,
	marshal func(E, context.Context, ast.SelectionSet, *T) graphql.Marshaler) (graphql.Marshaler, bool) {
	return marshalList(ctx, len(v), workerLimit, omitPanicHandler, values[E, T]{ec: ec, sel: sel, v: v, marshal: marshal})
}

// elementMarshaler marshals a list's element i in its context.
type elementMarshaler interface {
	marshalElement(ctx context.Context, i int) graphql.Marshaler
}

type closure func(context.Context, int) graphql.Marshaler

func (c closure) marshalElement(ctx context.Context, i int) graphql.Marshaler { return c(ctx, i) }

type values[E, T any] struct {
	ec      E
	sel     ast.SelectionSet
	v       []T
	marshal func(E, context.Context, ast.SelectionSet, *T) graphql.Marshaler
}

func (m values[E, T]) marshalElement(ctx context.Context, i int) graphql.Marshaler {
	graphql.GetFieldContext(ctx).Result = &m.v[i]
	return m.marshal(m.ec, ctx, m.sel, &m.v[i])
}

// emptyList is the marshaler of every empty list.
var emptyList graphql.Marshaler = graphql.Array{}

func marshalList[M elementMarshaler](ctx context.Context, n int, workerLimit int64, omitPanicHandler bool, m M) (graphql.Marshaler, bool) {
	if n == 0 {
		return emptyList, false
	}
	l := WindowIn(ctx)
	if l == nil {
		return gqlgensList(ctx, n, workerLimit, omitPanicHandler, m)
	}
	// The elements' field contexts and values, one allocation a list; the first is the list.
	elems := make([]element, n)
	elems[0].all = elems
	for i := range n {
		windows := l.Windows()
		elems[i].window = l
		elems[i].value = marshalElement(ctx, &elems[i], i, omitPanicHandler, m)
		if l.Windows() != windows {
			marshalRest(ctx, elems, i+1, omitPanicHandler, m)
			break
		}
	}
	null := false
	for i := range elems {
		null = null || elems[i].value == graphql.Null
	}
	return (*list)(&elems[0]), null
}

// gqlgensList is gqlgen's way, where the context has no window.
func gqlgensList[M elementMarshaler](ctx context.Context, n int, workerLimit int64, omitPanicHandler bool, m M) (graphql.Marshaler, bool) {
	ret := graphql.MarshalSliceConcurrently(ctx, n, workerLimit, omitPanicHandler, m.marshalElement)
	for _, v := range ret {
		if v == graphql.Null {
			return ret, true
		}
	}
	return ret, false
}

// marshalRest resolves the elements from first on concurrently, a goroutine each.
func marshalRest[M elementMarshaler](ctx context.Context, elems []element, first int, omitPanicHandler bool, m M) {
	var wg sync.WaitGroup
	for i := first; i < len(elems); i++ {
		elems[i].window = elems[first-1].window
		wg.Go(func() { elems[i].value = marshalElement(ctx, &elems[i], i, omitPanicHandler, m) })
	}
	wg.Wait()
}

// list is a list's first element, which holds them all: it writes them as graphql.Array does.
type list element

func (l *list) MarshalGQL(w io.Writer) {
	writeByte(w, '[')
	for i := range l.all {
		if i > 0 {
			writeByte(w, ',')
		}
		l.all[i].value.MarshalGQL(w)
	}
	writeByte(w, ']')
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
	value  graphql.Marshaler
	all    []element // in the first element: the list's
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
var fieldContextKey = probeKey(func(ctx context.Context) { graphql.GetFieldContext(ctx) })

// probeKey returns the key ask asks its context for.
func probeKey(ask func(context.Context)) any {
	var p keyProbe
	ask(&p)
	return p.key
}

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
func marshalElement[M elementMarshaler](ctx context.Context, e *element, i int, omitPanicHandler bool, marshal M) (m graphql.Marshaler) {
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
	return marshal.marshalElement(ctx, i)
}
