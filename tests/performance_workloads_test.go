package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// BenchmarkWorkloads drives the real HTTP server against PostgreSQL and Redis on a seeded
// shop (50 merchants, 5,000 products, 1,000 customers, 20,000 orders of 1–5 items) with the
// three workloads of the performance issue, at concurrency 1, 8 and 32, in three
// configurations side by side: per-item queries (loaders off, no cache), loaders without
// cache, loaders with the Redis cache. Seeding takes a few seconds and happens only here:
//
//	DATABASE_URL=… REDIS_URL=… go test ./tests -run '^$' -bench Workloads -benchtime 3s -timeout 60m
//
// Each result reports req/s and the p50/p99 latency in milliseconds, plus SQL statements and
// cache hit rate per request; compare configurations with `benchstat -col /config`.
func BenchmarkWorkloads(b *testing.B) {
	databaseURL, redisURL := storetest.PostgresURL(b), storetest.RedisURL(b)
	prefix := storetest.RedisPrefix(b, redisURL)
	configs := []struct {
		name    string
		loaders loaders.Config
		noCache bool
	}{
		{"per-item", loaders.Config{PerItem: true}, true},
		{"loaders", loaders.DefaultConfig, true},
		{"loaders+redis", loaders.DefaultConfig, false},
	}
	envs := make([]*benchEnv, len(configs))
	for i, c := range configs {
		lc := c.loaders
		envs[i] = newBenchEnv(b, config{DatabaseURL: databaseURL, RedisURL: redisURL, RedisPrefix: prefix,
			Loaders: &lc, NoCache: c.noCache})
	}
	started := time.Now()
	shop := seedWorkloadShop(b, envs[0].svc.Store)
	b.Logf("seeded %d products, %d customers, %d items in %s", len(shop.ProductIDs), len(shop.CustomerIDs), shop.Items, time.Since(started).Round(time.Millisecond))

	token := func(id int64) string {
		t, err := envs[0].svc.Tokens.Issue(store.User{ID: id, Role: store.RoleCustomer})
		if err != nil {
			b.Fatal(err)
		}
		return t
	}
	w2Tokens := make([]string, 100)
	for i := range w2Tokens {
		w2Tokens[i] = token(shop.CustomerIDs[i])
	}
	w3Tokens := make([]string, 32)
	for i := range w3Tokens {
		w3Tokens[i] = token(shop.CustomerIDs[100+i])
	}
	hot := shop.ProductIDs[:20]

	workloads := []struct {
		name string
		req  func(worker, i int) benchRequest
	}{
		{"W1", func(_, _ int) benchRequest {
			return benchRequest{query: `{ products(first: 50) { nodes { id name price { amount currency } stock merchant { id name } } } }`}
		}},
		{"W2", func(_, i int) benchRequest {
			return benchRequest{token: w2Tokens[i%len(w2Tokens)],
				query: `{ me { orders(first: 20) { nodes { id status total { amount } items { quantity unitPrice { amount } product { name merchant { name } } } history { status at } } } } }`}
		}},
		{"W3", func(worker, i int) benchRequest {
			var lines []map[string]any
			for _, k := range []int{i, i + 7, i + 13} {
				lines = append(lines, map[string]any{"productId": gid("Product", hot[k%len(hot)]), "quantity": 1})
			}
			return benchRequest{token: w3Tokens[worker%len(w3Tokens)],
				query: `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id status total { amount } items { quantity product { name stock merchant { name } } } } userErrors { code message } } }`,
				vars:  map[string]any{"in": map[string]any{"items": lines}}}
		}},
	}
	for _, w := range workloads {
		for _, c := range []int{1, 8, 32} {
			for i, cfg := range configs {
				b.Run(fmt.Sprintf("%s/c=%d/config=%s", w.name, c, cfg.name), func(b *testing.B) {
					envs[i].drive(b, c, w.req)
				})
			}
		}
	}
}

type benchRequest struct {
	token, query string
	vars         map[string]any
}

// benchEnv is one configuration of the service behind a real HTTP server.
type benchEnv struct {
	svc    *service
	url    string
	client *http.Client
}

func newBenchEnv(b *testing.B, cfg config) *benchEnv {
	cfg.JWTSecret = []byte("benchmark-secret-of-at-least-32-bytes")
	svc, err := startService(context.Background(), cfg, nil)
	if err != nil {
		b.Fatalf("start service: %v", err)
	}
	srv := httptest.NewServer(svc.Handler())
	transport := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}
	b.Cleanup(func() { transport.CloseIdleConnections(); srv.Close(); svc.Close() })
	return &benchEnv{svc: svc, url: srv.URL + "/graphql", client: &http.Client{Transport: transport}}
}

// send posts one request and fails on a transport error, an HTTP error or any GraphQL or
// user error in the response.
func (e *benchEnv) send(req benchRequest) error {
	body, _ := json.Marshal(map[string]any{"query": req.query, "variables": req.vars})
	r, _ := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if req.token != "" {
		r.Header.Set("Authorization", "Bearer "+req.token)
	}
	resp, err := e.client.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) || bytes.Contains(raw, []byte(`"code"`)) {
		return fmt.Errorf("status %d: %.300s", resp.StatusCode, raw)
	}
	return nil
}

// drive sends b.N requests from c concurrent clients after a short warm-up, and reports
// throughput, latency percentiles, and statements and cache hit rate per request.
func (e *benchEnv) drive(b *testing.B, c int, next func(worker, i int) benchRequest) {
	run := func(n int, record bool) (lat []time.Duration, elapsed time.Duration) {
		var issued atomic.Int64
		var mu sync.Mutex
		var firstErr error
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < c; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for {
					i := int(issued.Add(1)) - 1
					if i >= n {
						break
					}
					t0 := time.Now()
					err := e.send(next(w, i))
					mine = append(mine, time.Since(t0))
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		elapsed = time.Since(start)
		if firstErr != nil {
			b.Fatal(firstErr)
		}
		return lat, elapsed
	}
	run(100+4*c, false) // warm: connections, plans, and the cache for every W2 customer
	before := e.svc.Store.Stats()
	b.ResetTimer()
	lat, elapsed := run(b.N, true)
	b.StopTimer()
	after := e.svc.Store.Stats()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(after.Statements-before.Statements)/float64(b.N), "stmts/req")
	if looked := (after.CacheHits - before.CacheHits) + (after.CacheMisses - before.CacheMisses); looked > 0 {
		b.ReportMetric(float64(after.CacheHits-before.CacheHits)/float64(looked), "hit-rate")
		b.ReportMetric(float64(after.CacheErrors-before.CacheErrors), "cache-errs")
	}
}
