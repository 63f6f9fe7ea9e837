package exec

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// BatchParents stands for graphql.BatchParents in the generated executor (see
// graph/internal/execgen), with the same fields and FieldResult.
type BatchParents[P any] struct {
	Parents  []P
	Index    ast.PathIndex
	IndexMap map[int]int
	group    *graphql.BatchParentGroup
	results  *batchResults
	list     *batchList
}

// FieldResult resolves the field once for the whole group, as graphql.BatchParents does.
func (b BatchParents[P]) FieldResult(field graphql.CollectedField, resolve func() (any, error)) *graphql.BatchFieldResult {
	if b.results == nil {
		return b.group.GetFieldResult(resultKey(field), resolve)
	}
	return b.results.get(resultKey(field), resolve)
}

// resultKey is what a batch field's result is kept under: its response key, as gqlgen's.
func resultKey(field graphql.CollectedField) string {
	if field.Alias != "" {
		return field.Alias
	}
	return field.Name
}

// WithBatchParentValues stands for graphql.WithBatchParentValues: it registers the list's
// elements as the batch parents of typeName, and beside them the list's batch results.
// gqlgen's registration copies the map of every group around it into a new state and adds
// a group and a context value, five allocations a list, and its group then allocates a
// result, a channel and a map entry for every parent that asks for a field, to keep the
// first. Here a list is one context node holding its parents and its results (batchList),
// and a result is allocated once a field. A list of pointers or of an interface's
// implementors still registers gqlgen's group (graphql.WithBatchParents), which batchOf
// reads as well.
func WithBatchParentValues[T any](ctx context.Context, typeName string, v []T) context.Context {
	parents := make([]*T, len(v))
	for i := range v {
		parents[i] = &v[i]
	}
	outer, _ := ctx.Value(batchListKey{}).(*batchList)
	l := newBatchList(typeName, parents)
	l.Context, l.outer = ctx, outer
	l.state, l.path = ctx.Value(batchStateKey), ctx.Value(pathContextKey)
	l.shadows, l.pathContext = graphql.GetBatchParentGroup(l, typeName), graphql.GetPathContext(l) != nil
	if n, ok := ctx.(*fieldNode); ok && n.span != nil && joins(n.span, n.offset, parents) {
		l.span, l.offset = n.span, n.offset
	}
	return l
}

// WithSpan marks ctx, the field context of a batch field whose values are lists (an
// order's items), with the span of the lists its batch resolved (see span), built once for
// the batch: the list of this parent's values then joins it (WithBatchParentValues). A
// result with an error, or another context, marks nothing.
func WithSpan[P, E any](ctx context.Context, b BatchParents[P], field graphql.CollectedField) {
	n, ok := ctx.(*fieldNode)
	if !ok || b.results == nil {
		return
	}
	s := b.results
	s.mu.Lock()
	r := s.lookup(resultKey(field))
	if r != nil && r.done.Load() && !r.spanTaken {
		r.spanTaken = true
		if values, ok := r.Results.([][]E); ok && r.Err == nil && len(values) == len(b.Parents) {
			r.span = newSpan(values)
		}
	}
	s.mu.Unlock()
	if r == nil || r.span == nil || int(b.Index) >= len(r.span.offsets) {
		return
	}
	n.span, n.offset = r.span, r.span.offsets[b.Index]
}

// newSpan is the span of the lists values, their elements' addresses as parents.
func newSpan[E any](values [][]E) *span {
	total := 0
	offsets := make([]int, len(values))
	for i, v := range values {
		offsets[i] = total
		total += len(v)
	}
	parents := make([]*E, 0, total)
	for _, v := range values {
		for i := range v {
			parents = append(parents, &v[i])
		}
	}
	return &span{parents: parents, n: total, offsets: offsets}
}

// joins reports whether parents are the span's from offset on: the list is one the span
// was built from.
func joins[P comparable](sp *span, offset int, parents []P) bool {
	all, ok := sp.parents.([]P)
	if !ok || offset < 0 || offset+len(parents) > len(all) {
		return false
	}
	for i, p := range parents {
		if all[offset+i] != p {
			return false
		}
	}
	return true
}

