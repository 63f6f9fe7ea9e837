package delivery

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shop/api/store"
)

// fakeStore serves one order's events from memory.
type fakeStore struct {
	Store
	events []store.OrderEvent
}

func (f *fakeStore) FindOrderEventsFrom(_ context.Context, orderID, fromID int64) ([]store.OrderStatusEvent, error) {
	var out []store.OrderStatusEvent
	for _, e := range f.events {
		if e.OrderID == orderID && e.ID >= fromID {
			out = append(out, e.OrderStatusEvent)
		}
	}
	return out, nil
}

func (f *fakeStore) FindLatestOrderEvent(_ context.Context, orderID int64) (store.OrderStatusEvent, error) {
	var last store.OrderStatusEvent
	for _, e := range f.events {
		if e.OrderID == orderID {
			last = e.OrderStatusEvent
		}
	}
	return last, nil
}

// lifecycle is an order's events 1..4 with a foreign event (id 2) of another order between.
func lifecycle() []store.OrderEvent {
	st := func(s store.OrderStatus) *store.OrderStatus { return &s }
	ev := func(id, order int64, s store.OrderStatus, prev *store.OrderStatus) store.OrderEvent {
		return store.OrderEvent{OrderStatusEvent: store.OrderStatusEvent{ID: id, OrderID: order, Status: s, PreviousStatus: prev},
			CustomerID: 7, MerchantIDs: []int64{8}}
	}
	return []store.OrderEvent{
		ev(1, 10, store.StatusPending, nil),
		ev(2, 11, store.StatusPending, nil),
		ev(3, 10, store.StatusPaid, st(store.StatusPending)),
		ev(4, 10, store.StatusShipped, st(store.StatusPaid)),
		ev(5, 10, store.StatusDelivered, st(store.StatusShipped)),
	}
}

func newTestBroker(events []store.OrderEvent, buffer int) *Broker {
	return NewBroker(nil, &fakeStore{events: events}, Config{Channel: "test", Buffer: buffer}, nil)
}

func receive(t *testing.T, ch <-chan *store.OrderStatusEvent, n int) []int64 {
	t.Helper()
	var ids []int64
	for range n {
		select {
		case e := <-ch:
			ids = append(ids, e.ID)
		case <-time.After(time.Second):
			t.Fatalf("got %v, want %d events", ids, n)
		}
	}
	select {
	case e, ok := <-ch:
		if ok {
			t.Fatalf("unexpected event %d after %v", e.ID, ids)
		}
	default:
	}
	return ids
}

