package tests

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/shop/api/api"
	"github.com/shop/api/api/guard"
)

// The caps of live connections (issue 23) on accounts: live subscriptions per account across
// sockets, transports and processes (the caps of one socket and one address are tested in
// live/socket). Beyond a cap the one operation is
// refused with RATE_LIMITED; the subscriptions already live go on receiving events.

// seatsHeld returns how many seats of accounts Redis counts for the service, over every
// process.
func (e *testEnv) seatsHeld() int {
	e.t.Helper()
	ctx := context.Background()
	keys, err := e.svc.Redis.Keys(ctx, e.svc.RedisPrefix()+"live:user:*").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, key := range keys {
		fields, err := e.svc.Redis.HGetAll(ctx, key).Result()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, v := range fields {
			k, _ := strconv.Atoi(v)
			n += k
		}
	}
	return n
}

// receivesEvent moves the shop's order on and checks that every listed operation of c gets
// its event.
func receivesEvent(t *testing.T, env *testEnv, s liveShop, status string, cs map[*wsClient][]string) {
	t.Helper()
	env.moveOrderTo(s.merchant, s.order, status)
	for c, ids := range cs {
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		for range ids {
			m := c.Next(10 * time.Second)
			if m.Type != "next" || !want[m.ID] {
				t.Fatalf("want an event of one of %v, got %s %s %s", ids, m.Type, m.ID, m.Payload)
			}
			delete(want, m.ID)
		}
	}
}

// An account opening sockets and subscriptions as fast as it can holds at most its cap;
// closing sockets gives the seats back.
func TestSubscriptionsCappedPerAccount(t *testing.T) {
	t.Parallel()
	const sockets, perSocket, limit = 6, 8, 5
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			liveConfig(&cfg)
			cfg.Live.Seats = guard.SeatLimit{PerUser: limit}
			env := newTestEnv(t, cfg)
			s := env.newLiveShop()
			cs := make([]*wsClient, sockets)
			for i := range cs {
				cs[i] = env.connectSocket(s.customer.Token)
			}
			var wg sync.WaitGroup
			for _, c := range cs {
				wg.Go(func() {
					for i := range perSocket {
						c.Subscribe(string(rune('a'+i)), subOrder, map[string]any{"id": s.order})
					}
				})
			}
			wg.Wait()
			// Every refusal is an error (and a complete); the accepted say nothing.
			refused := 0
			// Read refusals until every operation beyond the cap was answered.
			deadline := time.Now().Add(20 * time.Second)
			for refused < sockets*perSocket-limit {
				if time.Now().After(deadline) {
					t.Fatalf("%d refusals, want %d", refused, sockets*perSocket-limit)
				}
				progress := false
				for _, c := range cs {
					select {
					case m := <-c.Msgs:
						progress = true
						if m.Type == "next" {
							refused++
						}
					case <-time.After(20 * time.Millisecond):
					}
				}
				if !progress && env.svc.LiveStats().Subscribers > limit {
					t.Fatalf("%d live subscriptions, cap %d", env.svc.LiveStats().Subscribers, limit)
				}
			}
			if n := env.svc.LiveStats().Subscribers; n != limit {
				t.Fatalf("%d live subscriptions after %d refusals, want the cap %d", n, refused, limit)
			}
			if n := env.seatsHeld(); n != limit {
				t.Fatalf("Redis counts %d seats, want %d", n, limit)
			}
			for _, c := range cs {
				c.Conn.CloseNow()
			}
			eventually(t, 5*time.Second, func() bool { return env.svc.LiveStats().Subscribers == 0 }, "no subscribers")
			eventually(t, 5*time.Second, func() bool { return env.seatsHeld() == 0 }, "seats given back")
			// The cap is whole again, over SSE as over WebSocket.
			c := env.connectSocket(s.customer.Token)
			for i := range limit - 1 {
				c.Subscribe(string(rune('a'+i)), subOrder, map[string]any{"id": s.order})
			}
			env.waitSubscribers(limit - 1)
			openSSE(t, env.srv.URL, s.customer.Token, subOrder, map[string]any{"id": s.order})
			env.waitSubscribers(limit)
			c.Subscribe("z", subOrder, map[string]any{"id": s.order})
			if code := c.ErrorCode("z"); code != guard.CodeRateLimited {
				t.Fatalf("over the cap after an SSE subscription: %s, want RATE_LIMITED", code)
			}
			receivesEvent(t, env, s, "PAID", map[*wsClient][]string{c: {"a", "b", "c", "d"}})
		})
	}
}

// The cap holds across processes: seats are counted in Redis.
func TestSubscriptionCapIsSharedByProcesses(t *testing.T) {
	t.Parallel()
	cfg := config{Live: api.LiveConfig{Seats: guard.SeatLimit{PerUser: 2}}}
	liveConfig(&cfg)
	forEachBackendPair(t, cfg, func(t *testing.T, a, b *testEnv) {
		s := a.newLiveShop()
		ca := a.connectSocket(s.customer.Token)
		ca.Subscribe("1", subOrder, map[string]any{"id": s.order})
		ca.Subscribe("2", subOrder, map[string]any{"id": s.order})
		a.waitSubscribers(2)
		cb := b.connectSocket(s.customer.Token)
		cb.Subscribe("1", subOrder, map[string]any{"id": s.order})
		if code := cb.ErrorCode("1"); code != guard.CodeRateLimited {
			t.Fatalf("a 3rd subscription on another process: %s, want RATE_LIMITED", code)
		}
		ca.Send(map[string]any{"type": "complete", "id": "2"})
		eventually(t, 5*time.Second, func() bool { return a.seatsHeld() == 1 }, "a seat given back")
		cb.Subscribe("2", subOrder, map[string]any{"id": s.order})
		b.waitSubscribers(1)
		a.moveOrderTo(s.merchant, s.order, "PAID")
		if ev := ca.event("1"); ev.Status != "PAID" {
			t.Fatalf("event %+v", ev)
		}
		if ev := cb.event("2"); ev.Status != "PAID" {
			t.Fatalf("event %+v", ev)
		}
	})
}

