package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shop/api/store/storetest"
)

// startOwnReplica makes a streaming replica of primary (pg_basebackup -R) and starts it on
// a port of its own; it inherits the primary's ALTER SYSTEM settings.
func startOwnReplica(t *testing.T, primary *ownPostgres) *ownPostgres {
	t.Helper()
	_, err := os.Stat(filepath.Join(primary.bin, "pg_basebackup"))
	storetest.Require(t, err == nil, "pg_basebackup is not installed: read replica test skipped")
	r := &ownPostgres{bin: primary.bin, port: freePort(t), uid: primary.uid, gid: primary.gid}
	dir, err := os.MkdirTemp("", "shop-pg-replica-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if r.uid >= 0 {
		if err := os.Chown(dir, r.uid, r.gid); err != nil {
			t.Fatal(err)
		}
	}
	r.dir, r.sock = filepath.Join(dir, "data"), dir
	r.run(t, "pg_basebackup", "-h", "127.0.0.1", "-p", fmt.Sprint(primary.port), "-U", "postgres",
		"-D", r.dir, "-R", "-X", "stream", "--no-sync")
	r.start(t)
	t.Cleanup(func() { _ = r.command("pg_ctl", "-D", r.dir, "-m", "immediate", "-w", "stop").Run() })
	return r
}

// sql runs one statement on the server and scans its single row into dest.
func (p *ownPostgres) sql(t *testing.T, query string, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatalf("connect to port %d: %v", p.port, err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, query).Scan(dest...); err != nil {
		t.Fatalf("%s on port %d: %v", query, p.port, err)
	}
}

// logged counts the statements the server logged (log_statement = all) that contain text.
func (p *ownPostgres) logged(t *testing.T, text string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.sock, "log"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "LOG:") && strings.Contains(line, text) {
			n++
		}
	}
	return n
}

// waitReplayed waits until replica has replayed everything primary wrote so far.
func waitReplayed(t *testing.T, primary, replica *ownPostgres) {
	t.Helper()
	var lsn string
	primary.sql(t, "SELECT pg_current_wal_insert_lsn()::text", &lsn)
	waitFor(t, 30*time.Second, "the replica to replay "+lsn, func() bool {
		var done bool
		replica.sql(t, "SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'::pg_lsn", &done)
		return done
	})
}

// The statements of the reads the test routes, as the servers log them.
const (
	productsPage  = `FROM "products" ORDER BY id DESC LIMIT`
	productsCount = `SELECT count(*) FROM "products"`
	ordersPage    = `FROM "orders" WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT`
	anyWrite      = `INSERT INTO`
)

const (
	productsQuery = `{ products(first: 5) { totalCount nodes { id name } } }`
	ordersQuery   = `{ orders(first: 10) { totalCount nodes { id } } }`
)