func TestDuplicatesAreDroppedByEventID(t *testing.T) {
	all := lifecycle()
	b := newTestBroker(all[:1], 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	order, _ := b.OrderEvents(ctx, 10, 0)
	mine, _ := b.ViewerEvents(ctx, store.Viewer{UserID: 7, Role: store.RoleCustomer})
	for _, e := range []store.OrderEvent{all[2], all[2], all[3], all[2], all[3]} { // at-least-once
		b.dispatch(ctx, e)
	}
	if got := receive(t, order, 2); got[0] != 3 || got[1] != 4 {
		t.Fatalf("order subscriber got %v", got)
	}
	if got := receive(t, mine, 2); got[0] != 3 || got[1] != 4 {
		t.Fatalf("viewer subscriber got %v", got)
	}
}

func TestVisibilityRoutesEventsToViewers(t *testing.T) {
	all := lifecycle()
	b := newTestBroker(nil, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	customer, _ := b.ViewerEvents(ctx, store.Viewer{UserID: 7, Role: store.RoleCustomer})
	merchant, _ := b.ViewerEvents(ctx, store.Viewer{UserID: 8, Role: store.RoleMerchant})
	stranger, _ := b.ViewerEvents(ctx, store.Viewer{UserID: 9, Role: store.RoleMerchant})
	admin, _ := b.ViewerEvents(ctx, store.Viewer{UserID: 1, Role: store.RoleAdmin})
	b.dispatch(ctx, all[0])
	receive(t, customer, 1)
	receive(t, merchant, 1)
	receive(t, admin, 1)
	receive(t, stranger, 0)
}

func TestReplayMergesWithLiveEventsWithoutGapOrDuplicate(t *testing.T) {
	all := lifecycle()
	b := newTestBroker(all[:4], 16) // the database has 1..4; 5 is committed later
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &subscriber{orderID: 10}
	ch, err := b.subscribe(ctx, s, b.cfg.Buffer)
	if err != nil {
		t.Fatal(err)
	}
	// Live events arrive while the replay reads the database: 4 (also read) and 5 (not yet).
	b.dispatch(ctx, all[3])
	b.dispatch(ctx, all[4])
	replay, _ := b.store.FindOrderEventsFrom(ctx, 10, 2)
	s.goLive(all[0].OrderStatusEvent, withAudience(replay, store.OrderEvent{}))
	if got := receive(t, ch, 3); got[0] != 3 || got[1] != 4 || got[2] != 5 {
		t.Fatalf("got %v, want 3 4 5", got)
	}
}

func TestGapIsFilledFromTheDatabase(t *testing.T) {
	all := lifecycle()
	b := newTestBroker(all, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, _ := b.OrderEvents(ctx, 10, 1) // replays 3, 4, 5 from the "database"
	receive(t, ch, 3)

	b2 := newTestBroker(all[:1], 16)
	ch2, _ := b2.OrderEvents(ctx, 10, 0)
	// Event 3's publication was lost (relayed later); 4 arrives first and reveals the gap.
	b2.store.(*fakeStore).events = all
	b2.dispatch(ctx, all[3])
	b2.dispatch(ctx, all[2]) // the relayed one: a duplicate by now
	b2.dispatch(ctx, all[4]) // already read from the database with the gap
	if got := receive(t, ch2, 3); got[0] != 3 || got[1] != 4 || got[2] != 5 {
		t.Fatalf("got %v, want 3 4 5", got)
	}
}

func TestSlowSubscriberIsCutOffInsteadOfBuffering(t *testing.T) {
	all := lifecycle()
	b := newTestBroker(nil, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, _ := b.ViewerEvents(ctx, store.Viewer{UserID: 7, Role: store.RoleCustomer})
	fast, _ := b.ViewerEvents(ctx, store.Viewer{UserID: 8, Role: store.RoleMerchant})
	for _, e := range all {
		b.dispatch(ctx, e)
		if e.MerchantIDs[0] == 8 {
			<-fast
		}
	}
	if b.Overflows.Load() != 1 {
		t.Fatalf("overflows = %d, want 1", b.Overflows.Load())
	}
	// Without a socket (SSE) the stream ends: the two buffered events, then the channel closes.
	n := 0
	for range slow {
		n++
	}
	if n != 2 {
		t.Fatalf("slow subscriber got %d events before the end, want its buffer of 2", n)
	}
	if b.Subscribers() != 1 {
		t.Fatalf("subscribers = %d, want only the fast one", b.Subscribers())
	}
}

func TestIDSetIsBounded(t *testing.T) {
	s := newIDSet(4)
	for id := int64(1); id <= 20; id++ {
		if !s.add(id) {
			t.Fatalf("%d reported as seen", id)
		}
	}
	if s.add(20) || s.add(17) {
		t.Fatal("recent ids forgotten")
	}
	if len(s.cur)+len(s.prev) > 8 {
		t.Fatalf("set grew to %d", len(s.cur)+len(s.prev))
	}
}

// listenerSpy records what a subscription tells its transport.
type listenerSpy struct {
	subscribed, ready, overflows atomic.Int64
	stop                         func()
}

func (l *listenerSpy) Subscribed(stop func()) { l.subscribed.Add(1); l.stop = stop }
func (l *listenerSpy) Ready()                 { l.ready.Add(1) }
func (l *listenerSpy) Overflow()              { l.overflows.Add(1) }

// A transport that drives subscriptions itself hears of each event after it is in the
// channel (so its receive never blocks) and of an overflow, which cuts the subscriber off
// instead of letting events pile up in memory.
func TestListenerHearsOfEventsAndOverflow(t *testing.T) {
	all := lifecycle()
	b := newTestBroker(nil, 1)
	spy := &listenerSpy{}
	ctx := WithListener(context.Background(), spy)
	ch, err := b.ViewerEvents(ctx, store.Viewer{UserID: 7, Role: store.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	b.dispatch(ctx, all[0])
	if spy.subscribed.Load() != 1 || spy.ready.Load() != 1 || len(ch) != 1 {
		t.Fatalf("subscribed %d, ready %d, buffered %d", spy.subscribed.Load(), spy.ready.Load(), len(ch))
	}
	b.dispatch(ctx, all[2]) // the buffer of 1 is full
	if spy.overflows.Load() != 1 || b.Overflows.Load() != 1 || b.Subscribers() != 0 {
		t.Fatalf("overflows %d/%d, subscribers %d", spy.overflows.Load(), b.Overflows.Load(), b.Subscribers())
	}
	spy.stop() // the transport ends the connection: the channel closes, announced by Ready
	if spy.ready.Load() != 2 {
		t.Fatalf("ready %d, want 2", spy.ready.Load())
	}
	<-ch
	if _, ok := <-ch; ok {
		t.Fatal("channel still open")
	}
}

// A subscription with a listener lives until the transport stops it, not until its context
// ends: the transport ties no cancellable context to each operation.
func TestListenerStopsTheSubscription(t *testing.T) {
	b := newTestBroker(nil, 4)
	spy := &listenerSpy{}
	ctx, cancel := context.WithCancel(WithListener(context.Background(), spy))
	ch, err := b.OrderEvents(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(10 * time.Millisecond) // an AfterFunc on ctx would have run by now
	if b.Subscribers() != 1 || spy.ready.Load() != 0 {
		t.Fatalf("subscribers %d, ready %d after the context ended", b.Subscribers(), spy.ready.Load())
	}
	spy.stop()
	spy.stop() // a second stop is harmless
	if b.Subscribers() != 0 || spy.ready.Load() != 1 {
		t.Fatalf("subscribers %d, ready %d after stop", b.Subscribers(), spy.ready.Load())
	}
	if _, ok := <-ch; ok {
		t.Fatal("channel still open")
	}
}

// A user named more than once by an event (a merchant who bought from themselves) gets it
// once.
func TestAudienceNamedTwiceGetsOneEvent(t *testing.T) {
	b := newTestBroker(nil, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mine, _ := b.ViewerEvents(ctx, store.Viewer{UserID: 7, Role: store.RoleMerchant})
	e := lifecycle()[0]
	e.MerchantIDs = []int64{7, 8, 7}
	b.dispatch(ctx, e)
	receive(t, mine, 1)
	if n := b.Delivered.Load(); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
}

// Every seat taken is given back exactly once, however the subscription ends; a refused
// seat refuses the subscription.
func TestSeatsAreGivenBackOnce(t *testing.T) {
	var taken, given atomic.Int64
	full := false
	b := NewBroker(nil, &fakeStore{events: lifecycle()[:1]}, Config{Channel: "test", Buffer: 16,
		Seats: func(context.Context) (func(), error) {
			if full {
				return nil, ErrClosed
			}
			taken.Add(1)
			var once atomic.Bool
			return func() {
				if once.Swap(true) {
					t.Error("a seat given back twice")
				}
				given.Add(1)
			}, nil
		}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	_, _ = b.OrderEvents(ctx, 10, 0)
	_, _ = b.ViewerEvents(ctx, store.Viewer{UserID: 7, Role: store.RoleCustomer})
	if _, err := b.OrderEvents(context.Background(), 10, 99); err == nil { // a bad cursor fails the set-up
		t.Fatal("want INVALID after")
	}
	cancel()
	ctx2 := context.Background()
	_, _ = b.ViewerEvents(ctx2, store.Viewer{UserID: 8, Role: store.RoleMerchant})
	full = true
	if _, err := b.ViewerEvents(ctx2, store.Viewer{UserID: 8, Role: store.RoleMerchant}); err == nil {
		t.Fatal("a refused seat did not refuse the subscription")
	}
	b.CloseSubscriptions()
	eventuallyTrue(t, func() bool { return given.Load() == taken.Load() })
	if taken.Load() != 4 {
		t.Fatalf("taken %d seats, want 4", taken.Load())
	}
}

func eventuallyTrue(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition never held")
}
