// Package cache is the Redis read-through cache of users and products by ID that wraps the
// store (store.EntityCache), with the version keys the response cache tags its responses
// with. The store encodes the entries; this package owns the keys, the tombstones and the
// Redis calls.
package cache

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/store"
)

// Cache is a Redis read-through cache of users and products by ID, shared by every process
// of the service.
//
//   - Reads: one MGET for a batch; the misses are read from the database in one statement and
//     written back in one pipeline, each entry with a TTL.
//   - Writes: after its transaction commits, a write replaces each key it touched with a
//     tombstone carrying a fresh random token. A fill only lands when the key still holds
//     what the filler saw just before it read the database (nothing, or the same tombstone):
//     a compare-and-set in a small Lua script. A reader that read the old row before the
//     commit therefore can never put it back after the invalidation, so once a write has
//     returned, no process serves the old value.
//   - Stampedes: concurrent misses of one key in a process wait for the one database read in
//     flight, then look in Redis again.
//   - Failures: every Redis call has a short timeout; a failure is logged, read through to the
//     database and makes the cache step aside for a moment, so a request never fails, nor
//     waits long, because Redis is down. An invalidation that failed is retried in the
//     background, and until it lands this process does not trust Redis for that key.
type Cache struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	timeout time.Duration
	log     *slog.Logger
	// acks is how many Redis replicas must hold an invalidation before it counts (WAIT):
	// with Sentinel, a master that dies before replicating a tombstone would otherwise hand
	// its promoted replica the stale entry the tombstone replaced.
	acks int

	hits, misses, errors atomic.Int64

	// downUntil (Unix nanoseconds) is when reads try Redis again after a failure.
	downUntil atomic.Int64

	mu      sync.Mutex
	flights map[string]chan struct{} // keys being read from the database, closed when filled
	pending map[string]time.Time     // keys whose invalidation failed, with when it did
	retry   *time.Timer
}

var _ store.EntityCache = (*Cache)(nil)

const (
	// stepAside is how long reads skip Redis after it failed.
	stepAside = time.Second
	// tombstoneTTL is how long an invalidation's tombstone lives; a fill that took longer
	// than fillDeadline is dropped, so no fill can outlive the tombstone it must respect.
	tombstoneTTL = time.Minute
	fillDeadline = 10 * time.Second
)

// New returns a cache in rdb under keys starting with prefix, then "cache:" and
// store.CacheSchema (the entries' encoding). Entries live for ttl, and a Redis call that
// takes longer than timeout counts as a failure.
func New(rdb redis.UniversalClient, prefix string, ttl, timeout time.Duration, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{rdb: rdb, prefix: prefix + "cache:" + store.CacheSchema + ":", ttl: ttl, timeout: timeout, log: log,
		flights: map[string]chan struct{}{}, pending: map[string]time.Time{}}
}

// RequireReplicaAcks makes an invalidation wait until n replicas of the Redis master hold it;
// one that does not get there in time is retried like one that failed, and this process
// reads its keys from the database meanwhile. For a master with replicas (Sentinel).
func (c *Cache) RequireReplicaAcks(n int) { c.acks = n }

// errNotReplicated is an invalidation that fewer replicas than required acknowledged.
var errNotReplicated = errors.New("invalidation not acknowledged by the Redis replicas in time")

func (c *Cache) key(kind string, id int64) string {
	return c.prefix + kind + ":" + strconv.FormatInt(id, 10)
}