// TestReadReplicas runs the service on its own primary and streaming replica, and checks
// on each server's statement log where reads and writes go: loaders and lists on the
// replica, writes on the primary; a customer's orders right after they placed one, through
// another process, with the replica's replay paused; a replica paused beyond the lag bound,
// then stopped under load: skipped, with no client error; Redis down, signed-in callers'
// reads on the primary.
func TestReadReplicas(t *testing.T) {
	storetest.RequireCommand(t, "runuser")
	primary := startOwnPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, primary.url())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET log_statement = 'all'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	replica := startOwnReplica(t, primary)
	var ok bool

	redisURL := storetest.RedisURL(t)
	prefix := storetest.RedisPrefix(t, redisURL)
	// a and b are two processes of one service; c is another with a lag bound the paused
	// replica soon exceeds. a and b never find the replica lagging.
	cfg := config{DatabaseURL: primary.url(), RedisURL: redisURL, RedisPrefix: prefix,
		ReplicaURLs: []string{replica.url()}, ReplicaMaxLag: time.Hour, ReplicaCheckInterval: 50 * time.Millisecond}
	a, b := newTestEnv(t, cfg), newTestEnv(t, cfg)
	cfg.ReplicaMaxLag = 300 * time.Millisecond
	c := newTestEnv(t, cfg)
	healthy := func(env *testEnv) bool { return env.svc.Store.Stats().Replicas[0].Healthy }

	merchant, customer, other := a.signUp("MERCHANT"), a.signUp("CUSTOMER"), a.signUp("CUSTOMER")
	product := a.createProduct(merchant, "Kettle", 2500, 1000)
	a.placeOrder(customer, line{product, 1})
	a.placeOrder(other, line{product, 1})
	waitReplayed(t, primary, replica)
	for _, env := range []*testEnv{a, b, c} {
		waitFor(t, 30*time.Second, "the replica to serve reads", func() bool { return healthy(env) })
	}
	if v := metricValue(t, a, "shop_db_replica_healthy", fmt.Sprintf(`replica="127.0.0.1:%d"`, replica.port)); v != 1 {
		t.Errorf("shop_db_replica_healthy = %v, want 1", v)
	}

	t.Run("lists on the replica, writes on the primary", func(t *testing.T) {
		pPage, rPage, rCount := primary.logged(t, productsPage), replica.logged(t, productsPage), replica.logged(t, productsCount)
		for _, env := range []*testEnv{a, b} {
			var out struct{ Products struct{ TotalCount int } }
			env.anon().must(productsQuery, nil, &out)
			if out.Products.TotalCount != 1 {
				t.Errorf("totalCount %d, want 1", out.Products.TotalCount)
			}
		}
		if got := replica.logged(t, productsPage) - rPage; got != 2 {
			t.Errorf("replica served %d product pages, want 2", got)
		}
		if got := replica.logged(t, productsCount) - rCount; got != 2 {
			t.Errorf("replica served %d product counts, want 2", got)
		}
		if got := primary.logged(t, productsPage) - pPage; got != 0 {
			t.Errorf("primary served %d product pages, want 0", got)
		}
		if n := replica.logged(t, anyWrite); n != 0 {
			t.Errorf("the replica was sent %d writes", n)
		}
		if n := primary.logged(t, `INSERT INTO "orders"`); n != 2 {
			t.Errorf("the primary logged %d orders placed, want 2", n)
		}
	})

	t.Run("read your writes through another process, replica paused", func(t *testing.T) {
		replica.sql(t, "SELECT pg_wal_replay_pause()::text IS NULL", &ok)
		// The mutation's own payload reads the order's items and history after the write.
		var placed struct {
			PlaceOrder struct {
				Order struct {
					ID      string
					Items   []struct{ Quantity int }
					History []struct{ Status string }
				}
			}
		}
		a.as(customer.Token).must(`mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id items { quantity } history { status } } } }`,
			map[string]any{"in": map[string]any{"items": []any{map[string]any{"productId": product, "quantity": 2}}}}, &placed)
		order := placed.PlaceOrder.Order
		if len(order.Items) != 1 || order.Items[0].Quantity != 2 || len(order.History) != 1 || order.History[0].Status != "PENDING" {
			t.Errorf("placeOrder's payload, read after the write: %+v", order)
		}
		var onPrimary, onReplica int
		primary.sql(t, "SELECT count(*) FROM orders", &onPrimary)
		replica.sql(t, "SELECT count(*) FROM orders", &onReplica)
		if onReplica >= onPrimary {
			t.Fatalf("the paused replica has %d orders, the primary %d: nothing to prove", onReplica, onPrimary)
		}
		pPage, rPage := primary.logged(t, ordersPage), replica.logged(t, ordersPage)
		var out struct {
			Orders struct {
				TotalCount int
				Nodes      []struct{ ID string }
			}
		}
		b.as(customer.Token).must(ordersQuery, nil, &out)
		if out.Orders.TotalCount != 2 || len(out.Orders.Nodes) != 2 || out.Orders.Nodes[0].ID != order.ID {
			t.Errorf("right after placing %s through a, b lists %+v", order.ID, out.Orders)
		}
		if got := primary.logged(t, ordersPage) - pPage; got != 1 {
			t.Errorf("primary served %d order pages, want 1", got)
		}
		if got := replica.logged(t, ordersPage) - rPage; got != 0 {
			t.Errorf("the paused replica served %d order pages, want 0", got)
		}
		// Someone who wrote nothing since the replica replayed it still reads the replica.
		waitFor(t, 10*time.Second, "another customer's orders from the replica", func() bool {
			before := replica.logged(t, ordersPage)
			b.as(other.Token).must(ordersQuery, nil, &out)
			return out.Orders.TotalCount == 1 && replica.logged(t, ordersPage) == before+1
		})
	})

	t.Run("lagging beyond the bound", func(t *testing.T) {
		// The replica is still paused behind the order above; c's bound is 300 ms.
		waitFor(t, 30*time.Second, "c to skip the lagging replica", func() bool { return !healthy(c) })
		if !healthy(a) {
			t.Errorf("a, with a bound of an hour, skips the replica too")
		}
		if v := metricValue(t, c, "shop_db_replica_healthy"); v != 0 {
			t.Errorf("shop_db_replica_healthy = %v on c, want 0", v)
		}
		pPage, rPage := primary.logged(t, productsPage), replica.logged(t, productsPage)
		var out struct{ Products struct{ TotalCount int } }
		c.anon().must(productsQuery, nil, &out)
		if got := primary.logged(t, productsPage) - pPage; got != 1 || replica.logged(t, productsPage) != rPage {
			t.Errorf("with the replica lagging, %d product pages on the primary and %d on the replica, want 1 and 0",
				got, replica.logged(t, productsPage)-rPage)
		}
		replica.sql(t, "SELECT pg_wal_replay_resume()::text IS NULL", &ok)
		waitFor(t, 30*time.Second, "c to use the replica again", func() bool { return healthy(c) })
		rPage = replica.logged(t, productsPage)
		c.anon().must(productsQuery, nil, &out)
		if got := replica.logged(t, productsPage) - rPage; got != 1 {
			t.Errorf("caught up, the replica served %d product pages, want 1", got)
		}
	})

	t.Run("replica stopped under load", func(t *testing.T) {
		waitReplayed(t, primary, replica)
		var requests, failed atomic.Int64
		var lastFailure atomic.Value
		stop := repeatUntilStopped(4, func() {
			query, caller := productsQuery, a.anon()
			if requests.Add(1)%2 == 0 {
				query, caller = ordersQuery, a.as(other.Token)
			}
			if r := caller.postNoFail(query, nil); r.Status != 200 || len(r.Errors) > 0 {
				failed.Add(1)
				lastFailure.Store(fmt.Sprintf("status %d errors %v", r.Status, r.Errors))
			}
		})
		defer stop()
		stats := func() (replicaReads, primaryReads int64) {
			st := a.svc.Store.Stats()
			return st.Replicas[0].Reads, st.PrimaryReads
		}
		r0, _ := stats()
		waitFor(t, 30*time.Second, "reads on the replica", func() bool { r, _ := stats(); return r >= r0+20 })
		r1, p0 := stats()
		replica.run(t, "pg_ctl", "-D", replica.dir, "-m", "immediate", "-w", "stop")
		_, p1 := stats()
		waitFor(t, 30*time.Second, "reads on the primary", func() bool { _, p := stats(); return p >= p1+40 })
		stop()
		if healthy(a) {
			t.Errorf("the stopped replica still counts as healthy")
		}
		if n := failed.Load(); n > 0 {
			t.Errorf("%d of %d requests failed; last: %v", n, requests.Load(), lastFailure.Load())
		}
		_, p := stats()
		t.Logf("%d requests; reads before the stop: %d on the replica, %d on the primary; after: %d on the primary, %d failed on the replica and ran again on the primary",
			requests.Load(), r1, p0, p-p0, a.svc.Store.Stats().Replicas[0].Failures)

		// Started again, it catches up and serves reads again.
		replica.start(t)
		waitFor(t, 30*time.Second, "the restarted replica to serve reads", func() bool { return healthy(a) })
		rPage := replica.logged(t, productsPage)
		var out struct{ Products struct{ TotalCount int } }
		a.anon().must(productsQuery, nil, &out)
		if got := replica.logged(t, productsPage) - rPage; got != 1 {
			t.Errorf("the restarted replica served %d product pages, want 1", got)
		}
	})

	t.Run("Redis down: signed-in callers read the primary", func(t *testing.T) {
		// Their marks are unknown then; anonymous callers, who have none, keep the replica.
		own := startOwnRedis(t)
		d := newTestEnv(t, config{DatabaseURL: primary.url(), RedisURL: own.url(), ReplicaURLs: []string{replica.url()},
			ReplicaMaxLag: time.Hour, ReplicaCheckInterval: 50 * time.Millisecond})
		waitFor(t, 30*time.Second, "d to use the replica", func() bool { return healthy(d) })
		var out struct{ Orders struct{ TotalCount int } }
		waitFor(t, 10*time.Second, "a customer's orders from the replica", func() bool {
			before := replica.logged(t, ordersPage)
			d.as(other.Token).must(ordersQuery, nil, &out)
			return replica.logged(t, ordersPage) == before+1
		})
		own.kill()
		pPage, rPage := primary.logged(t, ordersPage), replica.logged(t, ordersPage)
		d.as(other.Token).must(ordersQuery, nil, &out)
		if out.Orders.TotalCount != 1 || primary.logged(t, ordersPage) != pPage+1 || replica.logged(t, ordersPage) != rPage {
			t.Errorf("with Redis down: %d orders, %d pages on the primary and %d on the replica, want 1, 1 and 0",
				out.Orders.TotalCount, primary.logged(t, ordersPage)-pPage, replica.logged(t, ordersPage)-rPage)
		}
		rPage = replica.logged(t, productsPage)
		var products struct{ Products struct{ TotalCount int } }
		d.anon().must(productsQuery, nil, &products)
		if got := replica.logged(t, productsPage) - rPage; got != 1 {
			t.Errorf("with Redis down, the replica served %d anonymous product pages, want 1", got)
		}
	})
}
