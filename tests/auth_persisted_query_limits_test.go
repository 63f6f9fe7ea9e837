package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/store/storetest"
)

// padded returns query followed by a comment, n bytes in all: comments are not tokens, so
// only the size limit sees them.
func padded(query string, n int) string {
	pad := n - len(query) - 2
	return query + "\n#" + strings.Repeat("x", max(pad, 0))
}

// TestPersistedQueryStoredOnlyWhenValid: a registration that fails to parse, validate or pass
// a limit leaves nothing behind; a hash sent alone afterwards is still unknown.
func TestPersistedQueryStoredOnlyWhenValid(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for name, q := range map[string]string{
			"unparseable": "{ products(first: 2 { totalCount }",
			"invalid":     "{ noSuchField }",
			"too costly":  `{ products(first: 100) { nodes { merchant { products(first: 100) { nodes { merchant { products(first: 100) { totalCount } } } } } } } }`,
			"too long":    padded("{ __typename }", guard.DefaultLimits.MaxQueryBytes+1),
		} {
			if r := env.postAPQ(q, true); len(r.Errors) == 0 {
				t.Fatalf("%s: registered without an error", name)
			}
			if r := env.postAPQ(q, false); r.Code() != "PERSISTED_QUERY_NOT_FOUND" {
				t.Errorf("%s: the hash alone answered %v, want PERSISTED_QUERY_NOT_FOUND: the query was stored", name, r.Errors)
			}
		}
		// A valid one is stored.
		const ok = `query Valid { products(first: 1) { totalCount } }`
		if r := env.postAPQ(ok, true); len(r.Errors) > 0 {
			t.Fatalf("registering a valid query: %v", r.Errors)
		}
		if r := env.postAPQ(ok, false); len(r.Errors) > 0 {
			t.Fatalf("the hash of a registered query: %v", r.Errors)
		}
	})
}

// TestQueryTextSizeLimit: a query text over MaxQueryBytes is COMPLEXITY_LIMIT_EXCEEDED over
// POST, GET and SSE, whatever it is made of; one at the limit runs.
func TestQueryTextSizeLimit(t *testing.T) {
	t.Parallel()
	env := embedded(t, config{Limits: guard.Limits{MaxQueryBytes: 4096}})
	long, atLimit := padded("{ __typename }", 4097), padded("{ __typename }", 4096)
	if r := env.anon().post(atLimit, nil); len(r.Errors) > 0 {
		t.Fatalf("a query at the limit: %v", r.Errors)
	}
	if r := env.anon().post(long, nil); r.Code() != guard.CodeComplexityLimit {
		t.Errorf("POST: %v, want %s", r.Errors, guard.CodeComplexityLimit)
	}
	req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/graphql?query="+url.QueryEscape(long), nil)
	if r := env.do(req); r.Code() != guard.CodeComplexityLimit {
		t.Errorf("GET: %v, want %s", r.Errors, guard.CodeComplexityLimit)
	}
	req, _ = http.NewRequest(http.MethodPost, env.srv.URL+"/graphql", strings.NewReader(`{"query":`+strconv.Quote(long)+`}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err != nil || strings.Contains(body.String(), "complete") {
			break
		}
	}
	if !strings.Contains(body.String(), guard.CodeComplexityLimit) {
		t.Errorf("SSE: %q, want %s", body.String(), guard.CodeComplexityLimit)
	}
}

// TestPersistedQueryRegistrationCosts: registering a query is charged a point per 16 bytes
// of its text on top of its cost; sending its hash afterwards is charged its cost alone.
func TestPersistedQueryRegistrationCosts(t *testing.T) {
	t.Parallel()
	env := embedded(t, config{RateLimit: guard.RateLimit{PointsPerMinute: 100_000}})
	q := padded(`query Registered { products(first: 1) { totalCount } }`, 32_000)
	available := func(r gqlResponse) float64 {
		t.Helper()
		if len(r.Errors) > 0 {
			t.Fatalf("%v", r.Errors)
		}
		v, _ := throttle(r)["currentlyAvailable"].(float64)
		return v
	}
	before := available(env.anon().post(`{ __typename }`, nil))
	registered := available(env.postAPQ(q, true))
	again := available(env.postAPQ(q, false))
	// Leases make the figures step by 1% of the budget; 32,000 bytes are 2,000 points.
	if spent := before - registered; spent < 1900 {
		t.Errorf("registering 32,000 bytes spent %.0f points, want about 2,000", spent)
	}
	if spent := registered - again; spent > 1000 {
		t.Errorf("running it by hash spent %.0f points, want only its cost", spent)
	}
}

// TestPersistedQueryFloodIsBounded is the goal: one anonymous address sending 2,000
// distinct 256 KB persisted queries moves its own Redis's memory by less than 16 MiB and the
// process's heap by less than 64 MiB.
func TestPersistedQueryFloodIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 500 MB")
	}
	own := startOwnRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(strings.TrimSuffix(own.url(), "/0"), "redis://")})
	defer rdb.Close()
	env := newTestEnv(t, config{SQLitePath: storetest.SQLitePath(t), RedisURL: own.url(), RedisPrefix: "flood:",
		RateLimit: guard.DefaultRateLimit})
	used := func() int64 {
		info, err := rdb.Info(context.Background(), "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no used_memory in INFO")
		return 0
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	redisBefore, heapBefore := used(), heap()
	for i := range 2000 {
		q := padded(fmt.Sprintf("query Flood%d { __typename }", i), 256<<10)
		if r := env.postAPQ(q, true); len(r.Errors) == 0 {
			t.Fatalf("query %d: accepted", i)
		}
	}
	redisGrew, heapGrew := used()-redisBefore, int64(heap())-int64(heapBefore)
	t.Logf("2,000 queries of 256 KB: Redis used_memory +%d KiB, heap +%d KiB", redisGrew>>10, heapGrew>>10)
	if redisGrew > 16<<20 {
		t.Errorf("Redis grew by %d MiB, want < 16", redisGrew>>20)
	}
	if heapGrew > 64<<20 {
		t.Errorf("the heap grew by %d MiB, want < 64", heapGrew>>20)
	}
}

// TestDocumentCacheIsBoundedInBytes: the cache of parsed documents holds no more than its
// byte bound, however many distinct large queries pass through it.
func TestDocumentCacheIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	const bound = 1 << 20
	env := embedded(t, config{Limits: guard.Limits{CachedDocumentBytes: bound}})
	for i := range 300 {
		q := padded(fmt.Sprintf("query Doc%d { __typename }", i), 8<<10)
		if r := env.anon().post(q, nil); len(r.Errors) > 0 {
			t.Fatalf("%v", r.Errors)
		}
	}
	if n := env.svc.Operations.Documents().Bytes(); n > bound || n == 0 {
		t.Errorf("the document cache holds %d bytes, want (0, %d]", n, bound)
	}
}
