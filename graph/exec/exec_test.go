package exec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/shop/api/store"
)

// TestParentIndexIsGqlgens compares parentIndex with graphql.BatchParentIndex over the
// field-context chains the executor builds: a field of a list element, of an object under
// an element, of an element of a nested list, and with contexts that name nothing.
func TestParentIndexIsGqlgens(t *testing.T) {
	field := func(name string) *graphql.FieldContext {
		return &graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Name: name, Alias: name}}}
	}
	index := func(i int) *graphql.FieldContext { return &graphql.FieldContext{Index: &i} }
	chain := func(fcs ...*graphql.FieldContext) context.Context {
		ctx := context.Background()
		for _, fc := range fcs {
			ctx = graphql.WithFieldContext(ctx, fc) // makes the one before its parent
		}
		return ctx
	}
	for name, ctx := range map[string]context.Context{
		"element's field":         chain(field("products"), field("nodes"), index(7), field("merchant")),
		"object under an element": chain(field("me"), field("orders"), index(2), field("total"), field("currency")),
		"nested list":             chain(field("orders"), index(1), field("items"), index(4), field("product")),
		"anonymous contexts":      chain(&graphql.FieldContext{Object: "Query"}, field("nodes"), index(3), &graphql.FieldContext{}, field("merchant")),
		"root field":              chain(&graphql.FieldContext{Object: "Query"}, field("me")),
		"no field context":        context.Background(),
		"index last":              chain(field("nodes"), index(5)),
	} {
		wantIdx, wantOK := graphql.BatchParentIndex(ctx)
		idx, ok := parentIndex(ctx, 1)
		if idx != wantIdx || ok != wantOK {
			t.Errorf("%s: parentIndex = %d, %v; gqlgen's %d, %v", name, idx, ok, wantIdx, wantOK)
		}
	}
}

// TestObjectWritesAsFieldSet holds ObjectSet's writer to what gqlgen's FieldSet writes,
// a repeated alias included, with its values inline and beyond.
func TestObjectWritesAsFieldSet(t *testing.T) {
	fields := []graphql.CollectedField{
		{Field: &ast.Field{Alias: "id"}}, {Field: &ast.Field{Alias: "name"}},
		{Field: &ast.Field{Alias: "id"}}, {Field: &ast.Field{Alias: "price"}},
	}
	values := []graphql.Marshaler{graphql.MarshalID("UHJvZHVjdDox"), graphql.MarshalString(`a "quoted" name`),
		graphql.MarshalID("other"), graphql.Null}
	many := make([]graphql.CollectedField, 9)
	for i := range many {
		many[i] = graphql.CollectedField{Field: &ast.Field{Alias: fmt.Sprintf("f%d", i)}}
	}
	for _, fields := range [][]graphql.CollectedField{fields, fields[:1], nil, many} {
		set, o := graphql.NewFieldSet(fields), NewObjectSet(fields)
		if len(o.Values) != len(fields) || cap(o.Values) != len(fields) {
			t.Fatalf("%d fields: %d values (capacity %d)", len(fields), len(o.Values), cap(o.Values))
		}
		for i := range fields {
			v := graphql.MarshalInt(i)
			if i < len(values) {
				v = values[i]
			}
			set.Values[i], o.Values[i] = v, v
		}
		var want, got bytes.Buffer
		set.MarshalGQL(&want)
		o.MarshalGQL(&got)
		if got.String() != want.String() {
			t.Errorf("ObjectSet wrote %s, FieldSet %s", got.String(), want.String())
		}
	}
}

func TestPlainSelections(t *testing.T) {
	field := &ast.Field{Name: "amount"}
	for _, c := range []struct {
		sel  ast.SelectionSet
		want bool
	}{
		{ast.SelectionSet{field, &ast.Field{Name: "currency"}}, true},
		{nil, true},
		{ast.SelectionSet{field, &ast.InlineFragment{}}, false},
		{ast.SelectionSet{&ast.FragmentSpread{Name: "M"}}, false},
	} {
		if got := PlainSelections(c.sel); got != c.want {
			t.Errorf("PlainSelections(%d selections) = %v, want %v", len(c.sel), got, c.want)
		}
	}
}

// TestBatchResultsShared: the elements of a list share one call of a batch field, which
// the others wait for, and a field of an outer list's type finds that list's results.
// withField and withElement add a field's and a list element's context to ctx, as the
// executor does (graphql.WithFieldContext makes ctx's field context the new one's parent).
func withField(ctx context.Context, name string) context.Context {
	return graphql.WithFieldContext(ctx, &graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Name: name, Alias: name}}})
}

func withElement(ctx context.Context, i int) context.Context {
	return graphql.WithFieldContext(ctx, &graphql.FieldContext{Index: &i})
}

