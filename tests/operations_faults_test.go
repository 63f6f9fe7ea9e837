package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/store/storetest"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 50 ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ownRedis is a redis-server this test starts, kills and restarts on one port.
type ownRedis struct {
	port int
	cmd  *exec.Cmd
}

func startOwnRedis(t *testing.T) *ownRedis {
	t.Helper()
	storetest.RequireCommand(t, "redis-server")
	r := &ownRedis{port: freePort(t)}
	r.start(t)
	t.Cleanup(r.kill)
	return r
}

func (r *ownRedis) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

func (r *ownRedis) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port)})
	defer rdb.Close()
	waitFor(t, 10*time.Second, "redis-server to answer", func() bool {
		return rdb.Ping(context.Background()).Err() == nil
	})
}

func (r *ownRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

func (e *testEnv) status(path string) int {
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRedisOutage kills the service's Redis in the middle of a read load: reads keep
// answering without a single 5xx or error, the breaker fails Redis calls fast instead of
// waiting on them, writes go on, /readyz reports Redis, and all recovers when Redis returns.
func TestRedisOutage(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			rs := startOwnRedis(t)
			cfg := b.config(t)
			cfg.RedisURL, cfg.RedisPrefix = rs.url(), "faults:"
			cfg.RedisBreakerOpen = 300 * time.Millisecond
			cfg.RateLimit = guard.RateLimit{PointsPerMinute: 1_000_000, LoginFailuresPerAccount: 100}
			env := newTestEnv(t, cfg)
			merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
			product := env.createProduct(merchant, "Lamp", 1500, 1000)

			var requests, failures atomic.Int64
			var firstFailure atomic.Value
			stop := repeatUntilStopped(4, func() {
				r := env.anon().postNoFail(`query($id: ID!) { product(id: $id) { name merchant { name } } products(first: 5) { nodes { id merchant { id } } } }`,
					map[string]any{"id": product})
				requests.Add(1)
				if r.Status >= 500 || len(r.Errors) > 0 {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("status %d errors %v", r.Status, r.Errors))
				}
			})
			waitFor(t, 10*time.Second, "load before the outage", func() bool { return requests.Load() >= 50 })
			rs.kill()
			before := requests.Load()
			waitFor(t, 20*time.Second, "load during the outage", func() bool { return requests.Load() >= before+200 })
			// Writes go on without Redis.
			order := env.placeOrder(customer, line{product, 1})
			if env.status("/readyz") != http.StatusServiceUnavailable {
				t.Errorf("/readyz is not 503 while Redis is down")
			}
			rejected := metricValue(t, env, "shop_redis_breaker_rejected_total")
			stop()
			if n := failures.Load(); n > 0 {
				t.Fatalf("%d of %d reads failed during the Redis outage; first: %v", n, requests.Load(), firstFailure.Load())
			}
			if rejected == 0 {
				t.Errorf("the breaker never failed a Redis call fast: every call waited on the dead server")
			}

			rs.start(t)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("breaker state %v, ping: %v", metricValue(t, env, "shop_redis_breaker_state"), env.svc.Redis.Ping(context.Background()).Err())
				}
			})
			waitFor(t, 20*time.Second, "/readyz after Redis returned", func() bool { return env.status("/readyz") == http.StatusOK })
			var out struct{ Order struct{ ID string } }
			env.as(customer.Token).must(`query($id: ID!) { order(id: $id) { id } }`, map[string]any{"id": order}, &out)
			if out.Order.ID != order {
				t.Errorf("order placed during the outage: got %q", out.Order.ID)
			}
		})
	}
}

// postNoFail is post without failing the test on a non-JSON body (it runs off the test's
// goroutine): such a response comes back with Status set and no data.
func (c *client) postNoFail(query string, vars map[string]any) gqlResponse {
	body := mustJSON(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, c.env.srv.URL+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return gqlResponse{Status: 0, Errors: []gqlError{{Message: err.Error()}}}
	}
	defer resp.Body.Close()
	out := gqlResponse{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		out.Errors = append(out.Errors, gqlError{Message: "body not JSON: " + err.Error()})
	}
	out.Status = resp.StatusCode
	return out
}

// ownPostgres is a PostgreSQL cluster this test creates, stops and restarts.
type ownPostgres struct {
	bin, dir, sock string
	port           int
	uid, gid       int
}

func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	storetest.Require(t, len(bins) > 0, "PostgreSQL server binaries are not installed: own-PostgreSQL fault test skipped")
	p := &ownPostgres{bin: filepath.Dir(bins[len(bins)-1]), port: freePort(t), uid: -1}
	dir, err := os.MkdirTemp("", "shop-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p.dir, p.sock = filepath.Join(dir, "data"), dir
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		u, err := user.Lookup("postgres")
		storetest.Require(t, err == nil, "running as root without a postgres user: own-PostgreSQL fault test skipped")
		p.uid, _ = strconv.Atoi(u.Uid)
		p.gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(dir, p.uid, p.gid); err != nil {
			t.Fatal(err)
		}
	}
	p.run(t, "initdb", "-D", p.dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	p.start(t)
	t.Cleanup(func() { _ = p.command("pg_ctl", "-D", p.dir, "-m", "immediate", "-w", "stop").Run() })
	return p
}

