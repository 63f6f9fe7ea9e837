// Command tuneexec rewrites gqlgen's executor (the file named by its argument) where the
// generated code is costlier than a storefront read can afford; the functions it calls
// instead are in package graph, each with its reasons:
//
//   - a plain leaf field (a struct field or a method without context or error, of a scalar
//     or enum whose marshaler never yields null) is marshaled at once, without the field
//     context, closures and boxing of graphql.ResolveField (see plainLeaf below); its
//     string field, int or global ID is written from the object without a closure or a
//     string of its own (marshalStringField, marshalInt, marshalGlobalID, graph/data.go);
//   - an object is one allocation, not a FieldSet, written without gqlgen's per-field
//     copies (newObjectSet, graph/object.go); a field holding an object of plain leaves (a
//     Money) by value is marshaled at once when its selection holds no fragment, the only
//     place a @defer could sit (plainSelections);
//   - an object builds its @defer group only when one of its fields is deferred
//     (deferredGroup, graph/deferred.go) and has its fields collected once an operation
//     without gqlgen's hashed key (graph/collect.go);
//   - a list resolves its elements one after another until one waits for the loaders'
//     batch window, instead of a goroutine per element (marshalList, graph/lists.go), and
//     hands an object held by value its element's address instead of a copy on the heap;
//   - a batch resolver asks for its resolver root once a list, finds its parent's index
//     without building the response path, and shares the list's result without an
//     allocation per parent; a batch field's object for the parents after the first is
//     taken from that result when it asks for plain leaves only (graph/batch.go);
//   - an object's concurrent fields run one after another until one waits for the loaders'
//     batch window, instead of a goroutine for each but the first (laterFields,
//     graph/later.go);
//   - a query's data is written into a pooled buffer (marshalData, graph/data.go).
//
// `go generate` runs it after gqlgen. It fails when gqlgen's code no longer has what it
// rewrites, so that a gqlgen upgrade cannot drop a change unnoticed.
package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
)

var rewrites = []struct{ from, to string }{
	{"deferred := graphql.NewDeferredGroup(ctx)", "deferred := deferredGroup(ctx, fields)"},
	{"graphql.MarshalSliceConcurrently(", "marshalList("},
	{"graphql.BatchParentsFor[", "batchParentsFor["},
	{"graphql.WithBatchParentValues(", "withBatchParentValues("},
	{"graphql.CollectFields(ec.OperationContext, sel, ", "ec.collected.of(ec.OperationContext, sel, "},
	{"type executionContext struct {\n\t*graphql.ExecutionContextState[ResolverRoot, DirectiveRoot, ComplexityRoot]\n}",
		"type executionContext struct {\n\t*graphql.ExecutionContextState[ResolverRoot, DirectiveRoot, ComplexityRoot]\n\tcollected collectedFields\n}"},
	{"\t\t\tvar buf bytes.Buffer\n\t\t\tdata.MarshalGQL(&buf)\n\t\t\tresponse.Data = buf.Bytes()\n",
		"\t\t\tresponse.Data = marshalData(data)\n"},
}

// resolveFieldHead is the rest of a field function's header (its parent's type the second
// submatch, the header the first) and the start of its call of graphql.ResolveField, up to
// the resolver: what plainLeaf and batchField share.
const resolveFieldHead = `\(ctx context\.Context, field graphql\.CollectedField, obj (\S+)\) \(ret graphql\.Marshaler\) \{\n)` +
	`\treturn graphql\.ResolveField\(\n\t\tctx,\n\t\tec\.OperationContext,\n\t\tfield,\n` +
	`\t\tfunc\(ctx context\.Context, field graphql\.CollectedField\) \(\*graphql\.FieldContext, error\) \{\n\t\t\treturn ec\.fieldContext_\w+\(ctx, field\)\n\t\t\},\n`

// plainLeaf matches a field function whose value is a struct field or a method of obj that
// takes no context and returns no error, with no field middleware of its own (gqlgen's
// middleware argument is nil: no directive), marshaled by a marshal function of a value
// (not pointer or list) type. Such a field can fail in no way that needs its own field
// context: the field's path in an error, the field middleware and its recorded result are
// all that ResolveField adds, and the service installs no field middleware (api.NewGraphQL
// refuses a FieldInterceptor). A panic still ends in the nearest enclosing field's recover.
var plainLeaf = regexp.MustCompile(`(?m)^(func \(ec \*executionContext\) _\w+` + resolveFieldHead +
	`\t\tfunc\(ctx context\.Context\) \(any, error\) \{\n\t\t\treturn (obj\.\w+(?:\(\))?), nil\n\t\t\},\n` +
	`\t\tnil,\n` +
	`\t\tfunc\(ctx context\.Context, selections ast\.SelectionSet, v [^*\[\s]\S*\) graphql\.Marshaler \{\n\t\t\treturn ec\.(marshalN[^\s(]+)\(ctx, selections, v\)\n\t\t\},\n` +
	`\t\ttrue,\n\t\ttrue,\n\t\)\n\}\n`)