func TestBatchResultsShared(t *testing.T) {
	ctx := WithBatchParentValues(withField(context.Background(), "orders"), "Order", []int{10, 20, 30})

	calls := 0
	resolve := func() (any, error) { calls++; return []string{"a", "b", "c"}, nil }
	results := make(chan *graphql.BatchFieldResult, 3)
	for i := range 3 {
		go func() {
			batch, ok := BatchParentsFor[*int](withField(withElement(ctx, i), "customer"), "Order")
			if !ok || int(batch.Index) != i || *batch.Parents[i] != 10*(i+1) || batch.results == nil {
				t.Errorf("element %d: batch %+v, %v", i, batch, ok)
			}
			results <- batch.FieldResult(graphql.CollectedField{Field: &ast.Field{Name: "customer"}}, resolve)
		}()
	}
	first := <-results
	for range 2 {
		if r := <-results; r != first {
			t.Errorf("siblings got different results")
		}
	}
	if calls != 1 || len(first.Results.([]string)) != 3 {
		t.Errorf("batch field resolved %d times, results %v", calls, first.Results)
	}

	// Within an order's items, the orders' results are still found.
	inner := WithBatchParentValues(withField(withElement(ctx, 0), "items"), "OrderItem", []int{1})
	if got := resultsOf(withElement(inner, 0), "Order"); got == nil || got != resultsOf(withElement(ctx, 0), "Order") {
		t.Errorf("the orders' results not found inside an order's items: %v", got)
	}
	// gqlgen's group of a type registered inside our list of it is the nearer one, and ours
	// is again inside a gqlgen group.
	ptrs := graphql.WithBatchParents(withField(withElement(ctx, 0), "related"), "Order", []*int{new(int)}, nil)
	if batch, ok := BatchParentsFor[*int](withField(withElement(ptrs, 0), "customer"), "Order"); !ok || batch.results != nil || len(batch.Parents) != 1 {
		t.Errorf("gqlgen's inner group not found: %+v, %v", batch, ok)
	}
	again := WithBatchParentValues(withField(withElement(ptrs, 0), "others"), "Order", []int{1, 2})
	if batch, ok := BatchParentsFor[*int](withField(withElement(again, 1), "customer"), "Order"); !ok || batch.results == nil || len(batch.Parents) != 2 {
		t.Errorf("our innermost list not found: %+v, %v", batch, ok)
	}
}

// resultsOf returns the batch results of the list of typeName nearest ctx, nil if none;
// ctx is a list element's.
func resultsOf(ctx context.Context, typeName string) *batchResults {
	batch, ok := batchOf[*int](ctx, typeName, 0)
	if !ok {
		if batch, ok := batchOf[*store.Product](ctx, typeName, 0); ok {
			return batch.results
		}
		return nil
	}
	return batch.results
}

func TestMarshalIntIsGqlgens(t *testing.T) {
	for _, i := range []int{0, 7, 255, 256, -1, 1 << 40, -(1 << 62)} {
		var want, got, other bytes.Buffer
		graphql.MarshalInt(i).MarshalGQL(&want)
		MarshalInt(i).MarshalGQL(&got)
		MarshalInt(i).MarshalGQL(struct{ io.Writer }{&other}) // not a *bytes.Buffer
		if got.String() != want.String() || other.String() != want.String() {
			t.Errorf("MarshalInt(%d) wrote %q and %q, gqlgen %q", i, got.String(), other.String(), want.String())
		}
	}
}

// TestWritersAreGqlgens: the writers of plain leaves and plain objects write what gqlgen's
// marshalers and FieldSet write.
func TestWritersAreGqlgens(t *testing.T) {
	for _, i := range []int{0, 7, 256, -1, 1 << 40} {
		var want, got bytes.Buffer
		graphql.MarshalInt(i).MarshalGQL(&want)
		MarshalIntField(&i).MarshalGQL(&got)
		if got.String() != want.String() {
			t.Errorf("MarshalIntField(%d) wrote %q, gqlgen %q", i, got.String(), want.String())
		}
	}
	for _, b := range []bool{true, false} {
		var want, got bytes.Buffer
		graphql.MarshalBoolean(b).MarshalGQL(&want)
		WriteBoolean(&got, b)
		if got.String() != want.String() {
			t.Errorf("WriteBoolean(%v) wrote %q, gqlgen %q", b, got.String(), want.String())
		}
	}
	type price struct {
		amount   int
		currency string
	}
	write := func(w io.Writer, p *price, field string) {
		switch field {
		case "__typename":
			WriteString(w, "Price")
		case "amount":
			WriteInt(w, p.amount)
		case "currency":
			WriteString(w, p.currency)
		}
	}
	fields := []graphql.CollectedField{{Field: &ast.Field{Name: "amount", Alias: "cents"}},
		{Field: &ast.Field{Name: "currency", Alias: "currency"}}, {Field: &ast.Field{Name: "__typename", Alias: "__typename"}},
		{Field: &ast.Field{Name: "amount", Alias: "cents"}}}
	set := graphql.NewFieldSet(fields)
	set.Values[0], set.Values[1], set.Values[2], set.Values[3] = graphql.MarshalInt(1299), graphql.MarshalString(`U"SD`),
		graphql.MarshalString("Price"), graphql.MarshalInt(1299)
	var want, got bytes.Buffer
	set.MarshalGQL(&want)
	NewPlainObject(fields, price{1299, `U"SD`}, write).MarshalGQL(&got)
	if got.String() != want.String() {
		t.Errorf("PlainObject wrote %s, gqlgen's FieldSet %s", got.String(), want.String())
	}
}

func TestMarshalDataCopiesOut(t *testing.T) {
	first := MarshalData(graphql.MarshalString("first"))
	second := MarshalData(graphql.MarshalString("second, from the same pooled buffer"))
	if string(first) != `"first"` || string(second) != `"second, from the same pooled buffer"` {
		t.Fatalf("MarshalData wrote %s and %s", first, second)
	}
}