// fillScript sets KEYS[1] to ARGV[2] for ARGV[3] ms only when it still holds ARGV[1]
// (empty: nothing). It is the compare-and-set that keeps invalidated rows out.
var fillScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false`)

// usable reports whether reads should try Redis now.
func (c *Cache) usable() bool { return time.Now().UnixNano() >= c.downUntil.Load() }

// failed records a Redis failure: logged, counted, and reads step aside for a moment.
func (c *Cache) failed(ctx context.Context, what string, err error) {
	c.errors.Add(1)
	c.downUntil.Store(time.Now().Add(stepAside).UnixNano())
	c.log.WarnContext(ctx, "cache "+what+" failed; using the database", "err", err)
}

func (c *Cache) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
}

// mget returns the raw values of keys (nil where absent).
func (c *Cache) mget(ctx context.Context, keys []string) ([]any, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return c.rdb.MGet(ctx, keys...).Result()
}

// lookup is the state of one missed key: its ID, key and what Redis held for it.
type lookup struct {
	id  int64
	key string
	saw string
}

// split decodes into rows the values MGET returned for want, and returns the misses with
// what Redis held for them (a tombstone, an undecodable entry, or nothing).
func (c *Cache) split(rows store.CachedRows, want []lookup, vals []any) (found int, missing []lookup) {
	for i, l := range want {
		s, _ := vals[i].(string)
		if s != "" && !c.isPending(l.key) && rows.Decode(s) {
			found++
			continue
		}
		l.saw = s
		missing = append(missing, l)
	}
	return found, missing
}

// Counts returns the keys served and missed, and the Redis calls that failed, since the
// cache was made.
func (c *Cache) Counts() (hits, misses, errors int64) {
	return c.hits.Load(), c.misses.Load(), c.errors.Load()
}

func (c *Cache) count(hits, misses int) (int, int) {
	c.hits.Add(int64(hits))
	c.misses.Add(int64(misses))
	return hits, misses
}

// ReadThrough serves the rows of ids of kind from the cache, having rows load the misses
// from the database and filling them in.
func (c *Cache) ReadThrough(ctx context.Context, kind string, ids []int64, rows store.CachedRows) (hits, misses int, err error) {
	if len(ids) == 0 {
		return 0, 0, rows.Load(ctx, ids)
	}
	c.tagReads(ctx, kind, ids)
	if !c.usable() {
		hits, misses = c.count(0, len(ids))
		return hits, misses, rows.Load(ctx, ids)
	}
	want := make([]lookup, len(ids))
	keys := make([]string, len(ids))
	for i, id := range ids {
		want[i] = lookup{id: id, key: c.key(kind, id)}
		keys[i] = want[i].key
	}
	vals, err := c.mget(ctx, keys)
	if err != nil {
		c.failed(ctx, "read", err)
		hits, misses = c.count(0, len(ids))
		return hits, misses, rows.Load(ctx, ids)
	}
	found, missing := c.split(rows, want, vals)
	if len(missing) == 0 {
		hits, misses = c.count(found, 0)
		return hits, misses, nil
	}

	// Stampede protection: wait for reads of these keys already in flight, claim the rest,
	// then look again, since a read that just finished has filled what it read.
	c.wait(ctx, missing)
	release := c.claim(missing)
	defer release()
	keys = keys[:0]
	for _, l := range missing {
		keys = append(keys, l.key)
	}
	if vals, err = c.mget(ctx, keys); err != nil {
		c.failed(ctx, "read", err)
		hits, misses = c.count(found, len(missing))
		return hits, misses, rows.Load(ctx, idsOf(missing))
	}
	again, missing := c.split(rows, missing, vals)
	hits, misses = c.count(found+again, len(missing))
	if len(missing) == 0 {
		return hits, misses, nil
	}
	started := time.Now()
	if err := rows.Load(ctx, idsOf(missing)); err != nil {
		return hits, misses, err
	}
	if time.Since(started) < fillDeadline {
		c.fill(ctx, rows, missing)
	}
	return hits, misses, nil
}

func idsOf(ls []lookup) []int64 {
	ids := make([]int64, len(ls))
	for i, l := range ls {
		ids[i] = l.id
	}
	return ids
}

// wait blocks until no read of these keys is in flight in this process (or ctx ends).
func (c *Cache) wait(ctx context.Context, ls []lookup) {
	for _, l := range ls {
		c.mu.Lock()
		done := c.flights[l.key]
		c.mu.Unlock()
		if done == nil {
			continue
		}
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

// claim marks the keys nobody reads yet as read by the caller; release ends the claim and
// wakes whoever waits.
func (c *Cache) claim(ls []lookup) (release func()) {
	done := make(chan struct{})
	var mine []string
	c.mu.Lock()
	for _, l := range ls {
		if _, taken := c.flights[l.key]; !taken {
			c.flights[l.key] = done
			mine = append(mine, l.key)
		}
	}
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		for _, k := range mine {
			delete(c.flights, k)
		}
		c.mu.Unlock()
		close(done)
	}
}

// fill writes the loaded rows back in one pipeline, each only if its key still holds what
// the reader saw before reading the database.
func (c *Cache) fill(ctx context.Context, rows store.CachedRows, missed []lookup) {
	n := rows.Loaded()
	if n == 0 {
		return
	}
	saw := make(map[int64]lookup, len(missed))
	for _, l := range missed {
		saw[l.id] = l
	}
	ttl := strconv.FormatInt(c.ttl.Milliseconds(), 10)
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	run := func() error {
		cmds, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range n {
				l, ok := saw[rows.ID(i)]
				if !ok || c.isPending(l.key) {
					continue
				}
				fillScript.EvalSha(ctx, p, []string{l.key}, l.saw, rows.Encode(i), ttl)
			}
			return nil
		})
		if errors.Is(err, redis.Nil) { // a fill refused by the script
			err = nil
			for _, cmd := range cmds {
				if e := cmd.Err(); e != nil && !errors.Is(e, redis.Nil) {
					err = e
				}
			}
		}
		return err
	}
	err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = fillScript.Load(ctx, c.rdb).Err(); err == nil {
			err = run()
		}
	}
	if err != nil {
		c.failed(ctx, "fill", err)
	}
}

// Invalidate replaces the entries of ids of kind with tombstones, in one pipeline. It runs after the
// write committed. When Redis cannot be reached the keys are retried in the background, and
// this process reads them from the database until the retry lands.
func (c *Cache) Invalidate(ctx context.Context, kind string, ids ...int64) {
	if len(ids) == 0 {
		return
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = c.key(kind, id)
	}
	if err := c.bury(ctx, keys); err != nil {
		c.failed(ctx, "invalidation", err)
		c.mu.Lock()
		for _, k := range keys {
			c.pending[k] = time.Now()
		}
		c.scheduleRetry(time.Second)
		c.mu.Unlock()
	}
}

// bury writes a fresh tombstone to each key, and fresh versions for the responses that
// read them.
func (c *Cache) bury(ctx context.Context, keys []string) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	var acked *redis.Cmd
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Set(ctx, k, tombstone(), tombstoneTTL)
		}
		c.bumpVersions(ctx, p, keys) // the responses that read these entities (resptags.go)
		if c.acks > 0 {
			// WAIT's timeout stays inside the call's own deadline.
			acked = p.Do(ctx, "WAIT", c.acks, (c.timeout / 2).Milliseconds())
		}
		return nil
	})
	if err == nil && acked != nil {
		if n, werr := acked.Int64(); werr != nil || n < int64(c.acks) {
			err = errNotReplicated
		}
	}
	return err
}

func tombstone() []byte {
	b := make([]byte, 9)
	b[0] = store.CacheTombstoneTag
	_, _ = rand.Read(b[1:])
	return b
}

func (c *Cache) isPending(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[key]
	return ok
}

// scheduleRetry arms the retry of pending invalidations; c.mu must be held.
func (c *Cache) scheduleRetry(after time.Duration) {
	if c.retry == nil {
		c.retry = time.AfterFunc(after, c.retryPending)
	}
}

// retryPending writes the tombstones that failed. A key whose failure is older than the
// entry TTL needs none: whatever Redis held then has expired.
func (c *Cache) retryPending() {
	c.mu.Lock()
	c.retry = nil
	var keys []string
	for k, at := range c.pending {
		if time.Since(at) > c.ttl {
			delete(c.pending, k)
			continue
		}
		keys = append(keys, k)
	}
	c.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	err := c.bury(context.Background(), keys)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		for _, k := range keys {
			delete(c.pending, k)
		}
	case errors.Is(err, redis.ErrClosed):
		// The service is shutting down.
	default:
		c.scheduleRetry(time.Second)
	}
}