// neverNull matches a marshal function of a value type that wraps one of gqlgen's scalar
// marshalers that never return graphql.Null (Time does, for the zero time), or an enum's
// name table: its null check, the one place it reads the field context, cannot fire.
var neverNull = regexp.MustCompile(`(?m)^func \(ec \*executionContext\) (marshalN[^\s(]+)\(ctx context\.Context, sel ast\.SelectionSet, v [^*\[\s]\S*\) graphql\.Marshaler \{\n` +
	`\t_ = sel\n\tres := graphql\.Marshal(?:String|ID|Int|Int32|Int64|Boolean|Float)\((?:v|marshalN[^\s\[]+\[v\])\)\n`)

// object matches an object's function, its body up to the function's end.
var object = regexp.MustCompile(`(?ms)^func \(ec \*executionContext\) (_\w+)\(ctx context\.Context, sel ast\.SelectionSet, obj \S+\) graphql\.Marshaler \{\n(.*?)\n\}\n`)

// objectField matches a field's call in an object's function.
var objectField = regexp.MustCompile(`ec\.(_\w+)\(ctx, field, obj\)`)

// objectValue matches the marshal function of an object held by value.
var objectValue = regexp.MustCompile(`(?m)^func \(ec \*executionContext\) (marshalN[^\s(]+)\(ctx context\.Context, sel ast\.SelectionSet, v [^*\[\s]\S*\) graphql\.Marshaler \{\n\treturn ec\.(_\w+)\(ctx, sel, &v\)\n\}\n`)

// listElement matches a list's call of its element's marshal function.
var listElement = regexp.MustCompile(`return ec\.(marshalN[^\s(]+)\(ctx, sel, v\[i\]\)`)

// objectCase matches a case of an object's function that sets a field's value at once.
var objectCase = regexp.MustCompile(`(?m)^\t\tcase "(\w+)":\n\t\t\tout\.Values\[i\] = ec\.(_\w+)\(ctx, field, obj\)\n`)

// objectPointer matches the marshal function of a non-null object held by pointer.
var objectPointer = regexp.MustCompile(`(?m)^func \(ec \*executionContext\) (marshalN[^\s(]+)\(ctx context\.Context, sel ast\.SelectionSet, v \*\S+\) graphql\.Marshaler \{\n\tif v == nil \{\n\t\tgraphql\.AddInvalidNullError\(ctx, "\w+!"\)\n\t\treturn graphql\.Null\n\t\}\n\treturn ec\.(_\w+)\(ctx, sel, v\)\n\}\n`)

// batchField matches a batch resolver's field function: its header, the parent's type and
// name, and the value's pointer type and marshal function.
var batchField = regexp.MustCompile(`(?m)^(func \(ec \*executionContext\) _(\w+)_\w+` + resolveFieldHead +
	`\t\tfunc\(ctx context\.Context\) \(any, error\) \{\n\t\t\treturn ec\.resolveBatch_\w+\(ctx, field, obj\)\n\t\t\},\n` +
	`\t\tnil,\n` +
	`\t\tfunc\(ctx context\.Context, selections ast\.SelectionSet, v (\*(\S+))\) graphql\.Marshaler \{\n\t\t\treturn ec\.(marshalN[^\s(]+)\(ctx, selections, v\)\n`)

// batchResolver matches a batch resolver's function and its resolver root.
var batchResolver = regexp.MustCompile(`(?ms)^func \(ec \*executionContext\) resolveBatch_\w+\(.*?\n(\tresolver := ec\.Resolvers\.(\w+)\(\)\n).*?\n\}\n`)

// fieldFunc matches a field function's name in its declaration.
var fieldFunc = regexp.MustCompile(`^func \(ec \*executionContext\) (_\w+)\(`)

// minPlainLeaves is fewer than the schema's plain leaf fields: if gqlgen's code changes so
// that fewer match, the rewrite has stopped applying.
const minPlainLeaves = 25

// minBatchedObjects is the relations to one object: an order's customer, an item's
// product, an event's order, a product's merchant.
const minBatchedObjects = 4

// minBatchResolvers is the schema's relations: Order's customer, items and history, an
// item's product, an event's order, a product's merchant.
const minBatchResolvers = 6

// minListsByValue is the lists of orders, items, events, products and their edges.
const minListsByValue = 6