// TestCollectedFieldsCacheByAddress: an operation's objects of one selection set and type
// share the fields gqlgen collects; another type's list of implementors is another entry.
func TestCollectedFieldsCacheByAddress(t *testing.T) {
	doc := &ast.QueryDocument{}
	oc := &graphql.OperationContext{Doc: doc, Variables: map[string]any{}}
	sel := ast.SelectionSet{&ast.Field{Name: "id", Alias: "id"}, &ast.Field{Name: "name", Alias: "name"}}
	var c CollectedFields
	products, users := []string{"Product", "Node"}, []string{"User", "Node"}
	first := c.Of(oc, sel, products)
	if again := c.Of(oc, sel, products); &again[0] != &first[0] {
		t.Errorf("the same selection and type collected twice")
	}
	if other := c.Of(oc, sel, users); c.entries() != 2 || len(other) != 2 {
		t.Errorf("another type: %d entries, %d fields", c.entries(), len(other))
	}
	// Beyond the inline entries, the map: each selection set still collected once.
	sets := make([]ast.SelectionSet, 2*maxRecent)
	for i := range sets {
		sets[i] = ast.SelectionSet{&ast.Field{Name: "id", Alias: "id"}}
		first := c.Of(oc, sets[i], products)
		if again := c.Of(oc, sets[i], products); &again[0] != &first[0] {
			t.Errorf("selection set %d collected twice", i)
		}
	}
	if c.entries() != 2+len(sets) {
		t.Errorf("%d entries, want %d", c.entries(), 2+len(sets))
	}
	var live CollectedFields
	sub := &graphql.OperationContext{Doc: doc, Variables: map[string]any{}, Operation: &ast.OperationDefinition{Operation: ast.Subscription}}
	if got := live.Of(sub, sel, products); len(got) != 2 || live.entries() != 0 {
		t.Errorf("a subscription's fields: %d, cached %d", len(got), live.entries())
	}
	want := graphql.CollectFields(oc, sel, products)
	if len(first) != len(want) || first[0].Alias != want[0].Alias || first[1].Alias != want[1].Alias {
		t.Errorf("collected %v, gqlgen %v", first, want)
	}
}

// entries is how many entries c holds.
func (c *CollectedFields) entries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.n.Load()) + len(c.more)
}

func TestLeafWritersAreGqlgens(t *testing.T) {
	name := "a \"quoted\"\tname\x01 ünïcode"
	product := &store.Product{ID: 1 << 40}
	for _, c := range []struct {
		got, want graphql.Marshaler
	}{
		{MarshalStringField(&name), graphql.MarshalString(name)},
		{TypeName("Product"), graphql.MarshalString("Product")},
		{MarshalGlobalID(product), graphql.MarshalID(product.GlobalID())},
		{MarshalGlobalID(&store.User{ID: 7}), graphql.MarshalID(store.User{ID: 7}.GlobalID())},
	} {
		var want, got, other bytes.Buffer
		c.want.MarshalGQL(&want)
		c.got.MarshalGQL(&got)
		c.got.MarshalGQL(struct{ io.Writer }{&other}) // not a *bytes.Buffer
		if got.String() != want.String() || other.String() != want.String() {
			t.Errorf("wrote %s and %s, gqlgen %s", got.String(), other.String(), want.String())
		}
	}
}

// TestBatchedObject: a parent after the first takes its object from the list's resolved
// batch, unless the batch is not resolved yet, failed, lacks the object, or the field asks
// for more than plain leaves.
func TestBatchedObject(t *testing.T) {
	nodes := withField(context.Background(), "nodes")
	ctx := WithBatchParentValues(nodes, "Product", []store.Product{{ID: 1}, {ID: 2}, {ID: 3}})
	merchant := graphql.CollectedField{Field: &ast.Field{Name: "merchant", Alias: "merchant",
		SelectionSet: ast.SelectionSet{&ast.Field{Name: "id"}, &ast.Field{Name: "name"}}}}
	plain := map[string]bool{"__typename": true, "id": true, "name": true}
	if _, ok := BatchedObject[*store.Product, store.User](withElement(ctx, 1), "Product", merchant, plain); ok {
		t.Fatal("an object before the batch is resolved")
	}
	users := []*store.User{{ID: 10}, nil, {ID: 30}}
	results := resultsOf(withElement(ctx, 0), "Product")
	results.get("merchant", func() (any, error) { return users, nil })
	for i, want := range users {
		v, ok := BatchedObject[*store.Product, store.User](withElement(ctx, i), "Product", merchant, plain)
		if ok != (want != nil) || (ok && v != want) {
			t.Errorf("parent %d: %v, %v; want %v", i, v, ok, want)
		}
	}
	email := merchant
	email.Selections = ast.SelectionSet{&ast.Field{Name: "id"}, &ast.Field{Name: "email"}}
	fragment := merchant
	fragment.Selections = ast.SelectionSet{&ast.InlineFragment{}}
	for name, f := range map[string]graphql.CollectedField{"a resolver field": email, "a fragment": fragment} {
		if _, ok := BatchedObject[*store.Product, store.User](withElement(ctx, 0), "Product", f, plain); ok {
			t.Errorf("with %s: an object", name)
		}
	}
	failed := WithBatchParentValues(nodes, "Product", []store.Product{{ID: 1}})
	resultsOf(withElement(failed, 0), "Product").get("merchant", func() (any, error) {
		return []*store.User{{ID: 10}}, fmt.Errorf("down")
	})
	if _, ok := BatchedObject[*store.Product, store.User](withElement(failed, 0), "Product", merchant, plain); ok {
		t.Error("an object of a failed batch")
	}
}

