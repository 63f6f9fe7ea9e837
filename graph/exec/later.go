package exec

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// LaterFields stands for an object's FieldSet in resolving its concurrent fields, the
// resolver fields, in the generated executor (see graph/internal/execgen). gqlgen runs the first
// of them in the object's goroutine and each other in a goroutine of its own, whose stack
// grows as it descends: an order's items and history were 20 goroutines a page of orders,
// though the loaders' read-ahead left them nothing to wait for. Here, as a list's elements
// (MarshalList), they run one after another until one waits for the loaders' batch window;
// the rest then go concurrently, as gqlgen would have them. The price is that of lists: a
// shape that waits pays one window more for its first object, never one per object. A
// deferred field is left to gqlgen's FieldSet, which its @defer group reads.
//
// The generated code keeps one in a local variable per object, which stays on the stack:
// the fields are in an inline array, and more in a slice, never a slice of the array.
type LaterFields struct {
	oc     *graphql.OperationContext
	n      int
	inline [4]laterField
	more   []laterField
	// window and windows are those of the field Now let resolve at once; waited says one
	// such field waited for the window, after which the fields are kept for Dispatch.
	window  Window
	windows int64
	waited  bool
}

// Now reports whether field is to be resolved at once, in the caller's goroutine
// (ResolveNow, then Resolved), rather than kept by Add: so it is while no field of the
// object has been kept and none has waited for the loaders' batch window, as Dispatch would
// resolve them in turn. The field costs no closure then. A deferred field is Add's.
func (l *LaterFields) Now(ctx context.Context, collected *CollectedFields, fields []graphql.CollectedField, field graphql.CollectedField) bool {
	if l.n > 0 || l.waited || field.IsDeferred() {
		return false
	}
	w := WindowIn(ctx)
	if w == nil || collected.hasWaited(fields) {
		return false
	}
	l.window, l.windows = w, w.Windows()
	return true
}

// Resolved puts the value of field i, resolved at once, into out as resolveInto does, and
// notes whether it waited for the window: the fields after it are then kept and resolved
// concurrently by Dispatch, and the objects of these fields after this one resolve theirs
// concurrently at once, as Dispatch has it.
func (l *LaterFields) Resolved(oc *graphql.OperationContext, collected *CollectedFields, fields []graphql.CollectedField,
	out *ObjectSet, i int, nonNull bool, v graphql.Marshaler) {
	out.Values[i] = v
	invalid := graphql.RequiredNull
	if nonNull {
		invalid = graphql.Null
	}
	if v == invalid {
		atomic.AddUint32(&out.Invalids, 1)
	}
	if l.window.Windows() != l.windows {
		l.waited = true
		if oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
			collected.markWaited(fields)
		}
	}
}

// ResolveNow resolves a field that Now let resolve at once, through resolve, the
// executor's method for it (a method expression, which costs no closure): a panic, when
// recovered, is the field's error and null, as recoverToNull makes it.
func ResolveNow[E, O any](ctx context.Context, oc *graphql.OperationContext, recoverFromPanic bool,
	resolve func(E, context.Context, graphql.CollectedField, O) graphql.Marshaler, ec E, field graphql.CollectedField, obj O) (ret graphql.Marshaler) {
	if recoverFromPanic {
		defer func() {
			if r := recover(); r != nil {
				oc.Error(ctx, oc.Recover(ctx, r))
				ret = graphql.Null
			}
		}()
	}
	return resolve(ec, ctx, field, obj)
}

// laterField is a concurrent field of an object: the arguments gqlgen's
// FieldSet.ResolveConcurrently takes.
type laterField struct {
	i                         int
	recoverFromPanic, nonNull bool
	resolve                   func(context.Context) graphql.Marshaler
}