// laterRewrites hand an object's concurrent fields to laterFields (graph/later.go).
var laterRewrites = []struct{ from, to string }{
	{"\tout := newObjectSet(fields)\n", "\tout := newObjectSet(fields)\n\tvar later laterFields\n"},
	{"out.ResolveConcurrently(ec.OperationContext, &deferred, i,", "later.add(ec.OperationContext, &deferred, out, field, i,"},
	{"\tout.Dispatch(ctx)\n", "\tlater.dispatch(ctx, out, &ec.collected, fields)\n"},
}

// minObjects is the schema's object types but the root ones: User, Product, Order,
// OrderItem, OrderStatusEvent, Money, PageInfo, the connections and edges, the payloads.
const minObjects = 12

// minConcurrentObjects is the objects with resolver fields: User, Product, Order, OrderItem,
// OrderStatusEvent and the two connections.
const minConcurrentObjects = 7

// minPlainObjects is the fields of Money held by value: a product's price, an order's
// total, an item's unit price and subtotal.
const minPlainObjects = 4

func main() {
	if err := rewrite(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "tuneexec:", err)
		os.Exit(1)
	}
}

func rewrite(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if src, err = tune(src); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, src, 0o644)
}

// tune applies every rewrite to the executor's source, in order: each later one reads what
// the earlier ones made of the fields.
func tune(src []byte) ([]byte, error) {
	for _, r := range rewrites {
		if !bytes.Contains(src, []byte(r.from)) {
			return nil, fmt.Errorf("no %q: gqlgen changed, see package graph", r.from)
		}
		src = bytes.ReplaceAll(src, []byte(r.from), []byte(r.to))
	}
	safe := map[string]bool{}
	for _, m := range neverNull.FindAllSubmatch(src, -1) {
		safe[string(m[1])] = true
	}
	leaves := map[string]bool{} // field functions rewritten as plain leaves
	src, err := replaceAll(src, plainLeaf, minPlainLeaves, "plain leaf fields", func(_ []byte, m [][]byte) ([]byte, bool) {
		head, value, marshal := m[1], string(m[3]), string(m[4])
		if !safe[marshal] {
			return nil, false
		}
		leaves[string(fieldFunc.FindSubmatch(head)[1])] = true
		switch method := strings.HasSuffix(value, "()"); {
		case marshal == "marshalNInt2int":
			return fmt.Appendf(nil, "%s\treturn marshalInt(%s)\n}\n", head, value), true
		case marshal == "marshalNString2string" && !method:
			return fmt.Appendf(nil, "%s\treturn marshalStringField(&%s)\n}\n", head, value), true
		case marshal == "marshalNID2string" && value == "obj.GlobalID()":
			return fmt.Appendf(nil, "%s\treturn marshalGlobalID(obj)\n}\n", head), true
		}
		return fmt.Appendf(nil, "%s\treturn ec.%s(ctx, field.Selections, %s)\n}\n", head, marshal, value), true
	})
	if err != nil {
		return nil, err
	}

	// A batch resolver asks for its resolver root (an allocation) only when it calls it:
	// once a list, not once a parent.
	if src, err = replaceAll(src, batchResolver, minBatchResolvers, "batch resolvers", func(fn []byte, m [][]byte) ([]byte, bool) {
		fn = bytes.Replace(fn, m[1], nil, 1)
		return bytes.ReplaceAll(fn, []byte("resolver."), fmt.Appendf(nil, "ec.Resolvers.%s().", m[2])), true
	}); err != nil {
		return nil, err
	}

	// An object is plain when every field of it is a plain leaf: none can fail, wait or
	// be deferred but through a fragment.
	plainObjects := map[string]bool{}
	for _, m := range object.FindAllSubmatch(src, -1) {
		calls := objectField.FindAllSubmatch(m[2], -1)
		plain := len(calls) > 0 && !bytes.Contains(m[2], []byte("Concurrently("))
		for _, c := range calls {
			plain = plain && leaves[string(c[1])]
		}
		plainObjects[string(m[1])] = plain
	}
	// Every object is an objectSet (graph/object.go): one allocation, written without the
	// FieldSet's per-field copies.
	if src, err = replaceAll(src, object, minObjects, "objects", func(fn []byte, _ [][]byte) ([]byte, bool) {
		if !bytes.Contains(fn, []byte("\tout := graphql.NewFieldSet(fields)\n")) {
			return nil, false
		}
		return bytes.Replace(fn, []byte("\tout := graphql.NewFieldSet(fields)\n"), []byte("\tout := newObjectSet(fields)\n"), 1), true
	}); err != nil {
		return nil, err
	}

	if src, err = batchedObjects(src, leaves); err != nil {
		return nil, err
	}

	// An object's concurrent fields run one after another until one waits for the window.
	if src, err = replaceAll(src, object, minConcurrentObjects, "objects with concurrent fields", func(fn []byte, _ [][]byte) ([]byte, bool) {
		if !bytes.Contains(fn, []byte("out.ResolveConcurrently(")) {
			return nil, false
		}
		for _, r := range laterRewrites {
			if !bytes.Contains(fn, []byte(r.from)) {
				return nil, false
			}
			fn = bytes.ReplaceAll(fn, []byte(r.from), []byte(r.to))
		}
		return fn, true
	}); err != nil {
		return nil, err
	}

	// A list of objects held by value passes each element's address, as its batch parents
	// do, rather than a copy that the object's function takes the address of.
	byValue := map[string]string{} // marshal function of an object by value → object function
	for _, m := range objectValue.FindAllSubmatch(src, -1) {
		byValue[string(m[1])] = string(m[2])
	}
	if src, err = replaceAll(src, listElement, minListsByValue, "lists of objects by value", func(_ []byte, m [][]byte) ([]byte, bool) {
		obj, ok := byValue[string(m[1])]
		return fmt.Appendf(nil, "return ec.%s(ctx, sel, &v[i])", obj), ok
	}); err != nil {
		return nil, err
	}

	// A plain object held by value needs no field context without a fragment.
	return replaceAll(src, plainLeaf, minPlainObjects, "plain object fields", func(fn []byte, m [][]byte) ([]byte, bool) {
		head, value, marshal := m[1], m[3], m[4]
		if !plainObjects[byValue[string(marshal)]] {
			return nil, false
		}
		return fmt.Appendf(nil, "%s\tif plainSelections(field.Selections) {\n\t\treturn ec.%s(ctx, field.Selections, %s)\n\t}\n%s",
			head, marshal, value, fn[len(head):]), true
	})
}