// TestLaterFieldsAreFieldSets holds LaterFields to gqlgen's FieldSet: the same values at
// the same indices, a null where the field allows none (or RequiredNull where it does)
// counted invalid but a nullable field's null not, and a recovered panic the field's error
// and null; without a batch window in the context as with one (then in turn, since nothing waits
// for a window).
func TestLaterFieldsAreFieldSets(t *testing.T) {
	fields := []graphql.CollectedField{{Field: &ast.Field{Name: "a", Alias: "a"}}, {Field: &ast.Field{Name: "b", Alias: "b"}},
		{Field: &ast.Field{Name: "c", Alias: "c"}}, {Field: &ast.Field{Name: "d", Alias: "d"}}, {Field: &ast.Field{Name: "e", Alias: "e"}},
		{Field: &ast.Field{Name: "f", Alias: "f"}}}
	resolvers := []struct {
		nonNull bool
		resolve func(context.Context) graphql.Marshaler
	}{
		{true, func(context.Context) graphql.Marshaler { return graphql.MarshalString("a") }},
		{true, func(context.Context) graphql.Marshaler { return graphql.Null }},
		{false, func(context.Context) graphql.Marshaler { return graphql.RequiredNull }},
		{false, func(context.Context) graphql.Marshaler { panic("boom") }},
		{false, func(context.Context) graphql.Marshaler { return graphql.MarshalInt(5) }},
		{false, func(context.Context) graphql.Marshaler { return graphql.Null }}, // a nullable field's null is valid
	}
	quiet := func(_ context.Context, p any) error { return fmt.Errorf("panic: %v", p) } // gqlgen's prints the stack
	run := func(later bool, ctx context.Context) (string, uint32, int) {
		oc := &graphql.OperationContext{RecoverFunc: quiet, Operation: &ast.OperationDefinition{Operation: ast.Query}}
		ctx = graphql.WithResponseContext(graphql.WithOperationContext(ctx, oc), graphql.DefaultErrorPresenter, quiet)
		var deferred graphql.DeferredGroup
		var l LaterFields
		var collected CollectedFields
		var buf bytes.Buffer
		if later {
			out := NewObjectSet(fields)
			for i, r := range resolvers {
				l.Add(oc, &deferred, out, fields[i], i, true, r.nonNull, r.resolve)
			}
			l.Dispatch(ctx, out, &collected, fields)
			out.MarshalGQL(&buf)
			return buf.String(), out.Invalids, len(graphql.GetErrors(ctx))
		}
		out := graphql.NewFieldSet(fields)
		for i, r := range resolvers {
			out.ResolveConcurrently(oc, &deferred, i, true, r.nonNull, r.resolve)
		}
		out.Dispatch(ctx)
		out.MarshalGQL(&buf)
		return buf.String(), out.Invalids, len(graphql.GetErrors(ctx))
	}
	want, wantInvalid, wantErrs := run(false, context.Background())
	for _, ctx := range []context.Context{context.Background(), WithWindow(context.Background(), new(window))} {
		got, invalid, errs := run(true, ctx)
		if got != want || invalid != wantInvalid || errs != wantErrs {
			t.Errorf("LaterFields wrote %s with %d invalid and %d errors; FieldSet %s, %d and %d", got, invalid, errs, want, wantInvalid, wantErrs)
		}
	}
	if wantInvalid != 2 || wantErrs != 1 {
		t.Errorf("FieldSet: %d invalid, %d errors; the test expects 2 and 1", wantInvalid, wantErrs)
	}

	// As the generated code has it: fields resolved at once (Now, ResolveNow, Resolved) until
	// one waits for the window (the third), the rest kept and dispatched concurrently.
	w := new(window)
	oc := &graphql.OperationContext{RecoverFunc: quiet, Operation: &ast.OperationDefinition{Operation: ast.Query}}
	ctx := graphql.WithResponseContext(graphql.WithOperationContext(WithWindow(context.Background(), w), oc),
		graphql.DefaultErrorPresenter, quiet)
	var deferred graphql.DeferredGroup
	var l LaterFields
	var collected CollectedFields
	out := NewObjectSet(fields)
	resolve := func(i int, ctx context.Context, _ graphql.CollectedField, _ struct{}) graphql.Marshaler {
		if i == 2 {
			w.n.Add(1)
		}
		return resolvers[i].resolve(ctx)
	}
	now := 0
	for i, r := range resolvers {
		if l.Now(ctx, &collected, fields, fields[i]) {
			now++
			l.Resolved(oc, &collected, fields, out, i, r.nonNull, ResolveNow(ctx, oc, true, resolve, i, fields[i], struct{}{}))
			continue
		}
		l.Add(oc, &deferred, out, fields[i], i, true, r.nonNull, func(ctx context.Context) graphql.Marshaler {
			return resolve(i, ctx, fields[i], struct{}{})
		})
	}
	l.Dispatch(ctx, out, &collected, fields)
	var buf bytes.Buffer
	out.MarshalGQL(&buf)
	if buf.String() != want || out.Invalids != wantInvalid || len(graphql.GetErrors(ctx)) != wantErrs || now != 3 || !collected.hasWaited(fields) {
		t.Errorf("resolved at once: %s with %d invalid and %d errors, %d at once; FieldSet %s, %d and %d",
			buf.String(), out.Invalids, len(graphql.GetErrors(ctx)), now, want, wantInvalid, wantErrs)
	}
}

