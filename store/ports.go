package store

import "context"

// The store's ports: what it needs of the rooms around it, which implement them over Redis
// and PostgreSQL replicas (store/cache, store/replicas) and are composed by api.New. The
// store itself knows neither Redis nor its keys.

// EntityCache is a read-through cache of rows by ID (users and products) that the store
// reads through and invalidates after its writes commit. store/cache implements it in Redis.
type EntityCache interface {
	// ReadThrough serves the rows of ids of kind ("user", "product"): the entries it holds
	// go to rows.Decode, the others it has rows.Load from the database and fills in with
	// their encodings. It returns how many keys it served and missed; an error is Load's.
	ReadThrough(ctx context.Context, kind string, ids []int64, rows CachedRows) (hits, misses int, err error)
	// Invalidate makes the entries of ids of kind stale for every process, after the write
	// that changed them committed.
	Invalidate(ctx context.Context, kind string, ids ...int64)
	// Counts returns the keys served and missed, and the cache's failures, since it started.
	Counts() (hits, misses, errors int64)
}

// CachedRows is one read of rows of one kind through an EntityCache: the store encodes and
// decodes the entries (cache_codec.go), the cache only moves them. An entry starts with
// CacheEntryTag; the cache's own markers (tombstones) start with another byte, so Decode
// refuses them.
type CachedRows interface {
	// Decode keeps the row an entry encodes; false when it is not a well-formed entry.
	Decode(entry string) bool
	// Load reads the rows of ids from the database and keeps them; unknown IDs are left out.
	Load(ctx context.Context, ids []int64) error
	// Loaded is how many rows Load kept; ID and Encode give the i-th one's ID and entry.
	Loaded() int
	ID(i int) int64
	Encode(i int) []byte
}

// The kinds of rows the store reads through its EntityCache.
const (
	CacheKindUser    = "user"
	CacheKindProduct = "product"
)

// CacheEntryTag is the first byte of every entry the store encodes; CacheTombstoneTag, which
// no entry starts with, is free for the cache's markers.
const (
	CacheEntryTag     = tagEntry
	CacheTombstoneTag = tagTombstone
)