// add stands for out.ResolveConcurrently: it keeps field i for dispatch unless deferred.
func (l *LaterFields) Add(oc *graphql.OperationContext, deferred *graphql.DeferredGroup, out *ObjectSet,
	field graphql.CollectedField, i int, recoverFromPanic, nonNull bool, resolve func(context.Context) graphql.Marshaler) {
	if field.IsDeferred() {
		if out.deferred == nil {
			out.deferred = graphql.NewFieldSet(out.fields)
		}
		// gqlgen schedules the field on the @defer group's own FieldSet and leaves null here.
		out.deferred.ResolveConcurrently(oc, deferred, i, recoverFromPanic, nonNull, resolve)
		out.Values[i] = out.deferred.Values[i]
		return
	}
	f := laterField{i: i, recoverFromPanic: recoverFromPanic, nonNull: nonNull, resolve: resolve}
	if l.n < len(l.inline) {
		l.inline[l.n] = f
	} else {
		l.more = append(l.more, f)
	}
	l.oc = oc
	l.n++
}

// field returns the kth field add kept.
func (l *LaterFields) field(k int) laterField {
	if k < len(l.inline) {
		return l.inline[k]
	}
	return l.more[k-len(l.inline)]
}

// dispatch stands for out.Dispatch: it resolves the fields add kept into out. Once an
// object of these collected fields has waited for the window, the objects of the operation
// that follow (a list's other elements) resolve theirs concurrently at once, so that they
// meet in one window.
func (l *LaterFields) Dispatch(ctx context.Context, out *ObjectSet, collected *CollectedFields, fields []graphql.CollectedField) {
	if l.n == 0 {
		return
	}
	ld := WindowIn(ctx)
	if ld == nil || l.waited || collected.hasWaited(fields) {
		// No window to tell a wait by, or one told already: gqlgen's way.
		l.resolveConcurrently(ctx, out, 0)
		return
	}
	for k := range l.n {
		windows := ld.Windows()
		resolveInto(ctx, l.oc, out, l.field(k))
		if ld.Windows() != windows {
			if l.oc.Operation == nil || l.oc.Operation.Operation != ast.Subscription {
				// A subscription's events collect their fields anew (CollectedFields):
				// marks would pile up for as long as its phone watches.
				collected.markWaited(fields)
			}
			l.resolveConcurrently(ctx, out, k+1)
			return
		}
	}
}

// resolveConcurrently resolves the fields from first on: first in this goroutine and each
// other in a goroutine of its own, as gqlgen's FieldSet.Dispatch does.
func (l *LaterFields) resolveConcurrently(ctx context.Context, out *ObjectSet, first int) {
	if first >= l.n {
		return
	}
	var wg sync.WaitGroup
	oc := l.oc // the goroutines must not hold l, which then stays on the caller's stack
	for k := first + 1; k < l.n; k++ {
		f := l.field(k)
		wg.Go(func() { resolveInto(ctx, oc, out, f) })
	}
	resolveInto(ctx, l.oc, out, l.field(first))
	wg.Wait()
}

// resolveInto resolves f into out as gqlgen's FieldSet does: a panic, when recovered, is
// the field's error and null, and a null where the field allows none invalidates the
// object.
func resolveInto(ctx context.Context, oc *graphql.OperationContext, out *ObjectSet, f laterField) {
	v := recoverToNull(ctx, oc, f.recoverFromPanic, f.resolve)
	out.Values[f.i] = v
	invalid := graphql.RequiredNull
	if f.nonNull {
		invalid = graphql.Null
	}
	if v == invalid {
		atomic.AddUint32(&out.Invalids, 1)
	}
}

// recoverToNull is gqlgen's (graphql/resolve_concurrently.go), which it does not export.
func recoverToNull(ctx context.Context, oc *graphql.OperationContext, recoverFromPanic bool,
	resolve func(context.Context) graphql.Marshaler) (res graphql.Marshaler) {
	if recoverFromPanic {
		defer func() {
			if r := recover(); r != nil {
				oc.Error(ctx, oc.Recover(ctx, r))
				res = graphql.Null
			}
		}()
	}
	return resolve(ctx)
}
