package store

import (
	"context"
	"database/sql"
)

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

// ReadReplicas routes the reads replicas may serve (loaders' batches, list pages, counts):
// it is the connection pool the store sends them to, which picks per statement a replica
// that may serve it, or else the primary. store/replicas implements it over PostgreSQL
// streaming replicas; the store starts it on Open and closes it on Close.
type ReadReplicas interface {
	ConnPool
	// Start begins routing, with primary the store's own pool (a replica's fallback).
	Start(ctx context.Context, primary *sql.DB) error
	// Wrote tells the routing that a write of user (0: nobody signed in) committed, so that
	// the operation's later reads, and user's, see it; position reads the primary's WAL
	// position, when the routing needs it.
	Wrote(ctx context.Context, user int64, position func() (int64, error))
	// Stats returns what each replica did, and the reads they could have served that went
	// to the primary.
	Stats() (replicas []ReplicaStats, primaryReads int64)
	// Close stops the routing and closes the replicas' pools.
	Close()
}

// ConnPool is a database/sql connection pool as gorm uses one.
type ConnPool interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
