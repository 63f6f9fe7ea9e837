package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// sentinelMaster is the name the test's Sentinels monitor.
const sentinelMaster = "shop"

// sentinelRedis is a Redis master, one replica and three Sentinels (quorum 2) that this test
// starts on free ports in a temp dir, every one announcing 127.0.0.1.
type sentinelRedis struct {
	t                       *testing.T
	dir                     string
	masterPort, replicaPort int
	sentinelPorts           []int
	mu                      sync.Mutex
	procs                   map[int]*exec.Cmd
}

func startSentinelRedis(t *testing.T) *sentinelRedis {
	t.Helper()
	storetest.RequireCommand(t, "redis-server", "redis-sentinel")
	s := &sentinelRedis{t: t, dir: t.TempDir(), procs: map[int]*exec.Cmd{}}
	t.Cleanup(s.stopAll)
	s.masterPort, s.replicaPort = freePort(t), freePort(t)
	s.server(s.masterPort)
	s.server(s.replicaPort, "--replicaof", "127.0.0.1", strconv.Itoa(s.masterPort))
	replica := s.client(s.replicaPort)
	waitFor(t, 15*time.Second, "the replica to sync with the master", func() bool {
		info, err := replica.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	// Started once the replica is attached: a Sentinel learns of replicas from the master's
	// INFO, which it asks for at once and then only every 10 s.
	for range 3 {
		port := freePort(t)
		conf := filepath.Join(s.dir, fmt.Sprintf("sentinel-%d.conf", port))
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel announce-ip 127.0.0.1\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %[3]s 1000\n"+
			"sentinel failover-timeout %[3]s 3000\nsentinel parallel-syncs %[3]s 1\n",
			port, s.dir, sentinelMaster, s.masterPort)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s.start(port, "redis-sentinel", conf)
		s.sentinelPorts = append(s.sentinelPorts, port)
	}
	// Each must know the replica, and the other two through their hello messages (every 2 s),
	// or there is no majority to authorise a failover.
	for _, port := range s.sentinelPorts {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addrOf(port)})
		waitFor(t, 30*time.Second, "every Sentinel to know the replica and the other Sentinels", func() bool {
			m, err := sc.Master(context.Background(), sentinelMaster).Result()
			return err == nil && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2"
		})
		_ = sc.Close()
	}
	return s
}

func addrOf(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// url is the REDIS_URL naming the three Sentinels.
func (s *sentinelRedis) url() string {
	addrs := make([]string, len(s.sentinelPorts))
	for i, p := range s.sentinelPorts {
		addrs[i] = addrOf(p)
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/" + sentinelMaster + "/0"
}

// server starts a redis-server on port; every address it announces is 127.0.0.1.
func (s *sentinelRedis) server(port int, args ...string) {
	s.t.Helper()
	s.start(port, "redis-server", append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--replica-announce-ip", "127.0.0.1"}, args...)...)
}

func (s *sentinelRedis) start(port int, name string, args ...string) {
	s.t.Helper()
	log, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("%s-%d.log", name, port)))
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	s.mu.Lock()
	s.procs[port] = cmd
	s.mu.Unlock()
	c := s.client(port)
	waitFor(s.t, 10*time.Second, name+" to answer", func() bool { return c.Ping(context.Background()).Err() == nil })
}

// client returns a plain client of the server on port, closed when the test ends.
func (s *sentinelRedis) client(port int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addrOf(port), MaxRetries: -1})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// kill ends the process on port with SIGKILL: no shutdown, no last save.
func (s *sentinelRedis) kill(port int) {
	s.mu.Lock()
	cmd := s.procs[port]
	delete(s.procs, port)
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// masterPortNow is the master's port as every Sentinel names it, 0 while they disagree.
func (s *sentinelRedis) masterPortNow() int {
	agreed := 0
	for i, p := range s.sentinelPorts {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addrOf(p)})
		addr, err := sc.GetMasterAddrByName(context.Background(), sentinelMaster).Result()
		_ = sc.Close()
		if err != nil || len(addr) != 2 {
			return 0
		}
		port, _ := strconv.Atoi(addr[1])
		if i > 0 && port != agreed {
			return 0
		}
		agreed = port
	}
	return agreed
}

func (s *sentinelRedis) stopAll() {
	if s.t.Failed() {
		for _, p := range s.sentinelPorts {
			if b, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("redis-sentinel-%d.log", p))); err == nil {
				s.t.Logf("sentinel %d:\n%s", p, b)
			}
		}
	}
	s.mu.Lock()
	ports := make([]int, 0, len(s.procs))
	for p := range s.procs {
		ports = append(ports, p)
	}
	s.mu.Unlock()
	for _, p := range ports {
		s.kill(p)
	}
}

// Phases of the failover test, as each request and commit records them.
const (
	beforeKill int32 = iota
	failingOver
	afterFailover
)

