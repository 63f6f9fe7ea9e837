package cache

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/store"
)

// A response cache (api/respcache) keeps whole responses tagged with the entities they read.
// Each tag is a version key in Redis holding a random token: the invalidation that buries an
// entity's cache entry (bury) also gives the entity's version key and its kind's list key a
// fresh token, in the same pipeline, so a response that read the entity, or listed its kind,
// no longer matches the versions it was stored with.

// versionTTL is how long a version key lives after its last write. It outlives any response
// stored against it (the response cache keeps them for at most a minute or two): a key that
// expired reads as absent again, which only responses older than it could have recorded.
const versionTTL = 30 * time.Minute

// versionKey is the version key of the entity whose cache key is key (prefix kind:id).
func (c *Cache) versionKey(key string) string {
	return c.prefix + "rv:" + strings.TrimPrefix(key, c.prefix)
}

// listKey is the version key of every list of the entity kind of key: a list's members and
// order can change with any write to one of them.
func (c *Cache) listKey(key string) string {
	rest := strings.TrimPrefix(key, c.prefix)
	kind, _, _ := strings.Cut(rest, ":")
	return c.prefix + "rv:" + kind + ":list"
}

// bumpVersions queues in p a fresh token for the version and list keys of keys.
func (c *Cache) bumpVersions(ctx context.Context, p redis.Pipeliner, keys []string) {
	var lists []string
	for _, k := range keys {
		p.Set(ctx, c.versionKey(k), tombstone(), versionTTL)
		if l := c.listKey(k); !slices.Contains(lists, l) {
			lists = append(lists, l)
		}
	}
	for _, l := range lists {
		p.Set(ctx, l, tombstone(), versionTTL)
	}
}

// ReadTags collects the version keys of the entities one request reads through the cache.
// It is safe for concurrent use.
type ReadTags struct {
	mu   sync.Mutex
	keys []string
}

// Keys returns the version keys collected, sorted, without duplicates.
func (t *ReadTags) Keys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := slices.Clone(t.keys)
	slices.Sort(keys)
	return slices.Compact(keys)
}

type readTagsKey struct{}

// WithReadTags returns ctx in which every read through the cache adds its entities' version
// keys to t.
func WithReadTags(ctx context.Context, t *ReadTags) context.Context {
	return context.WithValue(ctx, readTagsKey{}, t)
}

// tagReads adds the version keys of ids of kind to the request's ReadTags, if it has any.
func (c *Cache) tagReads(ctx context.Context, kind string, ids []int64) {
	t, _ := ctx.Value(readTagsKey{}).(*ReadTags)
	if t == nil {
		return
	}
	t.mu.Lock()
	for _, id := range ids {
		t.keys = append(t.keys, c.versionKey(c.key(kind, id)))
	}
	t.mu.Unlock()
}

// ResponseTags is what a response cache needs from the entity cache.
type ResponseTags struct {
	// ProductList is the version key of every list of products.
	ProductList string
	// Trusted reports whether the cache's invalidations have all landed: while one is being
	// retried, another process may still serve a response that read the entity.
	Trusted func() bool
}

// ResponseTags returns the tags a response cache needs of c.
func (c *Cache) ResponseTags() ResponseTags {
	return ResponseTags{
		ProductList: c.listKey(c.key(store.CacheKindProduct, 0)),
		Trusted: func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.pending) == 0
		},
	}
}
