package socket_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/shop/api/api"
	"github.com/shop/api/api/apitest"
	"github.com/shop/api/api/guard"
	"github.com/shop/api/live/socket/sockettest"
)

// The caps one process puts on sockets: operations per socket, sockets per client address.
// Beyond a cap the one operation (or upgrade) is refused; what is already live goes on.
// The caps on accounts, counted in Redis over every process, are tested in tests/.

// receivesEvent moves the shop's order on and checks that every listed operation of c gets
// its event.
func receivesEvent(t *testing.T, srv *apitest.Server, s shop, status string, c *sockettest.Client, ids ...string) {
	t.Helper()
	s.moveOrderTo(t, srv, status)
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

func TestSocketCapsItsOperations(t *testing.T) {
	t.Parallel()
	srv := start(t, func(c *api.Config) { c.Live.MaxOperations = 3 })
	s := newShop(t, srv)
	c := sockettest.Connect(t, srv.URL, s.customer)
	for _, id := range []string{"1", "2", "3"} {
		c.Subscribe(id, subOrder, map[string]any{"id": s.order})
	}
	waitSubscribers(t, srv, 3)
	c.Subscribe("4", subOrder, map[string]any{"id": s.order})
	if code := c.ErrorCode("4"); code != guard.CodeRateLimited {
		t.Fatalf("a 4th operation on a socket capped at 3: %s, want RATE_LIMITED", code)
	}
	// The socket and its three subscriptions live on.
	receivesEvent(t, srv, s, "PAID", c, "1", "2", "3")
	// One ended frees its place.
	c.Send(map[string]any{"type": "complete", "id": "1"})
	eventually(t, 5*time.Second, func() bool { return srv.LiveStats().Subscribers == 2 }, "2 subscribers")
	c.Subscribe("5", subOrder, map[string]any{"id": s.order})
	waitSubscribers(t, srv, 3)
	receivesEvent(t, srv, s, "SHIPPED", c, "2", "3", "5")
}

// One client address holds at most MaxSocketsPerAddress sockets in a process: one more
// upgrade is refused with 429, and the open sockets go on; a closed one frees its place.
func TestSocketsCappedPerAddress(t *testing.T) {
	t.Parallel()
	srv := start(t, func(c *api.Config) { c.Live.MaxSocketsPerAddress = 2 })
	s := newShop(t, srv)
	first, second := sockettest.Connect(t, srv.URL, s.customer), sockettest.Connect(t, srv.URL, s.customer)
	if _, resp, err := sockettest.TryDial(srv.URL, sockettest.DialOpts{}); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("a 3rd socket from one address: %v (HTTP %d), want 429", err, status)
	}
	second.Subscribe("1", subOrder, map[string]any{"id": s.order})
	waitSubscribers(t, srv, 1)
	receivesEvent(t, srv, s, "PAID", second, "1")
	_ = first.Conn.CloseNow()
	eventually(t, 5*time.Second, func() bool { return srv.LiveStats().Sockets == 1 }, "one socket")
	sockettest.Connect(t, srv.URL, s.customer)
}
