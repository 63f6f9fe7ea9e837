package tests

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The contract's visibility and argument rules of orderStatusChanged and myOrderEvents.

func TestOrderStatusChangedVisibility(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		admin := env.liveAdmin()
		stranger := env.signUp("CUSTOMER")
		otherMerchant := env.signUp("MERCHANT")

		c := env.connectSocket(stranger.Token)
		c.Subscribe("stranger", subOrder, map[string]any{"id": s.order})
		if code := c.ErrorCode("stranger"); code != "NOT_FOUND" {
			t.Fatalf("stranger: %s, want NOT_FOUND", code)
		}
		m := env.connectSocket(otherMerchant.Token)
		m.Subscribe("1", subOrder, map[string]any{"id": s.order})
		if code := m.ErrorCode("1"); code != "NOT_FOUND" {
			t.Fatalf("merchant without a product in it: %s, want NOT_FOUND", code)
		}
		unknown := env.connectSocket(s.customer.Token)
		unknown.Subscribe("1", subOrder, map[string]any{"id": unknownOrderID})
		if code := unknown.ErrorCode("1"); code != "NOT_FOUND" {
			t.Fatalf("unknown order: %s, want NOT_FOUND", code)
		}
		anon := env.connectSocket("")
		anon.Subscribe("1", subOrder, map[string]any{"id": s.order})
		if code := anon.ErrorCode("1"); code != "UNAUTHENTICATED" {
			t.Fatalf("anonymous: %s, want UNAUTHENTICATED", code)
		}
		anon.Subscribe("2", subMine, nil)
		if code := anon.ErrorCode("2"); code != "UNAUTHENTICATED" {
			t.Fatalf("anonymous myOrderEvents: %s, want UNAUTHENTICATED", code)
		}

		// Those who may see it: its customer, the merchant of a product in it, an admin.
		var watchers []*wsClient
		for i, who := range []account{s.customer, s.merchant, admin} {
			w := env.connectSocket(who.Token)
			w.Subscribe("1", subOrder, map[string]any{"id": s.order})
			env.waitSubscribers(i + 1)
			watchers = append(watchers, w)
		}
		env.moveOrderTo(s.merchant, s.order, "PAID")
		for _, w := range watchers {
			if e := w.event("1"); e.Status != "PAID" {
				t.Fatalf("event = %+v", e)
			}
		}
	})
}

// unknownOrderID is a well-formed ID of an order that does not exist ("Order:999999999").
const unknownOrderID = "T3JkZXI6OTk5OTk5OTk5"

func TestOrderStatusChangedAfterMustBeAnEventOfTheOrder(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		other := env.placeOrder(s.customer, line{s.product, 1})
		otherEvent := env.eventIDs(s.customer, other)[0]
		c := env.connectSocket(s.customer.Token)
		for i, after := range []string{otherEvent, "not-an-id", s.order, "T3JkZXJTdGF0dXNFdmVudDo5OTk5OTk5"} {
			id := string(rune('a' + i))
			c.Subscribe(id, subOrder, map[string]any{"id": s.order, "after": after})
			if code := c.ErrorCode(id); code != "BAD_USER_INPUT" {
				t.Fatalf("after %q: %s, want BAD_USER_INPUT", after, code)
			}
		}
	})
}

func TestOrderStatusChangedWithoutAfterSendsOnlyLaterEvents(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		env.moveOrderTo(s.merchant, s.order, "PAID")
		c := env.connectSocket(s.customer.Token)
		env.subscribeOrder(c, "1", s.order, nil)
		c.Quiet(200 * time.Millisecond)
		env.moveOrderTo(s.merchant, s.order, "SHIPPED")
		if e := c.event("1"); e.Status != "SHIPPED" {
			t.Fatalf("event = %+v", e)
		}
	})
}

func TestOrderStatusChangedReplaysFromCursorThenContinues(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		c := env.connectSocket(s.customer.Token)
		env.subscribeOrder(c, "1", s.order, nil)
		env.moveOrderTo(s.merchant, s.order, "PAID")
		last := c.event("1")
		_ = c.Conn.CloseNow() // the client drops off...
		eventually(t, 5*time.Second, func() bool { return env.svc.LiveStats().Subscribers == 0 }, "unsubscribe")
		env.moveOrderTo(s.merchant, s.order, "SHIPPED") // ...misses two changes...
		env.moveOrderTo(s.merchant, s.order, "DELIVERED")

		// ...and resumes after the last event it saw.
		c = env.connectSocket(s.customer.Token)
		env.subscribeOrder(c, "1", s.order, &last.ID)
		shipped, delivered := c.event("1"), c.event("1")
		if shipped.Status != "SHIPPED" || delivered.Status != "DELIVERED" {
			t.Fatalf("replay = %+v, %+v", shipped, delivered)
		}
		c.Quiet(300 * time.Millisecond) // no duplicate from the live side of the merge

		// From the creation event: the whole history, once.
		first := env.eventIDs(s.customer, s.order)[0]
		c.Subscribe("2", subOrder, map[string]any{"id": s.order, "after": first})
		var got []string
		for range 3 {
			got = append(got, c.event("2").Status)
		}
		if want := "PAID SHIPPED DELIVERED"; joinWords(got) != want {
			t.Fatalf("replay from creation = %v, want %s", got, want)
		}
		c.Quiet(300 * time.Millisecond)
	})
}

