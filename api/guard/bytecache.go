package guard

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/maypok86/otter/v2"
)

// ByteCache is a graphql.Cache bounded by the bytes its entries hold, not by their number:
// a thousand entries of a 60 KiB query are not a thousand of a 100-byte one. weigh
// estimates an entry's bytes (key included); the least valuable entries go first when the
// total passes maxBytes.
type ByteCache[T any] struct {
	c *otter.Cache[string, T]
}

// NewByteCache returns a cache of at most maxBytes, as weigh counts them.
func NewByteCache[T any](maxBytes int, weigh func(key string, v T) int) *ByteCache[T] {
	return &ByteCache[T]{c: otter.Must(&otter.Options[string, T]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(k string, v T) uint32 {
			return uint32(min(max(weigh(k, v), 1), 1<<31))
		},
	})}
}

var _ graphql.Cache[int] = (*ByteCache[int])(nil)

// Get returns the value of key.
func (b *ByteCache[T]) Get(_ context.Context, key string) (T, bool) { return b.c.GetIfPresent(key) }

// Add stores value under key.
func (b *ByteCache[T]) Add(_ context.Context, key string, value T) { b.c.Set(key, value) }

// Bytes is the estimated size of what the cache holds; eviction may lag a write briefly.
func (b *ByteCache[T]) Bytes() int {
	b.c.CleanUp()
	return int(b.c.WeightedSize())
}