// window is a batch window whose count the test moves.
type window struct{ n atomic.Int64 }

func (w *window) Windows() int64 { return w.n.Load() }

// TestMarshalListInTurnUntilAWindow: a list's elements resolve in turn while the window's
// count stays, and once an element waited (the count moved) the rest resolve all the
// same, as gqlgen's MarshalSliceConcurrently resolves them without a window.
func TestMarshalListInTurnUntilAWindow(t *testing.T) {
	const n, waits = 6, 2
	for _, w := range []*window{nil, new(window)} {
		var mu sync.Mutex
		var order []int
		marshal := func(ctx context.Context, i int) graphql.Marshaler {
			if fc := graphql.GetFieldContext(ctx); fc == nil || fc.Index == nil || *fc.Index != i {
				t.Errorf("element %d resolved without its index", i)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			if i == waits && w != nil {
				w.n.Add(1)
			}
			return graphql.MarshalInt(i)
		}
		ctx := context.Background()
		if w != nil {
			ctx = WithWindow(ctx, w)
		}
		got, null := MarshalList(ctx, n, 0, false, marshal)
		var buf bytes.Buffer
		got.MarshalGQL(&buf)
		if buf.String() != "[0,1,2,3,4,5]" || len(order) != n || null {
			t.Fatalf("window %v: wrote %s after %d elements (null %v)", w != nil, buf.String(), len(order), null)
		}
		if w != nil && !slices.Equal(order[:waits+1], []int{0, 1, 2}) {
			t.Errorf("elements before the wait resolved in the order %v", order[:waits+1])
		}
	}
}

// TestBatchObjects: the products of a list's items are the batch parents of their merchant,
// each at its item's index; a product below a deeper list of items, or a result missing a
// product, registers nothing.
func TestBatchObjects(t *testing.T) {
	items := WithBatchParentValues(withField(context.Background(), "items"), "OrderItem", []int{1, 2, 3})
	product := graphql.CollectedField{Field: &ast.Field{Name: "product", Alias: "product"}}
	products := []*store.Product{{ID: 10}, {ID: 20}, {ID: 30}}
	objectOf := func(items context.Context, i int) context.Context {
		elem := withElement(items, i)
		batch, ok := BatchFor[*int](elem, "OrderItem")
		if !ok {
			t.Fatalf("item %d: no batch", i)
		}
		r := batch.FieldResult(product, func() (any, error) { return products, nil })
		ctx := graphql.WithFieldContext(elem, &graphql.FieldContext{Field: product})
		if v, ok := BatchValue[*store.Product](batch, r); !ok || v != products[i] {
			t.Fatalf("item %d: product %v, %v", i, v, ok)
		}
		return WithBatchObjects[store.Product](ctx, batch, product, "Product")
	}
	for i := range products {
		batch, ok := BatchParentsFor[*store.Product](withField(objectOf(items, i), "merchant"), "Product")
		if !ok || int(batch.Index) != i || len(batch.Parents) != 3 || batch.Parents[i] != products[i] {
			t.Errorf("product %d: batch %+v, %v", i, batch, ok)
		}
	}
	// A product of an item of a deeper list, reached through the same selection.
	deeper := WithBatchParentValues(withField(withElement(withField(objectOf(items, 0), "orders"), 0), "items"), "OrderItem", []int{4})
	elem := withElement(deeper, 0)
	single := graphql.WithFieldContext(elem, &graphql.FieldContext{Field: product})
	if batch, ok := BatchParentsFor[*store.Product](withField(single, "merchant"), "Product"); ok {
		t.Errorf("a deeper product took the outer products as its batch: %+v", batch)
	}
	// A missing product registers nothing.
	missing := WithBatchParentValues(withField(context.Background(), "items"), "OrderItem", []int{1, 2})
	batch, _ := BatchFor[*int](withElement(missing, 0), "OrderItem")
	batch.FieldResult(product, func() (any, error) { return []*store.Product{{ID: 1}, nil}, nil })
	ctx := graphql.WithFieldContext(withElement(missing, 0), &graphql.FieldContext{Field: product})
	if got := WithBatchObjects[store.Product](ctx, batch, product, "Product"); got != ctx {
		t.Error("objects registered with one missing")
	}
}

// TestElementIsAFieldContext holds a list element's context to what graphql.WithFieldContext
// builds: gqlgen finds the element's field context (its index, its parent), its path, and
// every other value of the context around it, and the elements of a list are one allocation.
func TestElementIsAFieldContext(t *testing.T) {
	type other struct{}
	outer := graphql.WithFieldContext(context.WithValue(context.Background(), other{}, "kept"),
		&graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Name: "nodes", Alias: "nodes"}}})
	var seen []*graphql.FieldContext
	var paths []string
	l := &window{}
	marshal := func(ctx context.Context, i int) graphql.Marshaler {
		if ctx.Value(other{}) != "kept" || WindowIn(ctx) != Window(l) {
			t.Errorf("element %d lost its context's values", i)
		}
		fc := graphql.GetFieldContext(ctx)
		seen = append(seen, fc)
		paths = append(paths, fc.Path().String())
		return graphql.MarshalInt(i)
	}
	got, null := MarshalList(WithWindow(outer, l), 3, 0, false, marshal)
	var buf bytes.Buffer
	got.MarshalGQL(&buf)
	if buf.String() != "[0,1,2]" || len(seen) != 3 || null {
		t.Fatalf("wrote %s (null %v), saw %d elements", buf.String(), null, len(seen))
	}
	for i, fc := range seen {
		if fc == nil || fc.Index == nil || *fc.Index != i || fc.Parent != graphql.GetFieldContext(outer) {
			t.Errorf("element %d: field context %+v", i, fc)
		}
		if want := fmt.Sprintf("nodes[%d]", i); paths[i] != want {
			t.Errorf("element %d: path %q, want %q", i, paths[i], want)
		}
	}
	ctx := WithWindow(outer, l)
	products, zero := make([]store.Product, 50), graphql.MarshalInt(0)
	marshalProduct := func(_ *testing.T, ctx context.Context, _ ast.SelectionSet, p *store.Product) graphql.Marshaler {
		if graphql.GetFieldContext(ctx).Result != p {
			return graphql.Null
		}
		return zero
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, null := MarshalValues(ctx, 0, true, t, nil, products, marshalProduct); null {
			t.Fatal("an element's field context lacks its result")
		}
	})
	if allocs > 1 { // the elements
		t.Errorf("a list of 50 elements allocated %.0f times", allocs)
	}
	if _, null := MarshalList(ctx, 2, 0, true, func(_ context.Context, i int) graphql.Marshaler {
		return []graphql.Marshaler{graphql.MarshalInt(1), graphql.Null}[i]
	}); !null {
		t.Errorf("a list with a null element is not reported")
	}
	if empty, null := MarshalList(ctx, 0, 0, true, nil); null || empty == nil {
		t.Errorf("the empty list: %v, %v", empty, null)
	}
}