// committedEvent is a status change the test's writer saw committed.
type committedEvent struct {
	order  int
	status string
	phase  int32
}

// TestRedisSentinelFailover gives two services (each with its own clients and subscription,
// as two processes) the Sentinels of a master and its replica as REDIS_URL, and kills the
// master with SIGKILL while reads loop, subscribers on one watch every order and status
// changes are committed through the other. No read or write
// fails; the rate limit fails open meanwhile; each process's one subscription moves to the
// promoted replica; every event, those committed during the failover included, reaches
// each of its subscribers exactly once (orderStatusChanged in order); cache fills and rate
// limit buckets are written to the new master.
func TestRedisSentinelFailover(t *testing.T) {
	sr := startSentinelRedis(t)
	cfg := config{DatabaseURL: storetest.PostgresURL(t), RedisURL: sr.url(), RedisPrefix: storetest.Name("failover") + ":",
		RedisBreakerOpen: 300 * time.Millisecond,
		RateLimit:        guard.RateLimit{PointsPerMinute: 1_000_000, LoginFailuresPerAccount: 100}}
	liveConfig(&cfg)
	cfg.Live.PingInterval = time.Minute // the sockets are read at the end only
	cfg.AdminEmail, cfg.AdminPassword = "live-admin@shop.example", "live-admin-password"
	a, b := newTestEnv(t, cfg), newTestEnv(t, cfg) // subscribers and reads on a; changes through b
	channel := cfg.RedisPrefix + "order-events"

	merchant, customer, admin := b.signUp("MERCHANT"), b.signUp("CUSTOMER"), b.liveAdmin()
	product := b.createProduct(merchant, "Lamp", 1500, 100_000)
	cust, adm := a.connectSocket(customer.Token), a.connectSocket(admin.Token)
	cust.Subscribe("mine", subMine, nil)
	adm.Subscribe("all", subMine, nil)
	a.waitSubscribers(2)
	const orders = 40
	ids := make([]string, orders+1) // the last is moved only once the failover is over
	for i := range ids {
		ids[i] = b.placeOrder(customer, line{product, 1})
		cust.Subscribe("o"+strconv.Itoa(i), subOrder, map[string]any{"id": ids[i]})
	}
	a.waitSubscribers(2 + len(ids))

	var phase atomic.Int32
	var reads, readsFailingOver, readFailures atomic.Int64
	var firstReadFailure atomic.Value
	stopReads := repeatUntilStopped(3, func() {
		var r gqlResponse
		if reads.Add(1)%2 == 0 {
			r = a.anon().postNoFail(`query($id: ID!) { product(id: $id) { name stock merchant { name } } products(first: 5) { nodes { id merchant { id } } } }`,
				map[string]any{"id": product})
		} else {
			r = a.as(customer.Token).postNoFail(`{ me { name orders(first: 5) { nodes { id status items { product { name } } } } } }`, nil)
		}
		if phase.Load() == failingOver {
			readsFailingOver.Add(1)
		}
		if r.Status != 200 || len(r.Errors) > 0 || len(r.Data) == 0 {
			readFailures.Add(1)
			firstReadFailure.CompareAndSwap(nil, fmt.Sprintf("status %d errors %v", r.Status, r.Errors))
		}
	})
	defer stopReads()

	// The writer moves the first 40 orders a step at a time, through b, until told to stop.
	// While the master is gone it commits maxFailingOver changes and then waits: those all
	// reach each myOrderEvents subscriber at once when Redis is back (relay and catch-up),
	// and a burst beyond its buffer (64) would cut it off (1013) by design.
	const maxFailingOver = 30
	var mu sync.Mutex
	var committed []committedEvent
	var writeFailure atomic.Value
	stopWriter, writerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writerDone)
		failingOverCommits := 0
		for _, status := range []string{"PAID", "SHIPPED", "DELIVERED"} {
			for i := range orders {
				for {
					select {
					case <-stopWriter:
						return
					case <-time.After(25 * time.Millisecond):
					}
					if phase.Load() != failingOver || failingOverCommits < maxFailingOver {
						break
					}
				}
				if phase.Load() == failingOver {
					failingOverCommits++
				}
				r := b.as(admin.Token).postNoFail(`mutation($in: UpdateOrderStatusInput!) { updateOrderStatus(input: $in) { order { status } userErrors { code } } }`,
					map[string]any{"in": map[string]any{"id": ids[i], "status": status}})
				var out struct {
					UpdateOrderStatus *struct{ Order *struct{ Status string } }
				}
				if r.Status != 200 || len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil ||
					out.UpdateOrderStatus == nil || out.UpdateOrderStatus.Order == nil {
					writeFailure.CompareAndSwap(nil, fmt.Sprintf("order %d to %s: status %d errors %v data %s", i, status, r.Status, r.Errors, r.Data))
					return
				}
				mu.Lock()
				committed = append(committed, committedEvent{order: i, status: status, phase: phase.Load()})
				mu.Unlock()
			}
		}
	}()
	var stopOnce sync.Once
	stopWriting := func() {
		stopOnce.Do(func() { close(stopWriter) })
		<-writerDone
	}
	defer stopWriting()
	inPhase := func(p int32) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range committed {
			if c.phase == p {
				n++
			}
		}
		return n
	}
	writing := func() bool {
		select {
		case <-writerDone:
			return false
		default:
			return true
		}
	}

	waitFor(t, 20*time.Second, "reads and commits before the kill", func() bool {
		return !writing() || (reads.Load() >= 50 && inPhase(beforeKill) >= 10)
	})
	if !writing() {
		t.Fatalf("the writer stopped before the kill: %v", writeFailure.Load())
	}
	phase.Store(failingOver)
	killed := time.Now()
	sr.kill(sr.masterPort)
	waitFor(t, 30*time.Second, "the Sentinels to promote the replica", func() bool { return sr.masterPortNow() == sr.replicaPort })
	promoted := time.Since(killed)
	newMaster := sr.client(sr.replicaPort)
	// Each process's one subscription (a's and b's brokers) is on the new master.
	waitFor(t, 30*time.Second, "both processes' subscriptions on the new master", func() bool {
		n, err := newMaster.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && n[channel] == 2
	})
	resubscribed := time.Since(killed)
	phase.Store(afterFailover)
	waitFor(t, 30*time.Second, "reads and commits after the failover", func() bool {
		return !writing() || inPhase(afterFailover) >= 5
	})
	stopWriting()
	stopReads()

	if f := writeFailure.Load(); f != nil {
		t.Fatalf("a status change failed: %v", f)
	}
	if n := readFailures.Load(); n > 0 {
		t.Fatalf("%d of %d reads failed; first: %v", n, reads.Load(), firstReadFailure.Load())
	}
	during, after := inPhase(failingOver), inPhase(afterFailover)
	t.Logf("replica promoted %v after the kill, both subscriptions on it after %v; %d reads (%d while failing over); "+
		"%d changes committed before the kill, %d while failing over, %d after",
		promoted.Round(time.Millisecond), resubscribed.Round(time.Millisecond), reads.Load(), readsFailingOver.Load(),
		inPhase(beforeKill), during, after)
	if readsFailingOver.Load() == 0 || during == 0 || after == 0 {
		t.Fatalf("the load missed a phase: %d reads while failing over; %d commits while failing over, %d after (the writer ran out?)",
			readsFailingOver.Load(), during, after)
	}
	// The rate limit could not be asked while the master was gone: it let requests through.
	if n := metricValue(t, a, "shop_degraded_total", `feature="rate_limit"`); n == 0 {
		t.Errorf("no request was let through without the rate limit while the master was gone")
	}

	// Every committed event reaches each subscriber once: the 41 creations and the
	// changes on myOrderEvents, the changes of each order on its orderStatusChanged.
	mu.Lock()
	events := slices.Clone(committed)
	mu.Unlock()
	wantMine := map[string]int{}
	wantOrder := map[string][]string{}
	for _, id := range ids {
		wantMine[id+":PENDING"]++
	}
	for _, e := range events {
		wantMine[ids[e.order]+":"+e.status]++
		op := "o" + strconv.Itoa(e.order)
		wantOrder[op] = append(wantOrder[op], e.status)
	}
	gotCust, gotAdm := receiveEvents(t, cust, len(ids)+2*len(events)), receiveEvents(t, adm, len(ids)+len(events))
	cust.Quiet(time.Second)
	adm.Quiet(10 * time.Millisecond)
	gotMine := map[string]int{}
	gotOrder := map[string][]string{}
	for _, m := range gotCust {
		e := decodeLiveEvent(t, m)
		if m.ID == "mine" {
			gotMine[e.Order.ID+":"+e.Status]++
		} else {
			gotOrder[m.ID] = append(gotOrder[m.ID], e.Status)
		}
	}
	for op, want := range wantOrder {
		if !slices.Equal(gotOrder[op], want) {
			t.Errorf("orderStatusChanged %s = %v, want %v", op, gotOrder[op], want)
		}
	}
	if len(gotOrder) != len(wantOrder) {
		t.Errorf("events on %d orders, want %d", len(gotOrder), len(wantOrder))
	}
	gotAll := map[string]int{}
	for _, m := range gotAdm {
		e := decodeLiveEvent(t, m)
		gotAll[e.Order.ID+":"+e.Status]++
	}
	for name, got := range map[string]map[string]int{"customer's myOrderEvents": gotMine, "admin's myOrderEvents": gotAll} {
		for k, n := range got {
			if n != wantMine[k] {
				t.Errorf("%s: %s delivered %d times, want %d", name, k, n, wantMine[k])
			}
		}
		if len(got) != len(wantMine) {
			t.Errorf("%s: %d distinct events, want %d", name, len(got), len(wantMine))
		}
	}

	// A change committed now travels through the new master to both kinds of subscriber.
	final := len(ids) - 1
	b.moveOrderTo(admin, ids[final], "PAID")
	for _, c := range []*wsClient{cust, cust, adm} {
		m := c.Next(10 * time.Second)
		if e := decodeLiveEvent(t, m); e.Status != "PAID" || e.Order.ID != ids[final] {
			t.Fatalf("after the failover: %s %+v", m.ID, e)
		}
	}

	// Writes to Redis land on the new master: the bucket of a user who first called after the
	// failover, and the cache entry of a product first read after it.
	late := a.signUp("CUSTOMER")
	lateID := storetest.Count(t, a.svc.Store, "SELECT id FROM users WHERE email = '"+late.Email+"'")
	bucket := "rate:" + cfg.RedisPrefix + "cost:user:" + strconv.Itoa(lateID) // redis_rate prefixes "rate:"
	lateProduct := a.createProduct(merchant, "Late lamp", 1700, 5)
	productID := storetest.Count(t, a.svc.Store, "SELECT id FROM products WHERE name = 'Late lamp'")
	entry := cfg.RedisPrefix + "cache:" + store.CacheSchema + ":product:" + strconv.Itoa(productID)
	waitFor(t, 10*time.Second, "a rate-limit bucket and a cache entry on the new master", func() bool {
		a.as(late.Token).postNoFail(`{ me { id } }`, nil)
		a.anon().postNoFail(`query($id: ID!) { product(id: $id) { name } }`, map[string]any{"id": lateProduct})
		n, err := newMaster.Exists(context.Background(), bucket, entry).Result()
		return err == nil && n == 2
	})

	t.Logf("relayed %d events; %d publications failed", a.svc.LiveStats().Relayed+b.svc.LiveStats().Relayed, b.svc.LiveStats().PublishFailures)
}

