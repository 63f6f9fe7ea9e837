package store

import (
	"encoding/binary"
	"errors"
	"time"
)

// The cache stores entries in a compact binary form: a tag byte, then each field as a
// varint or a length-prefixed string, in a fixed order: a typical user takes 74 bytes where
// its JSON took 146, a product 72 instead of 213. Changing the layout means bumping
// CacheSchema, which is part of every key, so old and new processes never read each other's
// entries.
// CacheSchema is part of every cache key: bump it when the encoding in this file changes.
const CacheSchema = "v4"

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
	// decode reads an entry's fields with an entryReader of its own, which then stays on
	// the stack.
	decode func(string) (T, error)
}

func (c entryCodec[T]) marshal(v T) []byte {
	return c.encode(append(make([]byte, 0, 96), tagEntry), v)
}

// unmarshal decodes an entry as Redis returned it. The strings of the value are substrings
// of the entry, which nothing else holds: a batch of 50 users is decoded without copying.
func (c entryCodec[T]) unmarshal(b string) (T, error) {
	var zero T
	if len(b) == 0 || b[0] != tagEntry {
		return zero, errBadEntry
	}
	return c.decode(b[1:])
}

var userCodec = entryCodec[User]{
	kind: CacheKindUser,
	id:   func(u User) int64 { return u.ID },
	encode: func(b []byte, u User) []byte {
		b = binary.AppendVarint(b, u.ID)
		b = appendString(b, u.Name)
		b = appendString(b, u.Email)
		b = appendString(b, string(u.Role))
		b = appendTime(b, u.CreatedAt)
		return binary.AppendVarint(b, u.TokenVersion)
	},
	decode: func(b string) (User, error) {
		r := entryReader{b: b}
		u := User{ID: r.int(), Name: r.string(), Email: r.string(), Role: Role(r.string()), CreatedAt: r.time(), TokenVersion: r.int()}
		return u, r.end()
	},
}

var productCodec = entryCodec[Product]{
	kind: CacheKindProduct,
	id:   func(p Product) int64 { return p.ID },
	encode: func(b []byte, p Product) []byte {
		b = binary.AppendVarint(b, p.ID)
		b = binary.AppendVarint(b, p.MerchantID)
		b = appendString(b, p.Name)
		b = appendString(b, p.Description)
		b = binary.AppendVarint(b, int64(p.Price))
		b = binary.AppendVarint(b, int64(p.Stock))
		b = binary.AppendVarint(b, int64(p.LowStockThreshold))
		b = appendTime(b, p.CreatedAt)
		return appendTime(b, p.UpdatedAt)
	},
	decode: func(b string) (Product, error) {
		r := entryReader{b: b}
		p := Product{ID: r.int(), MerchantID: r.int(), Name: r.string(), Description: r.string(),
			Price: Money(r.int()), Stock: int(r.int()), LowStockThreshold: int(r.int()), CreatedAt: r.time(), UpdatedAt: r.time()}
		return p, r.end()
	},
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendTime keeps nanoseconds, so an entry reads back exactly as the row did.
func appendTime(b []byte, t time.Time) []byte { return binary.AppendVarint(b, t.UnixNano()) }

// entryReader reads fields in order; the first error sticks and later reads return zeros.
type entryReader struct {
	b   string
	err error
}

func (r *entryReader) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := varint(r.b)
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
	l, n := uvarint(r.b)
	if n <= 0 || uint64(len(r.b)-n) < l {
		r.err = errBadEntry
		return ""
	}
	s := r.b[n : n+int(l)]
	r.b = r.b[n+int(l):]
	return s
}

func (r *entryReader) time() time.Time { return time.Unix(0, r.int()).UTC() }

// end is errBadEntry unless every field was read and nothing is left over.
func (r *entryReader) end() error {
	if r.err != nil || len(r.b) != 0 {
		return errBadEntry
	}
	return nil
}

// uvarint and varint are binary's of the head of a string, copied to the stack (a varint
// is at most 10 bytes), so that reading an entry allocates nothing.
func uvarint(s string) (uint64, int) {
	return binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
}

func varint(s string) (int64, int) {
	return binary.Varint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
}