// batchStateKey and pathContextKey are the keys graphql.GetBatchParentGroup and
// graphql.GetPathContext ask a context for (unexported in gqlgen), learned as
// fieldContextKey is. Neither is mostly there: each ask walked the request's whole chain of
// context values, three times for each product of W2's items. A list answers both as its
// context did when the list was made (batchList.Value), so that an ask stops at the
// nearest list.
var (
	batchStateKey  = probeKey(func(ctx context.Context) { graphql.GetBatchParentGroup(ctx, "") })
	pathContextKey = probeKey(func(ctx context.Context) { graphql.GetPathContext(ctx) })
)

// newBatchList returns the list of parents of typeName, in one allocation with the slice
// its parents field points to: a slice held in an interface would be one more.
func newBatchList[P any](typeName string, parents []P) *batchList {
	l := &batchListOf[P]{parents: parents}
	l.typeName, l.batchList.parents = typeName, &l.parents
	return &l.batchList
}

type batchListOf[P any] struct {
	batchList
	parents []P
}

// parentsOf returns the parents of a list (newBatchList) or of gqlgen's group as []P.
func parentsOf[P any](parents any) ([]P, bool) {
	switch p := parents.(type) {
	case *[]P:
		return *p, true
	case []P:
		return p, true
	}
	return nil, false
}

type batchListKey struct{}

// batchList is a list's batch parents and results, and the context they were registered
// in; outer is the list around it with a batch group of its own.
type batchList struct {
	context.Context
	typeName string
	parents  any // a *[]P (newBatchList)
	// shadows is gqlgen's group of typeName that this list hides, nil if none: a gqlgen
	// group of typeName other than this one was registered inside this list, and is nearer.
	shadows *graphql.BatchParentGroup
	outer   *batchList
	results batchResults
	// field is set on the objects of a batch field of within's elements (WithBatchObjects):
	// the object's parent index is its field's parent's, in within.
	field  *ast.Field
	within *batchList
	// pathContext says whether the list's context has a path of input arguments, which
	// makes parentIndex take gqlgen's way.
	pathContext bool
	// state and path are the list's context's values of batchStateKey and pathContextKey.
	state, path any
	// span, when set, holds the parents of this list's siblings too (the items of every
	// order of a page), this list's from offset on: its batch fields are resolved once for
	// the span (FieldResultOf).
	span   *span
	offset int
}

// span is the parents of the lists that one batch field's result holds for the parents of
// its batch (the items of each order of a page), in turn: gqlgen batches each list alone,
// so an order's items resolved their products, and the products their merchants, once an
// order. A list of the span takes its result of a batch field from the span's, resolved
// once for all its parents (FieldResultOf).
type span struct {
	parents any   // []P
	n       int   // len(parents)
	offsets []int // each list's first parent
	results batchResults
	mu      sync.Mutex
	objects map[string]*span // the spans of the object fields' results (WithBatchObjects)
}

// Value answers batchListKey with the list, gqlgen's batch state and path context as the
// list's context did when it was made (contexts do not change), and any other key as its
// context does.
func (b *batchList) Value(key any) any {
	switch key {
	case batchListKey{}:
		return b
	case batchStateKey:
		return b.state
	case pathContextKey:
		return b.path
	}
	return b.Context.Value(key)
}

// batchResults are the results of a list's batch fields, shared by its elements. A list
// mostly has one (an order's items and history, an item's product): it is held inline.
type batchResults struct {
	mu      sync.Mutex
	first   batchResult
	results []*batchResult // after first
}

// batchResult is one field's result. The siblings that ask while its resolver runs wait
// for wg; done says it has finished.
type batchResult struct {
	key  string
	wg   sync.WaitGroup
	done atomic.Bool
	graphql.BatchFieldResult
	// objects are the result's objects as batch parents, once asked for (WithBatchObjects).
	objects      *batchList
	objectsTaken bool
	// span is the result's lists as a span, once asked for (WithSpan).
	span      *span
	spanTaken bool
}

