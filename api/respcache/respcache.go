// Package respcache answers public queries from a cache of whole responses in Redis, shared
// by every process of the service, with a copy of the hottest in each process.
//
// A query is cached only when an anonymous caller sends it and every field it selects is
// public (fields.go); mutations, subscriptions, signed-in callers and responses with errors
// are never cached. Each cached response is tagged with the version keys of the entities it
// read (the store's ReadTags, filled by its read-through cache) and, when it lists products,
// the version key of every list of products. The invalidation that buries an entity in the
// store's cache gives those keys fresh tokens in the same Redis pipeline, so once a write has
// returned, no process serves a response that read the old entity:
//
//   - A hit compares the versions a response was stored with to the current ones, in one
//     MGET, on every hit (in-process copies too).
//   - A miss knows the tags from the stale or learning entry of the same request, reads their
//     versions before it executes, and stores the response with those: a write that lands
//     while it executes leaves the new entry stale at once. A response whose tags are not
//     all among those read first (its first execution, or one that read other entities) is
//     stored as learning: its tags, no valid versions. The next miss stores it for real.
//
// A response that lists products carries the list key instead of each product's version
// key: every invalidation that buries a product gives the list key a fresh version too, so
// the list key alone goes stale with any of them, and a hit asks Redis for fewer keys.
//
// Most hits are found before gqlgen sets the operation up (Lookup, called by api's POST and
// GET transports): the entry keeps the cost its first execution was charged, which the
// transport charges again as the cost limit would, and the transport records the operation
// as gqlgen's extensions would. Otherwise, the cost limit and the rate limit have charged
// the operation before the interceptor is asked (they mutate the operation context; this
// intercepts its response), and extensions.cost is added around a cached answer as around
// any other.
package respcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/auth"
	"github.com/shop/api/store"
	entitycache "github.com/shop/api/store/cache"
)

// Config tunes the cache; zero fields take the defaults.
type Config struct {
	// TTL is how long a response lives in Redis and in a process (default 1m). It must stay
	// well under the store's version keys' life (30m).
	TTL time.Duration
	// MaxAge is the max-age of Cache-Control on public GET answers to persisted queries
	// (default 5s): how stale a CDN may serve one.
	MaxAge time.Duration
	// LocalEntries bounds the responses a process keeps (default 1024).
	LocalEntries int
	// Timeout bounds each Redis call; a call that fails makes the request a plain miss.
	Timeout time.Duration
}

// DefaultConfig is the configuration a zero Config stands for.
var DefaultConfig = Config{TTL: time.Minute, MaxAge: 5 * time.Second, LocalEntries: 1024, Timeout: 300 * time.Millisecond}

func (c Config) withDefaults() Config {
	d := DefaultConfig
	if c.TTL > 0 {
		d.TTL = c.TTL
	}
	if c.MaxAge > 0 {
		d.MaxAge = c.MaxAge
	}
	if c.LocalEntries > 0 {
		d.LocalEntries = c.LocalEntries
	}
	if c.Timeout > 0 {
		d.Timeout = c.Timeout
	}
	return d
}

// Cache is the response cache, a gqlgen response interceptor (install it last, so that every
// other extension sees its answers as the executor's).
type Cache struct {
	cfg    Config
	rdb    redis.UniversalClient
	prefix string
	tags   entitycache.ResponseTags
	log    *slog.Logger
	// productTags starts every product's version key (tags.ProductList without "list").
	productTags string

	lookups                       *prometheus.CounterVec
	hits, misses, failures, early atomic.Int64

	versions *versionReader

	mu    sync.RWMutex
	local map[string]*entry
}

// New returns a response cache in rdb under keys starting with prefix, tagging responses
// with the store's tags. Its counters are registered in reg.
func New(cfg Config, rdb redis.UniversalClient, prefix string, tags entitycache.ResponseTags, reg prometheus.Registerer, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// resp2: entries carry their cost, in an encoding the first version cannot read.
	c := &Cache{cfg: cfg.withDefaults(), rdb: rdb, prefix: prefix + "resp2:" + store.CacheSchema + ":", tags: tags, log: log,
		productTags: strings.TrimSuffix(tags.ProductList, "list"),
		local:       map[string]*entry{}, versions: &versionReader{rdb: rdb, timeout: cfg.withDefaults().Timeout},
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_response_cache_lookups_total",
			Help: "Public queries looked up in the response cache, by result: hit, miss, or error (Redis failed; answered by the executor).",
		}, []string{"result"})}
	reg.MustRegister(c.lookups)
	return c
}