// receiveEvents returns the next n event messages on c, failing the test with what did
// arrive when they do not all come within 20 s.
func receiveEvents(t *testing.T, c *wsClient, n int) []wsMsg {
	t.Helper()
	var got []wsMsg
	deadline := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case m, ok := <-c.Msgs:
			if !ok {
				t.Fatalf("socket closed after %d of %d events: %v", len(got), n, c.Err())
			}
			switch m.Type {
			case "ping":
				c.Send(map[string]any{"type": "pong"})
			case "ka", "pong":
			default:
				got = append(got, m)
			}
		case <-deadline:
			byOp := map[string]int{}
			for _, m := range got {
				byOp[m.ID]++
			}
			t.Fatalf("%d of %d events arrived: %v", len(got), n, byOp)
		}
	}
	return got
}

// TestCacheInvalidationWaitsForTheReplica checks that through Sentinel an invalidation counts
// only once a replica holds it (WAIT): a master that died before replicating a tombstone would
// hand its promoted replica the entry the tombstone replaced, stale for the cache's TTL. With
// the replica stopped (SIGSTOP), the invalidation is not acknowledged: it is counted as a
// cache failure and retried, and this process reads the product from the database meanwhile.
func TestCacheInvalidationWaitsForTheReplica(t *testing.T) {
	sr := startSentinelRedis(t)
	env := newTestEnv(t, config{DatabaseURL: storetest.PostgresURL(t), RedisURL: sr.url(),
		RedisPrefix: storetest.Name("acks") + ":"})
	merchant := env.signUp("MERCHANT")
	product := env.createProduct(merchant, "Kettle", 1500, 10)
	env.product(product) // in the cache now
	env.product(product)
	update := func(price int) {
		t.Helper()
		var out struct{ UpdateProduct mutationPayload }
		env.as(merchant.Token).must(opUpdateProduct, map[string]any{"in": map[string]any{"id": product, "price": price}}, &out)
	}
	update(1600) // replicated at once: no failure
	if n := metricValue(t, env, "shop_cache_errors_total"); n != 0 {
		t.Fatalf("shop_cache_errors_total = %v with the replica attached, want 0", n)
	}

	sr.mu.Lock()
	replica := sr.procs[sr.replicaPort].Process
	sr.mu.Unlock()
	if err := replica.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = replica.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	update(1700)
	if n := metricValue(t, env, "shop_cache_errors_total"); n < 1 {
		t.Fatalf("shop_cache_errors_total = %v after an invalidation no replica acknowledged, want ≥ 1", n)
	}
	if got := env.product(product).Price.Amount; got != 1700 {
		t.Fatalf("price = %d while the invalidation is unacknowledged, want 1700", got)
	}
}
