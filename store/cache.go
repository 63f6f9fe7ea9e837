package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// Cache is a Redis read-through cache of users and products by ID. Reads try Redis with one
// MGET and fill misses with one pipeline; writes delete the keys they touch after commit.
// Redis failures are logged and read through to the database: the cache never fails a request.
type Cache struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	timeout time.Duration
	log     *slog.Logger
	flight  singleflight.Group
	stats   CacheStats
}

// cacheSchema is part of every key: bump it when the cached encoding changes, so processes
// of old and new versions never read each other's entries.
const cacheSchema = "v1"

// NewCache returns a cache in rdb under keys starting with prefix. Entries live for ttl, and
// a Redis call that takes longer than timeout counts as a miss.
func NewCache(rdb redis.UniversalClient, prefix string, ttl, timeout time.Duration, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{rdb: rdb, prefix: prefix + "cache:" + cacheSchema + ":", ttl: ttl, timeout: timeout, log: log}
}

func (c *Cache) key(kind string, id int64) string {
	return c.prefix + kind + ":" + strconv.FormatInt(id, 10)
}

// getMany returns the cached entries of ids, decoded, and the IDs it did not find.
func getMany[T any](ctx context.Context, c *Cache, kind string, ids []int64) (found []T, missing []int64) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = c.key(kind, id)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	vals, err := c.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		c.log.WarnContext(ctx, "cache read failed; reading the database", "err", err)
		c.stats.addErrors(1)
		c.stats.addMisses(len(ids))
		return nil, ids
	}
	for i, v := range vals {
		var t T
		if s, ok := v.(string); ok && json.Unmarshal([]byte(s), &t) == nil {
			found = append(found, t)
			continue
		}
		missing = append(missing, ids[i])
	}
	c.stats.addHits(len(found))
	c.stats.addMisses(len(missing))
	return found, missing
}

// setMany stores entries keyed by their IDs, in one pipeline.
func setMany[T any](ctx context.Context, c *Cache, kind string, entries []T, id func(T) int64) {
	if len(entries) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			b, _ := json.Marshal(e)
			p.Set(ctx, c.key(kind, id(e)), b, c.ttl)
		}
		return nil
	})
	if err != nil {
		c.log.WarnContext(ctx, "cache fill failed", "err", err)
		c.stats.addErrors(1)
	}
}

// invalidate deletes the entries of ids. It runs after the write committed; a second delete a
// moment later removes an entry that a reader who read the old row filled in the meantime.
func (c *Cache) invalidate(ctx context.Context, kind string, ids ...int64) {
	if len(ids) == 0 {
		return
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = c.key(kind, id)
	}
	del := func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		return c.rdb.Del(ctx, keys...).Err()
	}
	if err := del(); err != nil {
		c.log.WarnContext(ctx, "cache invalidation failed", "err", err, "keys", keys)
		c.stats.addErrors(1)
	}
	time.AfterFunc(invalidateAgainAfter, func() { _ = del() })
}

const invalidateAgainAfter = 250 * time.Millisecond

// readThrough returns the rows of ids from the cache, loading the misses with load and
// filling them in. Concurrent misses of the same IDs share one load.
func readThrough[T any](ctx context.Context, c *Cache, kind string, ids []int64, id func(T) int64,
	load func(context.Context, []int64) ([]T, error)) ([]T, error) {
	if c == nil || len(ids) == 0 {
		return load(ctx, ids)
	}
	found, missing := getMany[T](ctx, c, kind, ids)
	if len(missing) == 0 {
		return found, nil
	}
	sorted := slices.Clone(missing)
	slices.Sort(sorted)
	var b strings.Builder
	b.WriteString(kind)
	for _, id := range sorted {
		fmt.Fprintf(&b, ":%d", id)
	}
	v, err, _ := c.flight.Do(b.String(), func() (any, error) {
		loaded, err := load(ctx, missing)
		if err == nil {
			setMany(ctx, c, kind, loaded, id)
		}
		return loaded, err
	})
	if err != nil {
		return nil, err
	}
	return append(found, v.([]T)...), nil
}

func (s *Store) invalidateProducts(ctx context.Context, ids ...int64) {
	if s.cache != nil {
		s.cache.invalidate(ctx, "product", ids...)
	}
}

func (s *Store) invalidateUsers(ctx context.Context, ids ...int64) {
	if s.cache != nil {
		s.cache.invalidate(ctx, "user", ids...)
	}
}