// WithBatchObjects registers the objects of a batch field of a list's elements (the
// products of an order's items) as batch parents of typeName, for the object of the parent
// batch belongs to: gqlgen registers the elements of lists alone, so each item's product
// resolved its merchant on its own, a resolver call, a field context and their closures a
// product. Here the first product's merchant is resolved for the products of every item of
// the list, and the others take theirs from its result (BatchFor, BatchedObject). The
// objects are shared by the elements, and each object's context is one allocation. A
// result that misses an object registers nothing, since a resolver is handed no nil parent.
func WithBatchObjects[T, P any](ctx context.Context, batch BatchParents[P], field graphql.CollectedField, typeName string) context.Context {
	if batch.results == nil || batch.list == nil {
		return ctx
	}
	s := batch.results
	s.mu.Lock()
	r := s.lookup(resultKey(field))
	if r != nil && !r.objectsTaken {
		r.objectsTaken = true
		if values, ok := r.Results.([]*T); ok && r.Err == nil && !slices.Contains(values, nil) {
			r.objects = newBatchList(typeName, values)
			r.objects.shadows, r.objects.outer = graphql.GetBatchParentGroup(ctx, typeName), batch.list
			r.objects.field, r.objects.within = field.Field, batch.list
			if sp := batch.list.span; sp != nil {
				if o := objectsSpan[T](sp, resultKey(field)); o != nil && joins(o, batch.list.offset, values) {
					r.objects.span, r.objects.offset = o, batch.list.offset
				}
			}
		}
	}
	s.mu.Unlock()
	if r == nil || r.objects == nil {
		return ctx
	}
	return &objectContext{Context: ctx, list: r.objects}
}

// objectContext is the context of an object that WithBatchObjects registered.
type objectContext struct {
	context.Context
	list *batchList
}

// Value answers batchListKey with the object's batch, and any other key as its context does.
func (c *objectContext) Value(key any) any {
	if key == (batchListKey{}) {
		return c.list
	}
	return c.Context.Value(key)
}

// holds reports whether the object whose field context is the one after elements before
// the end of ctx's path is one of the objects list registered: it is held by list's field
// in an element of list.within, and within is the nearest list of its type, so that the
// object's parent index is its element's.
func (list *batchList) holds(ctx context.Context, after int) bool {
	if graphql.GetPathContext(ctx) != nil {
		return false
	}
	fc := fieldContextAt(ctx, after)
	if fc == nil || fc.Index != nil || fc.Field.Field != list.field {
		return false
	}
	for b, _ := ctx.Value(batchListKey{}).(*batchList); b != nil; b = b.outer {
		if b.typeName == list.within.typeName {
			return b == list.within
		}
	}
	return false
}

// lookup returns key's result, resolved or in flight, nil if none; s.mu is held.
func (s *batchResults) lookup(key string) *batchResult {
	if s.first.key == key && s.first.key != "" {
		return &s.first
	}
	for _, r := range s.results {
		if r.key == key {
			return r
		}
	}
	return nil
}

// ready returns key's result if it has been resolved, nil otherwise: it never waits.
func (s *batchResults) ready(key string) *graphql.BatchFieldResult {
	s.mu.Lock()
	r := s.lookup(key)
	s.mu.Unlock()
	if r == nil || !r.done.Load() {
		return nil
	}
	return &r.BatchFieldResult
}

// BatchedObject stands for the field context and resolver machinery of a batch field
// whose value is an object (a product's merchant; see graph/internal/execgen), for the parents
// after the first: it returns the parent's object when the list's batch has been resolved
// without an error, the object is there, and the field asks for nothing but plain leaves
// of it (plain, by name) with no fragment. Such a field can fail in no way that needs a
// path of its own. Otherwise ok is false and the field is resolved as gqlgen would.
func BatchedObject[P, T any](ctx context.Context, typeName string, field graphql.CollectedField, plain map[string]bool) (v *T, ok bool) {
	if !PlainSelections(field.Selections) {
		return nil, false
	}
	for _, sel := range field.Selections {
		if !plain[sel.(*ast.Field).Name] {
			return nil, false
		}
	}
	// ctx is the parent's, not yet the field's: the parent's index ends its path.
	batch, ok := batchOf[P](ctx, typeName, 0)
	if !ok || batch.IndexMap != nil || batch.results == nil {
		return nil, false
	}
	key, parents, index := resultKey(field), len(batch.Parents), int(batch.Index)
	r := batch.results.ready(key)
	if r == nil && batch.list != nil && batch.list.span != nil {
		// The list's own part is not taken yet: the span's result holds it.
		if r = batch.list.span.results.ready(key); r != nil {
			index += batch.list.offset
			parents = batch.list.span.n
		}
	}
	if r == nil || r.Err != nil {
		return nil, false
	}
	values, ok := r.Results.([]*T)
	if !ok || len(values) != parents || index >= len(values) || values[index] == nil {
		return nil, false
	}
	return values[index], true
}

