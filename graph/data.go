package graph

import (
	"bytes"
	"io"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/graphql"
)

// marshalData stands for the bytes.Buffer a query's data is written into in the generated
// executor (see internal/tuneexec). A storefront page is tens of kilobytes, which a fresh
// buffer reaches by doubling, leaving twice the page as garbage: the data is written into a
// pooled buffer and copied out once at its size.
func marshalData(data graphql.Marshaler) []byte {
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

// marshalInt stands for graphql.MarshalInt in plain leaf fields: gqlgen's closure formats
// the number into a new string when written; this writes it from the stack.
func marshalInt(i int) graphql.Marshaler { return intValue(i) }

type intValue int

func (i intValue) MarshalGQL(w io.Writer) {
	if buf, ok := w.(*bytes.Buffer); ok { // the executor's, always
		_, _ = buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(i), 10))
		return
	}
	_, _ = io.WriteString(w, strconv.Itoa(int(i)))
}