// Stats are the cache's counters since it started; Early counts the hits (among Hits)
// answered before gqlgen set the operation up (Lookup).
type Stats struct{ Hits, Misses, Failures, Early int64 }

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Failures: c.failures.Load(), Early: c.early.Load()}
}

// ExtensionName names the extension.
func (c *Cache) ExtensionName() string { return "ResponseCache" }

// Validate accepts any schema.
func (c *Cache) Validate(graphql.ExecutableSchema) error { return nil }

// maxEntryBytes bounds the responses kept: a page of that size is not a storefront's, and
// LocalEntries of them must fit in a process.
const maxEntryBytes = 256 << 10

// mark is the operation context's extension in which MutateOperationContext leaves the
// operation's shape, once every earlier mutator (the shape and cost limits, the rate limit)
// let it through.
const mark = "responseCache"

// MutateOperationContext marks a public query of an anonymous caller as one the cache may
// answer. Installed last, it runs only when the limits before it admitted the operation.
func (c *Cache) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil || rc.Operation.Operation != ast.Query || !auth.ViewerFrom(ctx).Anonymous() {
		return nil
	}
	if sh := classify(rc.Operation.SelectionSet); sh.public {
		rc.Stats.SetExtension(mark, &sh)
	}
	return nil
}

// shapeOf returns the shape MutateOperationContext left on rc, nil when it left none.
func shapeOf(rc *graphql.OperationContext) *shape {
	sh, _ := rc.Stats.GetExtension(mark).(*shape)
	return sh
}

// CacheControl returns the Cache-Control value for the response of rc, and whether it
// should carry one: only when the operation was a public query of an anonymous caller and
// the response has no errors. A nil Cache never does.
func (c *Cache) CacheControl(rc *graphql.OperationContext, resp *graphql.Response) (string, bool) {
	if c == nil || rc == nil || resp == nil || len(resp.Errors) > 0 || len(resp.Data) == 0 || shapeOf(rc) == nil {
		return "", false
	}
	return c.PublicCacheControl(), true
}

// PublicCacheControl is the Cache-Control value of a public answer.
func (c *Cache) PublicCacheControl() string {
	return "public, max-age=" + strconv.Itoa(int(c.cfg.MaxAge/time.Second))
}

// Lookup answers a query before gqlgen sets it up (api's transports): query is its text
// as it would run (a persisted query's or trusted document's resolved), vars its variables
// as gqlgen coerces them, and ctx's viewer anonymous. On a valid hit it returns the data and
// the cost its first execution was charged; the caller charges that cost and calls Hit, or
// goes the whole way. Either way the returned context carries what was read from Redis, so
// that InterceptResponse does not read it again (its versions were read after the request
// began, as a hit's must be).
func (c *Cache) Lookup(ctx context.Context, query, operationName string, vars map[string]any) (data []byte, cost int, ok bool, _ context.Context) {
	if !auth.ViewerFrom(ctx).Anonymous() || !c.tags.Trusted() {
		return nil, 0, false, ctx
	}
	key, err := keyOf(query, operationName, vars)
	if err != nil {
		return nil, 0, false, ctx
	}
	known, current, err := c.lookup(ctx, key)
	if err != nil {
		return nil, 0, false, ctx // InterceptResponse asks again, and counts the failure
	}
	ctx = context.WithValue(ctx, lookedUpKey{}, &lookedUp{key: key, known: known, current: current})
	if known == nil || !known.valid || !known.costKnown || !slices.Equal(known.versions, current) {
		return nil, 0, false, ctx
	}
	return known.data, known.cost, true, ctx
}

// Hit counts a hit Lookup found and its caller answered.
func (c *Cache) Hit() {
	c.early.Add(1)
	c.count("hit", &c.hits)
}