// A subscription is charged each event's cost to its caller's budget: once the budget is
// spent it ends with RATE_LIMITED instead of resolving events for free (or dropping them).
func TestSubscriptionEventsAreCharged(t *testing.T) {
	t.Parallel()
	// About 1,000 points an event: the budget of 3,000 pays the set-up and one event, not a
	// second (it refills 50 points a second).
	var sel strings.Builder
	for i := range 25 {
		fmt.Fprintf(&sel, " i%d: items { product { id name } quantity }", i)
	}
	sub := `subscription { myOrderEvents { id status order { id` + sel.String() + ` } } }`
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			liveConfig(&cfg)
			cfg.AdminEmail, cfg.AdminPassword = "live-admin@shop.example", "live-admin-password"
			cfg.RateLimit = guard.RateLimit{PointsPerMinute: 3000, AnonymousPointsPerMinute: 1_000_000}
			env := newTestEnv(t, cfg)
			s := env.newLiveShop()
			admin := env.liveAdmin()
			c := env.connectSocket(admin.Token)
			c.Subscribe("1", sub, nil)
			env.waitSubscribers(1)
			env.moveOrderTo(s.merchant, s.order, "PAID")
			if m := c.Next(10 * time.Second); m.Type != "next" || m.ID != "1" || strings.Contains(string(m.Payload), `"errors"`) {
				t.Fatalf("the first event: %s %s %s", m.Type, m.ID, m.Payload)
			}
			env.moveOrderTo(s.merchant, s.order, "SHIPPED")
			m := c.Next(10 * time.Second)
			if m.Type != "error" || m.ID != "1" || !strings.Contains(string(m.Payload), guard.CodeRateLimited) {
				t.Fatalf("the second event, over the budget: %s %s %s, want error RATE_LIMITED", m.Type, m.ID, m.Payload)
			}
			t.Logf("refused: %s", m.Payload)
			eventually(t, 5*time.Second, func() bool { return env.svc.LiveStats().Subscribers == 0 }, "the subscription ended")
		})
	}
}

// Over SSE too: the event beyond the budget is answered with RATE_LIMITED, and the stream
// ends.
func TestSSESubscriptionEventsAreCharged(t *testing.T) {
	t.Parallel()
	var sel strings.Builder
	for i := range 25 {
		fmt.Fprintf(&sel, " i%d: items { product { id name } quantity }", i)
	}
	sub := `subscription { myOrderEvents { id status order { id` + sel.String() + ` } } }`
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			liveConfig(&cfg)
			cfg.AdminEmail, cfg.AdminPassword = "live-admin@shop.example", "live-admin-password"
			cfg.RateLimit = guard.RateLimit{PointsPerMinute: 3000, AnonymousPointsPerMinute: 1_000_000}
			env := newTestEnv(t, cfg)
			// The order is placed once the stream is open, so its placement's event is the
			// first the stream sees: one placed before could still be on its way (or be relayed
			// again) when the stream opens, and spend the budget the test counts on.
			merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
			product := env.createProduct(merchant, "Kettle", 2500, 1000)
			events := openSSE(t, env.srv.URL, env.liveAdmin().Token, sub, nil)
			env.waitSubscribers(1)
			next := func() string {
				t.Helper()
				select {
				case data, ok := <-events:
					if !ok {
						return "(end)"
					}
					return data
				case <-time.After(10 * time.Second):
					t.Fatal("no SSE event within 10 s")
				}
				return ""
			}
			order := env.placeOrder(customer, line{product, 1})
			if data := next(); !strings.Contains(data, `"PENDING"`) || strings.Contains(data, `"errors"`) {
				t.Fatalf("the first event: %s", data)
			}
			env.moveOrderTo(merchant, order, "PAID")
			if data := next(); !strings.Contains(data, guard.CodeRateLimited) || strings.Contains(data, `"PAID"`) {
				t.Fatalf("the second event, over the budget: %s, want RATE_LIMITED", data)
			}
			if data := next(); data != "(end)" {
				t.Fatalf("after the refusal: %s, want the stream's end", data)
			}
			eventually(t, 5*time.Second, func() bool { return env.svc.LiveStats().Subscribers == 0 }, "the subscription ended")
		})
	}
}

// Redis down, the caps fail open as the rate limits do: the shop goes on without them.
func TestSubscriptionCapFailsOpenWithoutRedis(t *testing.T) {
	t.Parallel()
	cfg := backends[0].config(t)
	liveConfig(&cfg)
	mr := miniredis.RunT(t)
	cfg.RedisURL, cfg.RedisPrefix = "redis://"+mr.Addr(), "test:"
	cfg.Live.Seats = guard.SeatLimit{PerUser: 1}
	env := newTestEnv(t, cfg)
	s := env.newLiveShop()
	c := env.connectSocket(s.customer.Token)
	c.Subscribe("1", subOrder, map[string]any{"id": s.order})
	env.waitSubscribers(1)
	c.Subscribe("2", subOrder, map[string]any{"id": s.order})
	if code := c.ErrorCode("2"); code != guard.CodeRateLimited {
		t.Fatalf("over the cap: %s", code)
	}
	mr.Close()
	c.Subscribe("3", subOrder, map[string]any{"id": s.order})
	env.waitSubscribers(2)
}