// TestWriteStringIsMarshalString holds WriteString, whose strings without a byte to escape
// skip gqlgen's writer, to what graphql.MarshalString writes, into the executor's buffer and
// into any other writer.
func TestWriteStringIsMarshalString(t *testing.T) {
	for _, s := range []string{"", "plain", `a "quoted" name`, `back\slash`, "tab\tnew\nline\r", "\x00\x1f\x7f",
		"Ünïcödé ✓ 😀", "\u2028\u2029", "bad \xff\xfe utf-8", "</script>"} {
		var want bytes.Buffer
		graphql.MarshalString(s).MarshalGQL(&want)
		var buf bytes.Buffer
		WriteString(&buf, s)
		var other strings.Builder
		WriteString(&other, s)
		if buf.String() != want.String() || other.String() != want.String() {
			t.Errorf("%q: wrote %s and %s, gqlgen %s", s, buf.String(), other.String(), want.String())
		}
	}
	var buf bytes.Buffer
	if n := testing.AllocsPerRun(100, func() {
		buf.Reset()
		WriteString(&buf, "a product's name")
	}); n > 0 {
		t.Errorf("WriteString allocated %.0f times", n)
	}
}

// TestElementBatchIsTheChains holds elementBatch, the shortcut for an element asking about
// its own list, to what batchOf reads from the context's chain: for the elements of a list,
// of a list inside an element of another, of a list of another type, and under a gqlgen
// group registered around the list.
func TestElementBatchIsTheChains(t *testing.T) {
	type product struct{ id int }
	type order struct{ id int }
	check := func(name string, ctx context.Context, typeName string) {
		t.Helper()
		fast, fastOK := elementBatch[*product](ctx, typeName, 0)
		slow, slowOK := batchOfChain[*product](ctx, typeName, 0)
		if fastOK && (!slowOK || fast.Index != slow.Index || fast.list != slow.list || fast.results != slow.results ||
			len(fast.Parents) != len(slow.Parents) || fast.IndexMap != nil || slow.group != nil) {
			t.Errorf("%s: elementBatch %+v, the chain's %+v, %v", name, fast, slow, slowOK)
		}
	}
	root := WithWindow(context.Background(), &window{}) // the loaders' window is the request's
	orders := []order{{1}, {2}}
	groups := []context.Context{root, graphql.WithBatchParents(root, "Product", []*product{{9}}, nil)}
	for g, outer := range groups {
		ctx := WithBatchParentValues(outer, "Order", orders)
		ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Index: new(int)})
		ctx = WithBatchParentValues(ctx, "Product", []product{{1}, {2}, {3}})
		MarshalList(ctx, 3, 0, true, func(ctx context.Context, i int) graphql.Marshaler {
			check(fmt.Sprintf("group %d, product %d", g, i), ctx, "Product")
			check(fmt.Sprintf("group %d, product %d as an order", g, i), ctx, "Order")
			inner := WithBatchParentValues(ctx, "Order", orders)
			MarshalList(inner, 2, 0, true, func(ctx context.Context, j int) graphql.Marshaler {
				check(fmt.Sprintf("group %d, order %d of product %d", g, j, i), ctx, "Product")
				return graphql.Null
			})
			return graphql.Null
		})
	}
	ctx := WithBatchParentValues(root, "Product", []product{{1}, {2}})
	MarshalList(ctx, 2, 0, true, func(ctx context.Context, i int) graphql.Marshaler {
		if b, ok := batchOf[*product](ctx, "Product", 0); !ok || int(b.Index) != i || len(b.Parents) != 2 {
			t.Errorf("product %d: batchOf %+v, %v", i, b, ok)
		}
		if _, ok := elementBatch[*product](ctx, "Product", 0); !ok {
			t.Errorf("product %d: no shortcut for an element of its own list", i)
		}
		return graphql.Null
	})
}

