package api

import (
	"context"
	"errors"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/redis/go-redis/v9"

	"github.com/shop/api/api/observe"
)

// Persisted queries live this long in Redis after they were last registered, and this many
// are kept in each process's memory.
const (
	apqTTL          = 24 * time.Hour
	apqLocalEntries = 1000
	apqRedisTimeout = 200 * time.Millisecond
)

// NewPersistedQueries returns the cache of Apollo's automatic persisted queries, kept in
// rdb under prefix: a client sends a query's SHA-256 alone, and the full query only after
// a PERSISTED_QUERY_NOT_FOUND answer.
func NewPersistedQueries(rdb redis.UniversalClient, prefix string, m *observe.Metrics) graphql.Cache[string] {
	return &persistedQueries{rdb: rdb, prefix: prefix + "apq:", local: lru.New[string](apqLocalEntries), metrics: m}
}

// persistedQueries is the APQ cache: each process's LRU in front of Redis, which every
// process shares, so a hash one process learned is known to all. When Redis is unavailable
// the LRU still answers and a miss makes the client send its query again: nothing fails.
type persistedQueries struct {
	rdb     redis.UniversalClient
	prefix  string
	local   *lru.LRU[string]
	metrics *observe.Metrics
}

// Get returns the query of hash.
func (c *persistedQueries) Get(ctx context.Context, hash string) (string, bool) {
	if q, ok := c.local.Get(ctx, hash); ok {
		c.metrics.PersistedQuery("hit_local")
		return q, true
	}
	ctx, cancel := context.WithTimeout(ctx, apqRedisTimeout)
	defer cancel()
	// GETEX keeps a query in use alive.
	q, err := c.rdb.GetEx(ctx, c.prefix+hash, apqTTL).Result()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			c.metrics.Degraded(ctx, "persisted_queries", err)
		}
		c.metrics.PersistedQuery("miss")
		return "", false
	}
	c.metrics.PersistedQuery("hit_redis")
	c.local.Add(ctx, hash, q)
	return q, true
}

// Add registers query under hash (gqlgen checked that hash is its SHA-256).
func (c *persistedQueries) Add(ctx context.Context, hash, query string) {
	c.local.Add(ctx, hash, query)
	ctx, cancel := context.WithTimeout(ctx, apqRedisTimeout)
	defer cancel()
	if err := c.rdb.Set(ctx, c.prefix+hash, query, apqTTL).Err(); err != nil {
		c.metrics.Degraded(ctx, "persisted_queries", err)
	}
}