// get returns key's result, resolving it if no sibling has: the others wait for it.
func (s *batchResults) get(key string, resolve func() (any, error)) *graphql.BatchFieldResult {
	s.mu.Lock()
	if r := s.lookup(key); r != nil {
		s.mu.Unlock()
		r.wg.Wait()
		return &r.BatchFieldResult
	}
	var r *batchResult
	if s.first.key == "" {
		r = &s.first
	} else {
		r = &batchResult{}
		s.results = append(s.results, r)
	}
	r.key = key
	r.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		r.done.Store(true) // a panic leaves the waiters an empty result, as gqlgen's group does
		r.wg.Done()
	}()
	r.Results, r.Err = resolve()
	return &r.BatchFieldResult
}

// BatchParentsFor stands for graphql.BatchParentsFor, which finds the parent's index in the
// batch by building the field's whole response path, a slice grown element by element, for
// every parent of every batch resolver. The index is the nearest list element above the
// field, read here from the field contexts themselves.
func BatchParentsFor[P any](ctx context.Context, typeName string) (BatchParents[P], bool) {
	return batchOf[P](ctx, typeName, 1)
}

// batchOf returns typeName's batch and the parent's place in it, the index that after
// elements come before the end of ctx's path (see parentIndex). The nearest list of
// typeName wins: one of ours (WithBatchParentValues), or gqlgen's group registered inside it.
func batchOf[P any](ctx context.Context, typeName string, after int) (BatchParents[P], bool) {
	if b, ok := elementBatch[P](ctx, typeName, after); ok {
		return b, true
	}
	return batchOfChain[P](ctx, typeName, after)
}

// batchOfChain is batchOf, read from ctx's chain of values.
func batchOfChain[P any](ctx context.Context, typeName string, after int) (BatchParents[P], bool) {
	group := graphql.GetBatchParentGroup(ctx, typeName)
	var list *batchList
	for b, _ := ctx.Value(batchListKey{}).(*batchList); b != nil; b = b.outer {
		if b.typeName == typeName {
			if b.shadows == group {
				list = b
			}
			break
		}
	}
	var batch BatchParents[P]
	var parents any
	if list != nil && list.field != nil {
		if !list.holds(ctx, after) {
			return batch, false // a single object under objects of its type: on its own
		}
		after++ // the object's element's index
	}
	switch {
	case list != nil:
		parents, batch.results, batch.list = list.parents, &list.results, list
	case group != nil:
		parents, batch.IndexMap, batch.group = group.Parents, group.IndexMap, group
	default:
		return batch, false
	}
	var ok bool
	if batch.Parents, ok = parentsOf[P](parents); !ok {
		return BatchParents[P]{}, false
	}
	if batch.Index, ok = parentIndex(ctx, after); !ok {
		return BatchParents[P]{}, false
	}
	return batch, true
}

// elementBatch is batchOf for the commonest parent, an element of one of our lists asking
// about its own list: ctx is the element's context (after 0) right on top of the list's.
// Nothing between them registers a batch group, so gqlgen's nearest group of typeName is
// the one the list shadows, and the element's index is the parent's. It answers without
// walking ctx's chain of values three times for each element (gqlgen's group, the path
// context and the field contexts), which batchOf does for any other parent.
func elementBatch[P any](ctx context.Context, typeName string, after int) (BatchParents[P], bool) {
	e, ok := ctx.(*element)
	if !ok || after != 0 {
		return BatchParents[P]{}, false
	}
	list, ok := e.Context.(*batchList)
	if !ok || list.typeName != typeName || list.field != nil || list.pathContext {
		return BatchParents[P]{}, false
	}
	parents, ok := parentsOf[P](list.parents)
	if !ok {
		return BatchParents[P]{}, false
	}
	return BatchParents[P]{Parents: parents, Index: ast.PathIndex(e.index), results: &list.results, list: list}, true
}

// parentIndex is the element of ctx's path that after elements come before its end, when
// it is an index: with after 1, graphql.BatchParentIndex, the index of the parent of a
// field being resolved. The path skips field contexts that have neither an index nor a
// field.
func parentIndex(ctx context.Context, after int) (ast.PathIndex, bool) {
	if graphql.GetPathContext(ctx) != nil {
		if after != 1 {
			return 0, false
		}
		return graphql.BatchParentIndex(ctx) // a path of input arguments: gqlgen's way
	}
	fc := fieldContextAt(ctx, after)
	if fc == nil || fc.Index == nil {
		return 0, false
	}
	return ast.PathIndex(*fc.Index), true
}