// lookedUp is what Lookup read for a request that went on to gqlgen.
type lookedUp struct {
	key     string
	known   *entry
	current []string
}

type lookedUpKey struct{}

// InterceptResponse answers a public query from the cache, or executes it and stores its
// response.
func (c *Cache) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	// Errors already in the response context: an operation refused before it ran (gqlgen's
	// DispatchError), which is answered with them.
	if !graphql.HasOperationContext(ctx) || len(graphql.GetErrors(ctx)) > 0 {
		return next(ctx)
	}
	rc := graphql.GetOperationContext(ctx)
	sh := shapeOf(rc)
	if sh == nil {
		return next(ctx)
	}
	if !c.tags.Trusted() {
		return next(ctx) // an invalidation is being retried: Redis may hold what it replaces
	}
	key, err := keyOf(rc.RawQuery, rc.OperationName, rc.Variables)
	if err != nil {
		return next(ctx)
	}

	var known *entry
	var current []string
	if l, ok := ctx.Value(lookedUpKey{}).(*lookedUp); ok && l.key == key {
		known, current = l.known, l.current
	} else {
		known, current, err = c.lookup(ctx, key)
	}
	switch {
	case err != nil:
		c.count("error", &c.failures)
		return next(ctx)
	case known != nil && known.valid && slices.Equal(known.versions, current):
		c.count("hit", &c.hits)
		// With the extensions the interceptors around this one registered (cost).
		return &graphql.Response{Data: known.data, Extensions: graphql.GetExtensions(ctx)}
	}
	c.count("miss", &c.misses)

	tags := &entitycache.ReadTags{}
	started := time.Now()
	resp := next(entitycache.WithReadTags(ctx, tags))
	if resp == nil || len(resp.Errors) > 0 || len(resp.Data) == 0 || len(resp.Data) > maxEntryBytes || time.Since(started) > c.cfg.TTL/4 {
		return resp
	}
	read := tags.Keys()
	if sh.listsProducts {
		// Every write that buries a product gives the list key a fresh version too, in the
		// same pipeline (the entity cache's bumpVersions): the list key alone stands for
		// every product the response read, and a hit asks Redis for fewer keys.
		read = slices.DeleteFunc(read, func(t string) bool { return strings.HasPrefix(t, c.productTags) })
		read = append(read, c.tags.ProductList)
		slices.Sort(read)
		read = slices.Compact(read)
	}
	e := &entry{tags: read, data: bytes.Clone(resp.Data), expires: time.Now().Add(c.cfg.TTL)}
	e.cost, e.costKnown = guard.OperationCost(rc)
	if known != nil {
		// Valid only if every tag it read had its version read before it executed.
		e.versions, e.valid = versionsOf(read, known.tags, current)
	}
	c.store(ctx, key, e)
	return resp
}

func (c *Cache) count(result string, n *atomic.Int64) {
	n.Add(1)
	c.lookups.WithLabelValues(result).Inc()
}

// keyOf names the response of an operation: its text, the operation name sent and its
// variables as gqlgen coerced them.
// A storefront's page usually has no variables: those are not marshaled (an empty map
// marshals as {} too), and the digest is summed on the stack, its text too when short.
func keyOf(query, operationName string, variables map[string]any) (string, error) {
	vars := []byte("{}")
	if len(variables) > 0 {
		var err error
		if vars, err = json.Marshal(variables); err != nil { // maps marshal with sorted keys
			return "", err
		}
	}
	var text [2048]byte // a storefront's query: on the stack
	b := append(append(append(append(append(text[:0], query...), 0), operationName...), 0), vars...)
	sum := sha256.Sum256(b)
	var key [40]byte
	hex.Encode(key[:], sum[:20])
	return string(key[:]), nil
}

// entry is a cached response: the version keys it read, their versions when it was stored
// (valid false: learning, never served), the cost the cost limit computed for it (a hit
// answered before gqlgen charges it; costKnown false: such a hit goes through gqlgen), and
// its data.
type entry struct {
	tags, versions []string
	valid          bool
	cost           int
	costKnown      bool
	data           []byte
	expires        time.Time
}