// TestObjectsComeFromChunks: an operation's objects and plain objects are taken from chunks
// (a page of 50 products with their merchants and prices made 150 allocations), each
// written as its own, while a subscription's are allocated one by one.
func TestObjectsComeFromChunks(t *testing.T) {
	fields := []graphql.CollectedField{{Field: &ast.Field{Name: "amount", Alias: "amount"}}}
	write := func(w io.Writer, v *int, _ string) { WriteInt(w, *v) }
	query := &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Query}}
	subscription := &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Subscription}}
	for _, c := range []struct {
		oc  *graphql.OperationContext
		max float64
	}{{query, 10}, {subscription, 100}} {
		var a Objects
		var objs []graphql.Marshaler
		allocs := testing.AllocsPerRun(1, func() {
			objs = objs[:0]
			for i := range 50 {
				o := a.New(c.oc, fields)
				o.Values[0] = NewPlainObjectIn(&a, c.oc, fields, i, write)
				objs = append(objs, o)
			}
		})
		if c.oc == query && allocs > c.max || c.oc == subscription && allocs < c.max {
			t.Errorf("%s: 50 objects and their plain objects allocated %.0f times", c.oc.Operation.Operation, allocs)
		}
		for i, o := range objs {
			var buf bytes.Buffer
			o.MarshalGQL(&buf)
			if want := fmt.Sprintf(`{"amount":{"amount":%d}}`, i); buf.String() != want {
				t.Errorf("object %d wrote %s, want %s", i, buf.String(), want)
			}
		}
	}
}

// TestTimeAndEnumWritersAreGqlgens: a time written from its field and an enum's name from
// its table write what graphql.MarshalTime and graphql.MarshalString write.
func TestTimeAndEnumWritersAreGqlgens(t *testing.T) {
	for _, at := range []time.Time{time.Date(2026, 12, 7, 3, 4, 5, 600700800, time.UTC),
		time.Date(1999, 1, 2, 3, 4, 5, 0, time.FixedZone("", -7*3600-30*60)), time.Unix(1, 0)} {
		var want, got, other bytes.Buffer
		graphql.MarshalTime(at).MarshalGQL(&want)
		MarshalTimeField(&at).MarshalGQL(&got)
		MarshalTimeField(&at).MarshalGQL(struct{ io.Writer }{&other}) // not a *bytes.Buffer
		if got.String() != want.String() || other.String() != want.String() {
			t.Errorf("MarshalTimeField wrote %s and %s, gqlgen %s", got.String(), other.String(), want.String())
		}
	}
	names := map[store.OrderStatus]string{store.StatusPaid: "PAID", store.StatusCancelled: "CANCELLED"}
	table := EnumMarshalers(names)
	for v, name := range names {
		var want, got bytes.Buffer
		graphql.MarshalString(name).MarshalGQL(&want)
		table[v].MarshalGQL(&got)
		if got.String() != want.String() {
			t.Errorf("%v: wrote %s, gqlgen %s", v, got.String(), want.String())
		}
	}
	if len(table) != len(names) {
		t.Errorf("%d marshalers for %d names", len(table), len(names))
	}
	var typeName graphql.Marshaler
	if allocs := testing.AllocsPerRun(100, func() { typeName = TypeName("Product") }); allocs != 0 || typeName == nil {
		t.Errorf("a type name allocated %.0f times", allocs)
	}
}

// TestWithFieldContextIsGqlgens: the field's context node answers as graphql.WithFieldContext's
// does, its field context under the parent's, the other values through.
func TestWithFieldContextIsGqlgens(t *testing.T) {
	type other struct{}
	i := 3
	parent := graphql.WithFieldContext(context.WithValue(context.Background(), other{}, "kept"), &graphql.FieldContext{Index: &i,
		Parent: &graphql.FieldContext{Field: graphql.CollectedField{Field: &ast.Field{Name: "orders", Alias: "orders"}}}})
	field := graphql.CollectedField{Field: &ast.Field{Name: "items", Alias: "items"}}
	ctx := WithFieldContext(parent, graphql.FieldContext{Object: "Order", Field: field, IsResolver: true})
	want := graphql.WithFieldContext(parent, &graphql.FieldContext{Object: "Order", Field: field, IsResolver: true})
	fc, wantFC := graphql.GetFieldContext(ctx), graphql.GetFieldContext(want)
	if fc.Parent != wantFC.Parent || fc.Object != "Order" || !fc.IsResolver || fc.Field.Field != field.Field {
		t.Errorf("field context %+v, gqlgen's %+v", fc, wantFC)
	}
	if got, want := graphql.GetPath(ctx).String(), graphql.GetPath(want).String(); got != want {
		t.Errorf("path %q, gqlgen's %q", got, want)
	}
	if ctx.Value(other{}) != "kept" {
		t.Errorf("the parent's values are lost")
	}
}