// batchedObjects rewrites a batch field whose value is an object: once its list's batch is
// resolved, it needs no field context when it asks for plain leaves alone (batchedObject,
// graph/batch.go). Each value type's plain leaf fields become a table after the code.
func batchedObjects(src []byte, leaves map[string]bool) ([]byte, error) {
	plainFields := map[string][]string{} // object function → its plain leaf fields
	for _, m := range object.FindAllSubmatch(src, -1) {
		names := []string{`"__typename": true`}
		for _, c := range objectCase.FindAllSubmatch(m[2], -1) {
			if leaves[string(c[2])] {
				names = append(names, fmt.Sprintf("%q: true", c[1]))
			}
		}
		plainFields[string(m[1])] = names
	}
	objectOf := map[string]string{} // marshal function of a non-null object pointer → object function
	for _, m := range objectPointer.FindAllSubmatch(src, -1) {
		objectOf[string(m[1])] = string(m[2])
	}
	var tables []byte
	src, err := replaceAll(src, batchField, minBatchedObjects, "batch fields of objects", func(fn []byte, m [][]byte) ([]byte, bool) {
		parent, parentType, valueType, marshal := m[2], m[3], m[5], string(m[6])
		obj, ok := objectOf[marshal]
		if !ok {
			return nil, false
		}
		table := "plainFields" + obj
		if !bytes.Contains(tables, []byte("var "+table+" ")) {
			tables = fmt.Appendf(tables, "\n// %s are the plain leaf fields of %s (see graph/batch.go's batchedObject).\nvar %s = map[string]bool{%s}\n",
				table, obj[1:], table, strings.Join(plainFields[obj], ", "))
		}
		return fmt.Appendf(nil, "%s\tif v, ok := batchedObject[%s, %s](ctx, %q, field, %s); ok {\n\t\treturn ec.%s(ctx, field.Selections, v)\n\t}\n%s",
			m[1], parentType, valueType, parent, table, marshal, fn[len(m[1]):]), true
	})
	return append(src, tables...), err
}

// replaceAll replaces each match of re in src with what f makes of it (the match and its
// submatches) where f says ok, and fails when fewer than min are: gqlgen's code has changed
// under the rewrite.
func replaceAll(src []byte, re *regexp.Regexp, min int, what string, f func(match []byte, sub [][]byte) ([]byte, bool)) ([]byte, error) {
	n := 0
	src = re.ReplaceAllFunc(src, func(match []byte) []byte {
		out, ok := f(match, re.FindSubmatch(match))
		if !ok {
			return match
		}
		n++
		return out
	})
	if n < min {
		return nil, fmt.Errorf("%d %s rewritten, expected at least %d: gqlgen changed, see tuneexec", n, what, min)
	}
	return src, nil
}