// lookup returns the entry of key (this process's copy, else Redis's) and the current
// versions of its tags. Both are nil when nothing is cached.
func (c *Cache) lookup(ctx context.Context, key string) (*entry, []string, error) {
	c.mu.RLock()
	e := c.local[key]
	c.mu.RUnlock()
	if e != nil && time.Now().After(e.expires) {
		e = nil
	}
	if e == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
		defer cancel()
		raw, err := c.rdb.Get(ctx, c.prefix+key).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			return nil, nil, nil
		case err != nil:
			return nil, nil, err
		}
		if e = decode(raw); e == nil {
			return nil, nil, nil // unreadable: stored again after this miss
		}
		if ttl := c.rdb.PTTL(ctx, c.prefix+key).Val(); ttl > 0 {
			e.expires = time.Now().Add(ttl)
		} else {
			e.expires = time.Now().Add(c.cfg.TTL / 2)
		}
		c.keepLocal(key, e)
	}
	if len(e.tags) == 0 {
		return e, []string{}, nil
	}
	vals, err := c.versions.read(ctx, e.tags)
	if err != nil {
		return nil, nil, err
	}
	current := make([]string, len(vals))
	for i, v := range vals {
		current[i], _ = v.(string)
	}
	return e, current, nil
}

// versionsOf returns the versions of tags read before executing (known with current), and
// false when one of tags was not among them.
func versionsOf(tags, known, current []string) ([]string, bool) {
	out := make([]string, len(tags))
	for i, t := range tags {
		j, found := slices.BinarySearch(known, t)
		if !found || j >= len(current) {
			return nil, false
		}
		out[i] = current[j]
	}
	return out, true
}

// store keeps e in this process and in Redis.
func (c *Cache) store(ctx context.Context, key string, e *entry) {
	c.keepLocal(key, e)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	if err := c.rdb.Set(ctx, c.prefix+key, encode(e), c.cfg.TTL).Err(); err != nil {
		c.failures.Add(1)
		c.log.DebugContext(ctx, "response cache: store failed", "err", err)
	}
}

// keepLocal keeps e in this process, making room by dropping any other entry when full.
func (c *Cache) keepLocal(key string, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.local[key]; !ok && len(c.local) >= c.cfg.LocalEntries {
		for k := range c.local {
			delete(c.local, k)
			break
		}
	}
	c.local[key] = e
}

// Flags of an encoded entry's first byte.
const (
	flagValid     = 1
	flagCostKnown = 2
)

// encode writes e as: a byte of flags, the cost when known, the number of tags, each tag and
// its version (lengths first), then the data.
func encode(e *entry) []byte {
	b := make([]byte, 0, 24+len(e.data)+64*len(e.tags))
	var flags byte
	if e.valid {
		flags |= flagValid
	}
	if e.costKnown {
		flags |= flagCostKnown
	}
	b = append(b, flags)
	if e.costKnown {
		b = binary.AppendUvarint(b, uint64(e.cost))
	}
	b = binary.AppendUvarint(b, uint64(len(e.tags)))
	for i, t := range e.tags {
		v := ""
		if e.valid {
			v = e.versions[i]
		}
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return append(b, e.data...)
}

// decode reads what encode wrote; nil when it cannot.
func decode(b []byte) *entry {
	if len(b) < 2 {
		return nil
	}
	e := &entry{valid: b[0]&flagValid != 0, costKnown: b[0]&flagCostKnown != 0}
	b = b[1:]
	if e.costKnown {
		cost, k := binary.Uvarint(b)
		if k <= 0 || cost > 1<<31 {
			return nil
		}
		e.cost, b = int(cost), b[k:]
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil
	}
	b = b[k:]
	str := func() (string, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return "", false
		}
		s := string(b[k : k+int(l)])
		b = b[k+int(l):]
		return s, true
	}
	e.tags = make([]string, n)
	e.versions = make([]string, n)
	for i := range n {
		t, ok1 := str()
		v, ok2 := str()
		if !ok1 || !ok2 {
			return nil
		}
		e.tags[i], e.versions[i] = t, v
	}
	e.data = b
	return e
}
