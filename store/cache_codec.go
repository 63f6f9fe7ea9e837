package store

import (
	"encoding/binary"
	"errors"
	"time"
)

// The cache stores entries in a compact binary form: a tag byte, then each field as a
// varint or a length-prefixed string, in a fixed order: a typical user takes 74 bytes where
// its JSON took 146, a product 72 instead of 213. Changing the layout means bumping
// cacheSchema, which is part of every key, so old and new processes never read each other's
// entries.
const (
	tagTombstone byte = 0 // an invalidated key: "absent since write <token>"
	tagEntry     byte = 1
)

var errBadEntry = errors.New("malformed cache entry")

// entryCodec encodes one kind of cached row.
type entryCodec[T any] struct {
	kind   string
	id     func(T) int64
	encode func([]byte, T) []byte
	decode func(*entryReader) T
}

func (c entryCodec[T]) marshal(v T) []byte {
	return c.encode(append(make([]byte, 0, 96), tagEntry), v)
}

func (c entryCodec[T]) unmarshal(b []byte) (T, error) {
	var zero T
	if len(b) == 0 || b[0] != tagEntry {
		return zero, errBadEntry
	}
	r := entryReader{b: b[1:]}
	v := c.decode(&r)
	if r.err != nil || len(r.b) != 0 {
		return zero, errBadEntry
	}
	return v, nil
}

var userCodec = entryCodec[User]{
	kind: "user",
	id:   func(u User) int64 { return u.ID },
	encode: func(b []byte, u User) []byte {
		b = binary.AppendVarint(b, u.ID)
		b = appendString(b, u.Name)
		b = appendString(b, u.Email)
		b = appendString(b, string(u.Role))
		return appendTime(b, u.CreatedAt)
	},
	decode: func(r *entryReader) User {
		return User{ID: r.int(), Name: r.string(), Email: r.string(), Role: Role(r.string()), CreatedAt: r.time()}
	},
}

var productCodec = entryCodec[Product]{
	kind: "product",
	id:   func(p Product) int64 { return p.ID },
	encode: func(b []byte, p Product) []byte {
		b = binary.AppendVarint(b, p.ID)
		b = binary.AppendVarint(b, p.MerchantID)
		b = appendString(b, p.Name)
		b = appendString(b, p.Description)
		b = binary.AppendVarint(b, int64(p.Price))
		b = binary.AppendVarint(b, int64(p.Stock))
		b = appendTime(b, p.CreatedAt)
		return appendTime(b, p.UpdatedAt)
	},
	decode: func(r *entryReader) Product {
		return Product{ID: r.int(), MerchantID: r.int(), Name: r.string(), Description: r.string(),
			Price: Money(r.int()), Stock: int(r.int()), CreatedAt: r.time(), UpdatedAt: r.time()}
	},
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendTime keeps nanoseconds, so an entry reads back exactly as the row did.
func appendTime(b []byte, t time.Time) []byte { return binary.AppendVarint(b, t.UnixNano()) }

// entryReader reads fields in order; the first error sticks and later reads return zeros.
type entryReader struct {
	b   []byte
	err error
}

func (r *entryReader) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadEntry
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) string() string {
	if r.err != nil {
		return ""
	}
	l, n := binary.Uvarint(r.b)
	if n <= 0 || uint64(len(r.b)-n) < l {
		r.err = errBadEntry
		return ""
	}
	s := string(r.b[n : n+int(l)])
	r.b = r.b[n+int(l):]
	return s
}

func (r *entryReader) time() time.Time { return time.Unix(0, r.int()).UTC() }
