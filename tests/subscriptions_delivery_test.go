package tests

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/live/socket/sockettest"
	"github.com/shop/api/store/storetest"
)

// Delivery across processes and through Redis outages.

// sharedLiveConfig returns a PostgreSQL + Redis configuration that several services can share.
func sharedLiveConfig(t *testing.T, redisURL string) config {
	t.Helper()
	if redisURL == "" {
		redisURL = storetest.RedisURL(t)
	}
	cfg := config{DatabaseURL: storetest.PostgresURL(t), RedisURL: redisURL, RedisPrefix: storetest.RedisPrefix(t, redisURL)}
	liveConfig(&cfg)
	cfg.AdminEmail, cfg.AdminPassword = "live-admin@shop.example", "live-admin-password"
	return cfg
}

func TestEventsReachSubscribersOfAnotherProcessOnceAndInOrder(t *testing.T) {
	t.Parallel()
	cfg := sharedLiveConfig(t, "")
	a, b := newTestEnv(t, cfg), newTestEnv(t, cfg)
	s := b.newLiveShop()
	admin := b.liveAdmin()

	// Subscribers on A; every change goes through B.
	c := a.connectSocket(s.customer.Token)
	a.subscribeOrder(c, "order", s.order, nil)
	c.Subscribe("mine", subMine, nil)
	a.waitSubscribers(2)
	o2 := b.placeOrder(s.customer, line{s.product, 1})
	for _, st := range []string{"PAID", "SHIPPED", "DELIVERED"} {
		b.moveOrderTo(admin, s.order, st)
	}
	b.moveOrderTo(s.merchant, o2, "CANCELLED")

	var order, mine []string
	for len(order) < 3 || len(mine) < 5 {
		m := c.Next(10 * time.Second)
		e := decodeLiveEvent(t, m)
		switch m.ID {
		case "order":
			order = append(order, e.Status)
		case "mine":
			mine = append(mine, e.Order.ID[len(e.Order.ID)-2:]+":"+e.Status)
		}
	}
	if want := "PAID SHIPPED DELIVERED"; joinWords(order) != want {
		t.Fatalf("orderStatusChanged = %v, want %s", order, want)
	}
	suffix := func(id string) string { return id[len(id)-2:] }
	want := fmt.Sprintf("%[1]s:PENDING %[2]s:PAID %[2]s:SHIPPED %[2]s:DELIVERED %[1]s:CANCELLED", suffix(o2), suffix(s.order))
	if joinWords(mine) != want {
		t.Fatalf("myOrderEvents = %v, want %s", mine, want)
	}
	c.Quiet(500 * time.Millisecond) // nothing twice, although both processes run a relay
}

// decodeLiveEvent returns the event in a next/data message.
func decodeLiveEvent(t *testing.T, m wsMsg) liveEvent {
	t.Helper()
	c := &wsClient{&sockettest.Client{T: t, Msgs: make(chan wsMsg, 1)}}
	c.Msgs <- m
	return c.event(m.ID)
}

// liveRedisServer is a redis-server this test starts, stops and restarts on one port.
type liveRedisServer struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func startLiveRedis(t *testing.T) *liveRedisServer {
	t.Helper()
	storetest.RequireCommand(t, "redis-server")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &liveRedisServer{t: t, port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *liveRedisServer) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

func (r *liveRedisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port)})
	defer rdb.Close()
	eventually(r.t, 5*time.Second, func() bool { return rdb.Ping(context.Background()).Err() == nil }, "redis-server up")
}