func TestOrderStatusChangedReplayMergesWithConcurrentChanges(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		admin := env.liveAdmin()
		s := env.newLiveShop()
		first := env.eventIDs(s.customer, s.order)[0]
		// Status changes race the subscription's switch from replay to live: whatever the
		// interleaving, each event arrives once, in order.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, st := range []string{"PAID", "SHIPPED", "DELIVERED"} {
				env.moveOrderTo(admin, s.order, st)
			}
		}()
		c := env.connectSocket(s.customer.Token)
		c.Subscribe("1", subOrder, map[string]any{"id": s.order, "after": first})
		var got []string
		for range 3 {
			got = append(got, c.event("1").Status)
		}
		<-done
		if want := "PAID SHIPPED DELIVERED"; joinWords(got) != want {
			t.Fatalf("events = %v, want %s", got, want)
		}
		c.Quiet(300 * time.Millisecond)
	})
}

func TestMyOrderEventsFollowsOrdersVisibility(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		admin := env.liveAdmin()
		s := env.newLiveShop()
		other := env.signUp("MERCHANT")
		otherProduct := env.createProduct(other, "Teapot", 900, 100)

		customer, merchant, stranger, adm := env.connectSocket(s.customer.Token), env.connectSocket(s.merchant.Token),
			env.connectSocket(env.signUp("CUSTOMER").Token), env.connectSocket(admin.Token)
		otherM := env.connectSocket(other.Token)
		for i, c := range []*wsClient{customer, merchant, stranger, adm, otherM} {
			c.Subscribe("mine", subMine, nil)
			env.waitSubscribers(i + 1)
		}
		// An order of the customer with the merchant's product; an order the merchant places
		// (as a customer) of another merchant's product.
		o1 := env.placeOrder(s.customer, line{s.product, 2})
		o2 := env.placeOrder(s.merchant, line{otherProduct, 1})

		if e := customer.event("mine"); e.Order.ID != o1 || e.Status != "PENDING" {
			t.Fatalf("customer got %+v", e)
		}
		gotMerchant := []string{merchant.event("mine").Order.ID, merchant.event("mine").Order.ID}
		if !(gotMerchant[0] == o1 && gotMerchant[1] == o2) {
			t.Fatalf("merchant got %v, want %s %s", gotMerchant, o1, o2)
		}
		if a, b := adm.event("mine").Order.ID, adm.event("mine").Order.ID; a != o1 || b != o2 {
			t.Fatalf("admin got %s %s", a, b)
		}
		if e := otherM.event("mine"); e.Order.ID != o2 {
			t.Fatalf("other merchant got %+v", e)
		}
		// A leaked event would come before this one, which the customer and the other merchant
		// both see: events reach a socket in the order they were committed.
		o3 := env.placeOrder(s.customer, line{otherProduct, 1})
		if e := customer.event("mine"); e.Order.ID != o3 {
			t.Fatalf("customer got %+v, want the sentinel %s: an event leaked", e, o3)
		}
		if e := otherM.event("mine"); e.Order.ID != o3 {
			t.Fatalf("other merchant got %+v, want the sentinel %s: an event leaked", e, o3)
		}
		stranger.Quiet(300 * time.Millisecond)
	})
}

func joinWords(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// Setting a subscription up never uses the connection's loaders: an order that did not
// exist when this socket first asked for it is found once it does.
func TestSubscriptionSetUpDoesNotReuseTheConnectionsLoaders(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		next := nextOrderID(t, s.order)
		c := env.connectSocket(s.customer.Token)
		c.Subscribe("early", subOrder, map[string]any{"id": next})
		if code := c.ErrorCode("early"); code != "NOT_FOUND" {
			t.Fatalf("not yet placed: %s", code)
		}
		if placed := env.placeOrder(s.customer, line{s.product, 1}); placed != next {
			t.Skipf("order IDs are not sequential here (%s, want %s)", placed, next)
		}
		env.subscribeOrder(c, "now", next, nil)
		env.moveOrderTo(s.merchant, next, "PAID")
		if e := c.event("now"); e.Status != "PAID" || e.Order.ID != next {
			t.Fatalf("event %+v", e)
		}
	})
}

// nextOrderID returns the global ID the order placed after this one will get.
func nextOrderID(t *testing.T, order string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(order)
	kind, num, ok := strings.Cut(string(raw), ":")
	n, err2 := strconv.ParseInt(num, 10, 64)
	if err != nil || !ok || err2 != nil {
		t.Fatalf("order id %q", order)
	}
	return gid(kind, n+1)
}
