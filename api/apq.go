package api

import (
	"context"
	"errors"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/api/observe"
)

// Persisted queries live this long in Redis after they were last used; longer ones than
// apqMaxQueryBytes run but are not stored (the client sends them again, as after an
// eviction), and each process keeps apqLocalBytes of them in memory.
const (
	apqTTL           = time.Hour
	apqMaxQueryBytes = 32 << 10
	apqLocalBytes    = 8 << 20
	apqRedisTimeout  = 200 * time.Millisecond
)

// PersistedQueries is the cache of Apollo's automatic persisted queries: a client sends a
// query's SHA-256 alone, and the full query only after a PERSISTED_QUERY_NOT_FOUND answer.
// Each process's memory sits in front of Redis, which every process shares, so a hash one
// process learned is known to all. When Redis is unavailable the local cache still answers
// and a miss makes the client send its query again: nothing fails.
//
// gqlgen's extension stores a query as soon as its hash matches, before it is parsed; here
// it only looks up (Lookup), and the query is stored by this extension, installed after the
// limits: only once it parsed, validated, passed the shape and cost limits and was charged
// to the caller's budget (guard charges registration by size).
type PersistedQueries struct {
	rdb     redis.UniversalClient
	prefix  string
	local   *guard.ByteCache[string]
	metrics *observe.Metrics
}

// NewPersistedQueries returns the APQ cache kept in rdb under prefix.
func NewPersistedQueries(rdb redis.UniversalClient, prefix string, m *observe.Metrics) *PersistedQueries {
	local := guard.NewByteCache(apqLocalBytes, func(hash, query string) int { return len(hash) + len(query) })
	return &PersistedQueries{rdb: rdb, prefix: prefix + "apq:", local: local, metrics: m}
}

// Lookup is the cache for gqlgen's APQ extension: it finds queries and stores none.
func (c *PersistedQueries) Lookup() graphql.Cache[string] { return lookup{c} }

type lookup struct{ *PersistedQueries }

func (lookup) Add(context.Context, string, string) {}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = &PersistedQueries{}

func (*PersistedQueries) ExtensionName() string                   { return "PersistedQueryStore" }
func (*PersistedQueries) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext stores the query a request registered, now that it passed every check.
func (c *PersistedQueries) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if s := extension.GetApqStats(ctx); s != nil && s.SentQuery && len(opCtx.RawQuery) <= apqMaxQueryBytes {
		c.add(ctx, s.Hash, opCtx.RawQuery)
	}
	return nil
}

// Get returns the query of hash.
func (c *PersistedQueries) Get(ctx context.Context, hash string) (string, bool) {
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

// add registers query under hash (gqlgen checked that hash is its SHA-256).
func (c *PersistedQueries) add(ctx context.Context, hash, query string) {
	c.local.Add(ctx, hash, query)
	ctx, cancel := context.WithTimeout(ctx, apqRedisTimeout)
	defer cancel()
	if err := c.rdb.Set(ctx, c.prefix+hash, query, apqTTL).Err(); err != nil {
		c.metrics.Degraded(ctx, "persisted_queries", err)
	}
}