// TestChildOfIsMadeOnce: the Child function of an operation's field contexts of one type is
// made once and calls the executor's method with the field it is given.
func TestChildOfIsMadeOnce(t *testing.T) {
	type executor struct{ name string }
	ec := &executor{name: "Product"}
	childFields := func(ec *executor, _ context.Context, field graphql.CollectedField) (*graphql.FieldContext, error) {
		return &graphql.FieldContext{Object: ec.name, Field: field}, nil
	}
	var c Child
	first := ChildOf(&c, ec, childFields)
	field := graphql.CollectedField{Field: &ast.Field{Name: "merchant"}}
	if fc, err := first(context.Background(), field); err != nil || fc.Object != "Product" || fc.Field.Field != field.Field {
		t.Fatalf("Child returned %+v, %v", fc, err)
	}
	if allocs := testing.AllocsPerRun(100, func() { ChildOf(&c, ec, childFields) }); allocs != 0 {
		t.Errorf("the Child function made again: %.0f allocations", allocs)
	}
}

// TestListAnswersGqlgensKeys: a list answers gqlgen's batch group and path context as its
// context does, with and without them, so that an ask stops at the list.
func TestListAnswersGqlgensKeys(t *testing.T) {
	type product struct{ id int }
	if batchStateKey == nil || pathContextKey == nil || batchStateKey == pathContextKey || batchStateKey == fieldContextKey {
		t.Fatalf("gqlgen's keys not learned: %v, %v", batchStateKey, pathContextKey)
	}
	root := context.Background()
	grouped := graphql.WithBatchParents(root, "Product", []*product{{9}}, nil)
	pathed := graphql.WithPathContext(grouped, graphql.NewPathWithIndex(2))
	for name, ctx := range map[string]context.Context{"bare": root, "grouped": grouped, "with a path": pathed} {
		list := WithBatchParentValues(ctx, "Order", []product{{1}})
		below := graphql.WithFieldContext(list, &graphql.FieldContext{})
		if got, want := graphql.GetBatchParentGroup(below, "Product"), graphql.GetBatchParentGroup(ctx, "Product"); got != want {
			t.Errorf("%s: group %p, its context's %p", name, got, want)
		}
		if got, want := graphql.GetPathContext(below), graphql.GetPathContext(ctx); got != want {
			t.Errorf("%s: path context %p, its context's %p", name, got, want)
		}
	}
}

// TestSpanResolvesOnce: the items of every order of a page resolve their product once for
// all the orders, each item taking its own; when that call fails, each order's items
// resolve theirs on their own, so that the error is each list's as gqlgen reports it.
func TestSpanResolvesOnce(t *testing.T) {
	type order struct{ id int }
	type item struct{ order, n int }
	type product struct{ name string }
	field := func(name string) graphql.CollectedField {
		return graphql.CollectedField{Field: &ast.Field{Name: name, Alias: name}}
	}
	itemsField, productField := field("items"), field("product")
	orders := []order{{1}, {2}, {3}}
	for _, failWhole := range []bool{false, true} {
		var mu sync.Mutex
		var calls [][]string
		resolveProducts := func(parents []*item) ([]*product, error) {
			mu.Lock()
			defer mu.Unlock()
			names := make([]string, len(parents))
			out := make([]*product, len(parents))
			for i, it := range parents {
				names[i] = fmt.Sprintf("%d.%d", it.order, it.n)
				out[i] = &product{names[i]}
			}
			calls = append(calls, names)
			if failWhole && len(parents) > 2 {
				return nil, fmt.Errorf("whole")
			}
			return out, nil
		}
		var got []string
		ctx := WithBatchParentValues(WithWindow(context.Background(), &window{}), "Order", orders)
		MarshalValues(ctx, 0, false, t, nil, orders, func(t *testing.T, ctx context.Context, _ ast.SelectionSet, o *order) graphql.Marshaler {
			batch, ok := BatchFor[*order](ctx, "Order")
			if !ok {
				t.Fatal("an order without its batch")
			}
			node := WithFieldContext(ctx, graphql.FieldContext{Field: itemsField})
			r := FieldResultOf(batch, itemsField, func(parents []*order) ([][]item, error) {
				out := make([][]item, len(parents))
				for i, p := range parents {
					for n := range p.id % 3 { // 1, 2 and no items
						out[i] = append(out[i], item{p.id, n})
					}
				}
				return out, nil
			})
			items, ok := BatchValue[[]item](batch, r)
			if !ok {
				t.Fatal("no items")
			}
			WithSpan[*order, item](node, batch, itemsField)
			list := WithBatchParentValues(node, "Item", items)
			MarshalValues(list, 0, false, t, nil, items, func(t *testing.T, ctx context.Context, _ ast.SelectionSet, it *item) graphql.Marshaler {
				b, ok := BatchFor[*item](ctx, "Item")
				if !ok {
					t.Fatal("an item without its batch")
				}
				r := b.Ready(productField)
				if r == nil {
					r = FieldResultOf(b, productField, resolveProducts)
				}
				p, ok := BatchValue[*product](b, r)
				if !ok {
					t.Fatalf("item %d.%d: no product (%v)", it.order, it.n, r.Err)
				}
				if want := fmt.Sprintf("%d.%d", it.order, it.n); p.name != want {
					t.Errorf("item %s took product %s", want, p.name)
				}
				got = append(got, p.name)
				return graphql.Null
			})
			return graphql.Null
		})
		want := [][]string{{"1.0", "2.0", "2.1"}}
		if failWhole {
			want = [][]string{{"1.0", "2.0", "2.1"}, {"1.0"}, {"2.0", "2.1"}}
		}
		if fmt.Sprint(calls) != fmt.Sprint(want) || len(got) != 3 {
			t.Errorf("failing whole %v: resolver called with %v, want %v; items took %v", failWhole, calls, want, got)
		}
	}
}