// fieldContextAt is the field context of ctx that after elements come before the end of its
// path, nil if the path is shorter; the path skips field contexts that have neither an
// index nor a field.
func fieldContextAt(ctx context.Context, after int) *graphql.FieldContext {
	seen := 0
	for fc := graphql.GetFieldContext(ctx); fc != nil; fc = fc.Parent {
		if fc.Index == nil && fc.Field.Field == nil {
			continue
		}
		if seen == after {
			return fc
		}
		seen++
	}
	return nil
}

// BatchFor stands for graphql.ResolveField's resolver and middleware on a batch field of a
// list's elements (an order's items, an item's product; see graph/internal/execgen), which
// the generated code then marshals in a field context of its own, without ResolveField's
// closures, boxing and middleware chain: the service has no field middleware
// (api.NewGraphQL refuses one) and such a field has no argument or directive. It returns
// the batch of typeName's list that the parent belongs to (ctx is the parent's), when the
// list is one of ours (WithBatchParentValues). The first parent to ask resolves the field
// for all (FieldResult), the others take their value from its result (Ready, BatchValue).
// A batch that failed is left to ResolveField, which reports it as gqlgen does from the
// result kept here.
func BatchFor[P any](ctx context.Context, typeName string) (BatchParents[P], bool) {
	// ctx is the parent's, not yet the field's: the parent's index ends its path.
	batch, ok := batchOf[P](ctx, typeName, 0)
	if !ok || batch.IndexMap != nil || batch.results == nil {
		return BatchParents[P]{}, false
	}
	return batch, true
}

// Ready returns the field's result if a sibling has resolved it, nil otherwise: it never
// waits.
func (b BatchParents[P]) Ready(field graphql.CollectedField) *graphql.BatchFieldResult {
	return b.results.ready(resultKey(field))
}

// FieldResultOf stands for FieldResult with the resolver called through resolve: for a list
// of a span (see span), the field is resolved once for the span's parents and each list
// takes its part of the result; when that result is not one value per parent or failed,
// the list's own parents are resolved, as on their own, so that errors are reported as
// gqlgen reports them.
func FieldResultOf[P comparable, T any](b BatchParents[P], field graphql.CollectedField, resolve func([]P) ([]T, error)) *graphql.BatchFieldResult {
	parents := b.Parents
	if b.list == nil || b.list.span == nil || b.results == nil {
		return b.FieldResult(field, func() (any, error) { return resolve(parents) })
	}
	sp, offset, key := b.list.span, b.list.offset, resultKey(field)
	all, ok := sp.parents.([]P)
	if !ok {
		return b.FieldResult(field, func() (any, error) { return resolve(parents) })
	}
	return b.results.get(key, func() (any, error) {
		whole := sp.results.get(key, func() (any, error) { return resolve(all) })
		if values, ok := whole.Results.([]T); ok && whole.Err == nil && len(values) == len(all) && offset+len(parents) <= len(values) {
			return values[offset : offset+len(parents) : offset+len(parents)], nil
		}
		return resolve(parents)
	})
}

// objectsSpan returns the span of the objects of key's result for the span's parents (the
// products of every item of a page), nil when there is none: the result failed, or misses
// an object, which is handed to no resolver as a parent.
func objectsSpan[T any](sp *span, key string) *span {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if o, ok := sp.objects[key]; ok {
		return o
	}
	var o *span
	if r := sp.results.ready(key); r != nil && r.Err == nil {
		if values, ok := r.Results.([]*T); ok && !slices.Contains(values, nil) {
			o = &span{parents: values, n: len(values), offsets: sp.offsets}
		}
	}
	if sp.objects == nil {
		sp.objects = map[string]*span{}
	}
	sp.objects[key] = o
	return o
}

// BatchValue returns the parent's value in r, ok false when the batch failed or did not
// return one value per parent.
func BatchValue[T, P any](b BatchParents[P], r *graphql.BatchFieldResult) (v T, ok bool) {
	if r == nil || r.Err != nil {
		return v, false
	}
	values, ok := r.Results.([]T)
	if !ok || len(values) != len(b.Parents) || int(b.Index) >= len(values) {
		return v, false
	}
	return values[b.Index], true
}

// RecoverBatched is deferred by a field marshaled through BatchFor: a panic becomes the
// field's error and null, as ResolveField's recover makes it.
func RecoverBatched(ctx context.Context, oc *graphql.OperationContext, ret *graphql.Marshaler, ok *bool) {
	if r := recover(); r != nil {
		oc.Error(ctx, oc.Recover(ctx, r))
		*ret, *ok = graphql.Null, true
	}
}