func (p *ownPostgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

func (p *ownPostgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	if p.uid >= 0 {
		cmd.Args = append([]string{"runuser", "-u", "postgres", "--", cmd.Path}, args...)
		cmd.Path, _ = exec.LookPath("runuser")
	}
	return cmd
}

func (p *ownPostgres) run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := p.command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func (p *ownPostgres) start(t *testing.T) {
	t.Helper()
	p.run(t, "pg_ctl", "-D", p.dir, "-l", filepath.Join(p.sock, "log"), "-w", "-t", "30", "start", "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", p.port, p.sock))
}

func (p *ownPostgres) stop(t *testing.T) {
	t.Helper()
	p.run(t, "pg_ctl", "-D", p.dir, "-m", "fast", "-w", "stop")
}

// TestPostgresRestart stops the database under a stream of orders and starts it again:
// while it is down requests fail with a masked error and /readyz says so; afterwards the
// same process serves again without a restart, and every order it confirmed is there.
func TestPostgresRestart(t *testing.T) {
	storetest.RequireCommand(t, "runuser")
	pg := startOwnPostgres(t)
	env := newTestEnv(t, config{DatabaseURL: pg.url(), StatementTimeout: 2 * time.Second})
	merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
	const stock = 1000
	product := env.createProduct(merchant, "Kettle", 2500, stock)

	var mu sync.Mutex
	var confirmed []string
	var attempts, failed, serverErrors, saidUnavailable atomic.Int64
	var lastFailure atomic.Value
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last failure: %v", lastFailure.Load())
		}
	})
	stop := repeatUntilStopped(3, func() {
		r := env.as(customer.Token).postNoFail(`mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id } userErrors { code } } }`,
			map[string]any{"in": map[string]any{"items": []any{map[string]any{"productId": product, "quantity": 1}}}})
		attempts.Add(1)
		var out struct {
			PlaceOrder *struct{ Order *struct{ ID string } }
		}
		if r.Status >= 500 {
			serverErrors.Add(1)
		}
		if len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil || out.PlaceOrder == nil || out.PlaceOrder.Order == nil {
			failed.Add(1)
			lastFailure.Store(fmt.Sprintf("status %d errors %v data %s", r.Status, r.Errors, r.Data))
			for _, e := range r.Errors {
				if c := e.Extensions["code"]; c != guard.CodeInternal {
					serverErrors.Add(1) // anything but the masked internal error is wrong here
				}
				if strings.Contains(e.Message, "temporarily unavailable") {
					saidUnavailable.Add(1)
				}
			}
			time.Sleep(20 * time.Millisecond)
			return
		}
		mu.Lock()
		confirmed = append(confirmed, out.PlaceOrder.Order.ID)
		mu.Unlock()
	})
	waitFor(t, 20*time.Second, "orders before the stop", func() bool { return attempts.Load() >= 10 })
	pg.stop(t)
	waitFor(t, 20*time.Second, "/readyz to fail", func() bool { return env.status("/readyz") == http.StatusServiceUnavailable })
	down := failed.Load()
	waitFor(t, 20*time.Second, "failures while down", func() bool { return failed.Load() >= down+5 })
	pg.start(t)
	waitFor(t, 30*time.Second, "/readyz after the restart", func() bool { return env.status("/readyz") == http.StatusOK })
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(confirmed) }
	after := count()
	waitFor(t, 30*time.Second, "orders after the restart", func() bool { return count() >= after+5 })
	stop()
	if n := serverErrors.Load(); n > 0 {
		t.Errorf("%d responses were 5xx or carried an unmasked error", n)
	}
	if saidUnavailable.Load() == 0 {
		t.Errorf("no error told the client the service was temporarily unavailable")
	}

	// Every confirmed order is there, and the stock agrees with the orders that exist.
	for _, id := range confirmed {
		var out struct{ Order *struct{ ID string } }
		env.as(customer.Token).must(`query($id: ID!) { order(id: $id) { id } }`, map[string]any{"id": id}, &out)
		if out.Order == nil {
			t.Fatalf("confirmed order %s is lost", id)
		}
	}
	var out struct {
		Orders  struct{ TotalCount int }
		Product struct{ Stock int }
	}
	env.as(customer.Token).must(`query($p: ID!) { orders { totalCount } product(id: $p) { stock } }`, map[string]any{"p": product}, &out)
	if out.Orders.TotalCount < len(confirmed) || out.Product.Stock != stock-out.Orders.TotalCount {
		t.Errorf("%d confirmed, %d orders stored, stock %d of %d", len(confirmed), out.Orders.TotalCount, out.Product.Stock, stock)
	}
	t.Logf("%d attempts, %d confirmed, %d failed while the database was down", attempts.Load(), len(confirmed), failed.Load())
}