func (r *liveRedisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

func TestEventCommittedWhileRedisIsDownArrivesOnceWhenItIsBack(t *testing.T) {
	t.Parallel()
	t.Run("postgres, two processes", func(t *testing.T) {
		rs := startLiveRedis(t)
		cfg := sharedLiveConfig(t, rs.url())
		a, b := newTestEnv(t, cfg), newTestEnv(t, cfg)
		testRedisOutage(t, rs, a, b)
	})
	t.Run("embedded", func(t *testing.T) {
		rs := startLiveRedis(t)
		cfg := config{SQLitePath: storetest.SQLitePath(t), RedisURL: rs.url(), RedisPrefix: storetest.Name("t") + ":"}
		liveConfig(&cfg)
		cfg.AdminEmail, cfg.AdminPassword = "live-admin@shop.example", "live-admin-password"
		env := newTestEnv(t, cfg)
		testRedisOutage(t, rs, env, env)
	})
}

// testRedisOutage subscribes on a, stops Redis, changes the order through b, restarts Redis.
func testRedisOutage(t *testing.T, rs *liveRedisServer, a, b *testEnv) {
	s := b.newLiveShop()
	c := a.connectSocket(s.customer.Token)
	a.subscribeOrder(c, "1", s.order, nil)
	c.Subscribe("mine", subMine, nil)
	a.waitSubscribers(2)

	rs.stop()
	eventually(t, 5*time.Second, func() bool { return !a.svc.LiveStats().RedisSubscribed }, "subscription lost")
	failed := b.svc.LiveStats().PublishFailures
	b.moveOrderTo(s.merchant, s.order, "PAID") // committed; its publication fails
	eventually(t, 5*time.Second, func() bool { return b.svc.LiveStats().PublishFailures > failed }, "failed publication")
	c.Quiet(300 * time.Millisecond)
	rs.start()

	got := map[string]string{}
	for len(got) < 2 {
		m := c.Next(15 * time.Second)
		got[m.ID] = decodeLiveEvent(t, m).Status
	}
	if got["1"] != "PAID" || got["mine"] != "PAID" {
		t.Fatalf("after the outage: %v", got)
	}
	c.Quiet(time.Second) // exactly once: relay and catch-up both ran, duplicates were dropped
	// And live delivery goes on.
	b.moveOrderTo(s.merchant, s.order, "SHIPPED")
	for range 2 {
		if e := decodeLiveEvent(t, c.Next(10*time.Second)); e.Status != "SHIPPED" {
			t.Fatalf("event %+v", e)
		}
	}
}

func TestConcurrentRelaysPublishEachEventOnce(t *testing.T) {
	t.Parallel()
	cfg := sharedLiveConfig(t, "")
	envs := []*testEnv{newTestEnv(t, cfg), newTestEnv(t, cfg), newTestEnv(t, cfg)}
	admin := envs[0].liveAdmin()
	c := envs[0].connectSocket(admin.Token)
	c.Subscribe("mine", subMine, nil)
	envs[0].waitSubscribers(1)

	s := envs[1].newLiveShop()
	const orders = 40
	for range orders - 1 {
		envs[1].placeOrder(s.customer, line{s.product, 1})
	}
	for range orders {
		c.Next(10 * time.Second)
	}
	time.Sleep(200 * time.Millisecond) // let the publishers mark them published
	before := totalRelayed(envs)
	// As if every publication had failed: all three relays find them at once.
	storetest.Exec(t, envs[0].svc.Store, "UPDATE order_status_events SET published_at = NULL")
	var wg sync.WaitGroup
	for _, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(400 * time.Millisecond) // past the grace period
			e.svc.RelayOnce()
		}()
	}
	wg.Wait()
	eventually(t, 5*time.Second, func() bool { return totalRelayed(envs)-before >= orders }, "relayed")
	time.Sleep(500 * time.Millisecond)
	if n := totalRelayed(envs) - before; n != orders {
		t.Fatalf("relays published %d events, want each of %d once", n, orders)
	}
	if unpublished := storetest.Count(t, envs[0].svc.Store, "SELECT count(*) FROM order_status_events WHERE published_at IS NULL"); unpublished != 0 {
		t.Fatalf("%d events left unpublished", unpublished)
	}
	c.Quiet(300 * time.Millisecond) // the republished events were duplicates for the subscriber
}

func totalRelayed(envs []*testEnv) int64 {
	var n int64
	for _, e := range envs {
		n += e.svc.LiveStats().Relayed
	}
	return n
}
