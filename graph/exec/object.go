package exec

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// ObjectSet stands for the FieldSet in an object's function in the generated executor (see
// graph/internal/execgen), with what that function reads of it: Values, Invalids and Dispatch.
// gqlgen's FieldSet is two allocations, and its MarshalGQL copies every CollectedField to
// the heap and keeps a map of the aliases it wrote, which a page of products repeats for
// each of its objects. Here the fields, their values (inline, for up to six) and the count
// of invalid ones are one allocation, and the object writes itself from them. A deferred
// field's value travels in a later payload of its @defer group, which gqlgen builds on the
// group's own FieldSet; this object only holds it as null, as gqlgen's does (LaterFields.add).
type ObjectSet struct {
	object
	Invalids uint32
	inline   [6]graphql.Marshaler
	// deferred is the FieldSet gqlgen's ResolveConcurrently needs for a deferred field.
	deferred *graphql.FieldSet
}

// object is an object's fields and their values, written as one JSON object.
type object struct {
	fields []graphql.CollectedField
	Values []graphql.Marshaler
}

// NewObjectSet stands for graphql.NewFieldSet in an object's function.
func NewObjectSet(fields []graphql.CollectedField) *ObjectSet {
	o := new(ObjectSet)
	o.init(fields)
	return o
}

// init makes o, zero, the object of fields.
func (o *ObjectSet) init(fields []graphql.CollectedField) {
	o.fields = fields
	if len(fields) <= len(o.inline) {
		o.Values = o.inline[:len(fields):len(fields)]
	} else {
		o.Values = make([]graphql.Marshaler, len(fields))
	}
}

// Dispatch resolves nothing: an object's concurrent fields are LaterFields'.
func (*ObjectSet) Dispatch(context.Context) {}

func (o *object) MarshalGQL(w io.Writer) {
	writeByte(w, '{')
	for i := range o.fields {
		alias := o.fields[i].Alias
		if written(o.fields, i, alias) {
			continue // as FieldSet: an alias is written once
		}
		writeKey(w, i, alias)
		o.Values[i].MarshalGQL(w)
	}
	writeByte(w, '}')
}

// writeKey writes the key of an object's i-th field, after a comma unless it is the first.
// The executor writes into a bytes.Buffer, whose methods are called directly: io.WriteString
// asks the writer for WriteString anew for every piece, a fifth of writing a page.
func writeKey(w io.Writer, i int, alias string) {
	// A GraphQL name needs no escaping: [_A-Za-z][_0-9A-Za-z]*.
	if buf, ok := w.(*bytes.Buffer); ok {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('"')
		buf.WriteString(alias)
		buf.WriteString(`":`)
		return
	}
	if i > 0 {
		_, _ = io.WriteString(w, ",")
	}
	_, _ = io.WriteString(w, `"`)
	_, _ = io.WriteString(w, alias)
	_, _ = io.WriteString(w, `":`)
}

// writeByte writes c, straight into the executor's bytes.Buffer.
func writeByte(w io.Writer, c byte) {
	if buf, ok := w.(*bytes.Buffer); ok {
		buf.WriteByte(c)
		return
	}
	_, _ = w.Write([]byte{c})
}

// written reports whether a field before i has alias. CollectFields merges the fields of
// one alias, so this is a guard that FieldSet keeps too, over a handful of fields.
func written(fields []graphql.CollectedField, i int, alias string) bool {
	for j := range i {
		if fields[j].Alias == alias {
			return true
		}
	}
	return false
}

// PlainSelections reports whether sel holds fields only: no fragment, so no @defer, which
// the spec allows on fragments alone. A plain object's field is then marshaled without a
// field context of its own (see graph/internal/execgen): its fields are plain leaves, which
// never report an error whose path would need it.
func PlainSelections(sel ast.SelectionSet) bool {
	for _, s := range sel {
		if _, ok := s.(*ast.Field); !ok {
			return false
		}
	}
	return true
}

// PlainObject stands for a plain object's function (a Money: every field a plain leaf) in
// a field whose selection holds no fragment (see graph/internal/execgen): the object's
// value and its collected fields are one allocation, and its fields are written straight
// from the value when the response is written, by the object's generated write function.
// gqlgen's path is four allocations for a price: the value's copy, the field set, and the
// amount and currency boxed into marshalers.
type PlainObject[T any] struct {
	fields []graphql.CollectedField
	v      T
	write  func(w io.Writer, obj *T, field string)
}

// NewPlainObject returns the marshaler of the plain object v with fields, written by write.
func NewPlainObject[T any](fields []graphql.CollectedField, v T, write func(io.Writer, *T, string)) *PlainObject[T] {
	return &PlainObject[T]{fields: fields, v: v, write: write}
}

func (o *PlainObject[T]) MarshalGQL(w io.Writer) {
	writeByte(w, '{')
	for i := range o.fields {
		alias := o.fields[i].Alias
		if written(o.fields, i, alias) {
			continue
		}
		writeKey(w, i, alias)
		o.write(w, &o.v, o.fields[i].Name)
	}
	writeByte(w, '}')
}

// Objects hands out an operation's ObjectSets from chunks (one per operation, beside its
// CollectedFields): a page of 50 products with their merchants made 101 of them, each an
// allocation; now a handful of chunks, which grow from objectChunkMin to objectChunkMax so
// that a small query does not pay for a large one. A subscription, which lives as long as
// its phone watches, allocates each object alone, so that a chunk does not keep an old
// event's values alive.
type Objects struct {
	mu    sync.Mutex
	chunk []ObjectSet
	next  int // the size of the next chunk
	// plain is the chunk of the plain objects last handed out (a *plainChunk[T]): an
	// operation mostly has one plain type (Money), and a chunk of another replaces it.
	plain any
}

// plainChunk is a chunk of plain objects of one type.
type plainChunk[T any] struct {
	objects []PlainObject[T]
	next    int
}

// NewPlainObjectIn stands for NewPlainObject, the object taken from a's chunks as an
// object's are (see Objects).
func NewPlainObjectIn[T any](a *Objects, oc *graphql.OperationContext, fields []graphql.CollectedField, v T,
	write func(io.Writer, *T, string)) *PlainObject[T] {
	if oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
		return NewPlainObject(fields, v, write)
	}
	a.mu.Lock()
	c, ok := a.plain.(*plainChunk[T])
	if !ok {
		c = new(plainChunk[T])
		a.plain = c
	}
	if len(c.objects) == 0 {
		c.next = min(max(2*c.next, objectChunkMin), objectChunkMax)
		c.objects = make([]PlainObject[T], c.next)
	}
	o := &c.objects[0]
	c.objects = c.objects[1:]
	a.mu.Unlock()
	o.fields, o.v, o.write = fields, v, write
	return o
}

const (
	objectChunkMin = 4
	objectChunkMax = 16
)

// New stands for NewObjectSet in an object's function.
func (a *Objects) New(oc *graphql.OperationContext, fields []graphql.CollectedField) *ObjectSet {
	if oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
		return NewObjectSet(fields)
	}
	a.mu.Lock()
	if len(a.chunk) == 0 {
		a.next = min(max(2*a.next, objectChunkMin), objectChunkMax)
		a.chunk = make([]ObjectSet, a.next)
	}
	o := &a.chunk[0]
	a.chunk = a.chunk[1:]
	a.mu.Unlock()
	o.init(fields)
	return o
}
