package tests

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// cacheSharedBackends are two server processes' configurations on one database and one Redis:
// PostgreSQL with the real Redis, and the embedded SQLite file with a miniredis both use.
var cacheSharedBackends = []backend{
	{"embedded", func(t *testing.T) config {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mr.Close)
		return config{SQLitePath: storetest.SQLitePath(t), RedisURL: "redis://" + mr.Addr(), RedisPrefix: "shop:"}
	}},
	backends[1],
}

type cachedProduct struct {
	Product struct {
		Name  string
		Stock int
		Price struct{ Amount int }
	}
}

const queryCachedProduct = `query($id: ID!) { product(id: $id) { name stock price { amount } } }`

// TestCacheInvalidationAcrossProcesses: a product updated through one process reads back
// new through another at once, while other clients keep reading it there.
func TestCacheInvalidationAcrossProcesses(t *testing.T) {
	t.Parallel()
	for _, b := range cacheSharedBackends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			writer, reader := newTestEnv(t, cfg), newTestEnv(t, cfg)
			merchant := writer.signUp("MERCHANT")
			id := writer.createProduct(merchant, "Kettle", 1000, 5)

			// Readers on the reader process all along, racing their fills with the updates.
			stop := repeatUntilStopped(4, func() {
				reader.anon().post(queryCachedProduct, map[string]any{"id": id})
			})
			defer stop()

			for i := 1; i <= 20; i++ {
				var before cachedProduct
				reader.anon().must(queryCachedProduct, map[string]any{"id": id}, &before)
				price := 1000 + i
				var out struct {
					UpdateProduct struct{ UserErrors []map[string]any }
				}
				writer.as(merchant.Token).must(`mutation($id: ID!, $p: Int!) { updateProduct(input: {id: $id, price: $p}) { userErrors { code } } }`,
					map[string]any{"id": id, "p": price}, &out)
				if len(out.UpdateProduct.UserErrors) > 0 {
					t.Fatalf("update: %v", out.UpdateProduct.UserErrors)
				}
				for _, env := range []*testEnv{reader, writer} {
					var after cachedProduct
					env.anon().must(queryCachedProduct, map[string]any{"id": id}, &after)
					if after.Product.Price.Amount != price {
						t.Fatalf("round %d: read %d after writing %d (before: %d)", i, after.Product.Price.Amount, price, before.Product.Price.Amount)
					}
				}
			}
			if st := reader.svc.Store.Stats(); st.CacheHits == 0 {
				t.Fatalf("the reader never hit the cache: %+v", st)
			}
		})
	}
}

// TestCacheStampede: concurrent cold reads of one product reach the database once.
func TestCacheStampede(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			env := newCostEnv(t, b.config(t), true)
			seeded := storetest.Seed(t, env.svc.Store, storetest.Shop{Merchants: 1, ProductsPerMerchant: 3, Stock: 10})
			id := gid("Product", seeded.ProductIDs[1])
			const readers = 16
			var wg sync.WaitGroup
			var productReads atomic.Int64
			start := make(chan struct{})
			for i := 0; i < readers; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, rep := env.measure(t, "", queryCachedProduct, map[string]any{"id": id})
					for _, table := range tablesOf(rep) {
						if table == "products" {
							productReads.Add(1)
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			if n := productReads.Load(); n != 1 {
				t.Fatalf("%d concurrent cold reads read the product from the database %d times, want once", readers, n)
			}
		})
	}
}

// TestCacheRedisOutage: with the Redis server stopped, reads answer correctly from the
// database and a write made meanwhile shows at once; once Redis is back, the cache serves
// again.
func TestCacheRedisOutage(t *testing.T) {
	t.Parallel()
	storetest.RequireCommand(t, "redis-server")
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			srv := startCacheRedis(t)
			cfg := b.config(t)
			cfg.RedisURL, cfg.RedisPrefix = srv.url(), "shop:"
			env := newCostEnv(t, cfg, true)
			seeded := seedPages(t, env)
			customer := env.tokenFor(t, seeded.CustomerIDs[0], store.RoleCustomer)
			merchant := env.tokenFor(t, seeded.MerchantIDs[0], store.RoleMerchant)
			vars := map[string]any{"n": 20}
			w1, _ := env.measure(t, "", queryW1, vars)
			w2, _ := env.measure(t, customer, queryW2, vars)
			// A product read by ID goes through the cache on both backends (W1 and W2 read
			// theirs along with their pages on PostgreSQL).
			byID := func() loaders.Report {
				_, rep := env.measure(t, "", queryCachedProduct, map[string]any{"id": gid("Product", seeded.ProductIDs[1])})
				return rep
			}
			if byID(); byID().CacheHits == 0 {
				t.Fatalf("cache not in use before the outage")
			}

			srv.stop(t)
			for i := 0; i < 3; i++ {
				again, rep := env.measure(t, "", queryW1, vars)
				if string(again.Data) != string(w1.Data) || rep.CacheHits != 0 {
					t.Fatalf("W1 without Redis: %d hits, data %s", rep.CacheHits, again.Data)
				}
				again, _ = env.measure(t, customer, queryW2, vars)
				if string(again.Data) != string(w2.Data) {
					t.Fatalf("W2 without Redis: %s", again.Data)
				}
			}
			// A write while Redis is down: its invalidation waits for Redis, reads see it.
			product := gid("Product", seeded.ProductIDs[0])
			env.as(merchant).must(`mutation($id: ID!) { updateProduct(input: {id: $id, name: "Renamed while Redis was down"}) { userErrors { code } } }`,
				map[string]any{"id": product}, nil)
			var read cachedProduct
			env.anon().must(queryCachedProduct, map[string]any{"id": product}, &read)
			if read.Product.Name != "Renamed while Redis was down" {
				t.Fatalf("read %q after the update", read.Product.Name)
			}

			// Redis back (empty): the cache serves again, and the renamed product stays renamed.
			srv.start(t)
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if byID(); byID().CacheHits > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the cache never served again after Redis came back")
				}
			}
			for i := 0; i < 2; i++ {
				env.anon().must(queryCachedProduct, map[string]any{"id": product}, &read)
				if read.Product.Name != "Renamed while Redis was down" {
					t.Fatalf("read %q once Redis was back", read.Product.Name)
				}
			}

		})
	}
}

// cacheRedis is a redis-server process of the test's own, on a free port.
type cacheRedis struct {
	port int
	cmd  *exec.Cmd
}

func startCacheRedis(t *testing.T) *cacheRedis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &cacheRedis{port: l.Addr().(*net.TCPAddr).Port}
	_ = l.Close()
	s.start(t)
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *cacheRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *cacheRedis) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	opts, _ := redis.ParseURL(s.url())
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %d does not answer: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *cacheRedis) stop(t *testing.T) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
