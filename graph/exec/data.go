package exec

import (
	"bytes"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// MarshalData stands for the bytes.Buffer a query's data is written into in the generated
// executor (see graph/internal/execgen). A storefront page is tens of kilobytes, which a fresh
// buffer reaches by doubling, leaving twice the page as garbage: the data is written into a
// pooled buffer and copied out once at its size.
func MarshalData(data graphql.Marshaler) []byte {
	buf := dataBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	data.MarshalGQL(buf)
	out := bytes.Clone(buf.Bytes())
	if buf.Cap() <= maxPooledData {
		dataBuffers.Put(buf)
	}
	return out
}

// maxPooledData bounds the buffers kept: a rare huge response leaves its buffer to the GC.
const maxPooledData = 1 << 20

var dataBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// MarshalInt stands for graphql.MarshalInt in plain leaf fields: gqlgen's closure formats
// the number into a new string when written; this writes it from the stack.
func MarshalInt(i int) graphql.Marshaler { return intValue(i) }

type intValue int

func (i intValue) MarshalGQL(w io.Writer) {
	if buf, ok := w.(*bytes.Buffer); ok { // the executor's, always
		_, _ = buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(i), 10))
		return
	}
	_, _ = io.WriteString(w, strconv.Itoa(int(i)))
}

// MarshalStringField stands for graphql.MarshalString in plain leaf fields that read a
// struct field: it holds the field's address, which an interface holds without an
// allocation, where gqlgen's closure over the string is one. The objects the executor
// resolves are not changed while it writes them.
func MarshalStringField(s *string) graphql.Marshaler { return stringField{s} }

type stringField struct{ s *string }

func (f stringField) MarshalGQL(w io.Writer) { WriteString(w, *f.s) }

// MarshalGlobalID stands for graphql.MarshalID of an object's GlobalID(): the ID is
// encoded into the response as it is written, where gqlgen's marshaler holds a string
// encoded beforehand and a closure over it, two allocations.
func MarshalGlobalID[P GlobalIDAppender](p P) graphql.Marshaler { return globalID[P]{p} }

// GlobalIDAppender is an object that appends its global ID (store.Product and the others).
type GlobalIDAppender interface{ AppendGlobalID([]byte) []byte }

// globalID holds a pointer alone, which an interface holds without an allocation.
type globalID[P GlobalIDAppender] struct{ p P }

func (g globalID[P]) MarshalGQL(w io.Writer) {
	// base64url needs no escaping in a JSON string.
	if buf, ok := w.(*bytes.Buffer); ok { // the executor's, always
		_, _ = buf.Write(append(g.p.AppendGlobalID(append(buf.AvailableBuffer(), '"')), '"'))
		return
	}
	_, _ = w.Write(append(g.p.AppendGlobalID([]byte{'"'}), '"'))
}

// MarshalIntField stands for graphql.MarshalInt in plain leaf fields that read a struct
// field: it holds the field's address, which an interface holds without an allocation,
// where an int of 256 or more is one (a product's stock, an item's quantity).
func MarshalIntField(i *int) graphql.Marshaler { return intField{i} }

type intField struct{ i *int }

func (f intField) MarshalGQL(w io.Writer) { WriteInt(w, *f.i) }

// WriteInt writes i as graphql.MarshalInt does.
func WriteInt(w io.Writer, i int) { intValue(i).MarshalGQL(w) }

// WriteString writes s as graphql.MarshalString does. A string without a byte to escape
// (most are) is copied into the executor's buffer whole; gqlgen's writer goes through
// io.WriteString three times and looks at it rune by rune.
func WriteString(w io.Writer, s string) {
	if buf, ok := w.(*bytes.Buffer); ok && !needsEscape(s) {
		buf.Grow(len(s) + 2)
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	graphql.MarshalString(s).MarshalGQL(w)
}

// needsEscape reports whether s holds a byte graphql.MarshalString escapes: a control
// character, a quote or a backslash (the bytes of a multi-byte UTF-8 character are all
// 0x80 or more, and it writes those as they are).
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return true
		}
	}
	return false
}

// WriteBoolean writes b as graphql.MarshalBoolean does.
func WriteBoolean(w io.Writer, b bool) {
	if b {
		_, _ = io.WriteString(w, "true")
		return
	}
	_, _ = io.WriteString(w, "false")
}

// MarshalTimeField stands for graphql.MarshalTime in non-null Time fields that read a
// struct field (an order event's at): it holds the field's address and appends the time
// into the executor's buffer, where gqlgen's path is a field context, closures, the boxed
// time, its formatted string and its quoted copy. The generated code takes it only for a
// time that is not zero, which gqlgen's marshaler makes null, an error it reports.
func MarshalTimeField(t *time.Time) graphql.Marshaler { return timeField{t} }

type timeField struct{ t *time.Time }

func (f timeField) MarshalGQL(w io.Writer) {
	// RFC 3339 needs no escaping in a JSON string: strconv.Quote leaves it as it is.
	var b []byte
	if buf, ok := w.(*bytes.Buffer); ok { // the executor's, always
		b = buf.AvailableBuffer()
	}
	b = append(f.t.AppendFormat(append(b, '"'), time.RFC3339Nano), '"')
	_, _ = w.Write(b)
}

// EnumMarshalers stands for graphql.MarshalString of an enum's names (an order's status):
// the marshaler of each value is made once, where gqlgen's closes over the name for every
// field it writes. A value without a name is the generated code's to marshal as gqlgen does.
func EnumMarshalers[T comparable](names map[T]string) map[T]graphql.Marshaler {
	m := make(map[T]graphql.Marshaler, len(names))
	for v, name := range names {
		m[v] = MarshalStringField(&name)
	}
	return m
}

// TypeName stands for graphql.MarshalString of an object's __typename: a constant converted
// to it is a static value, where gqlgen's closure over the name is an allocation for every
// object a client asks the __typename of (Apollo's clients ask it of each).
type TypeName string

func (t TypeName) MarshalGQL(w io.Writer) { WriteString(w, string(t)) }
