package delivery

import (
	"slices"
	"sync"

	"github.com/shop/api/store"
)

// subscriber is one live subscription: a bounded buffer the GraphQL transport drains. The
// broker's dispatch never blocks on it: a subscriber whose buffer is full is cut off (see
// Broker.overflow) instead of growing memory.
type subscriber struct {
	ch      chan *store.OrderStatusEvent
	orderID int64        // orderStatusChanged: the one order; 0 for myOrderEvents
	viewer  store.Viewer // myOrderEvents: whose orders
	// listener, when set, is told of every event put into ch and of the overflow that
	// cuts the subscriber off; without one (SSE) an overflow just closes ch.
	listener Listener

	// release gives back the subscription's seat (Config.Seats); called once, when the
	// broker forgets the subscriber.
	release func()
	// counted is set once the subscriber went live and counts in Broker.Subscribers;
	// guarded by the broker's lock.
	counted bool

	mu     sync.Mutex
	closed bool
	// Replay: until live is set, dispatched events wait in pending, so the events read from
	// the database and the live ones can be merged by ID without a gap or a duplicate.
	live    bool
	pending []store.OrderEvent
	// lastID and lastStatus are the newest event delivered for orderID: events at or below
	// lastID are duplicates, and one whose previous status is not lastStatus reveals a gap.
	lastID     int64
	lastStatus store.OrderStatus
	// recent holds the IDs last delivered to a myOrderEvents subscriber, to drop duplicates;
	// nil for orderStatusChanged, whose watchers are most subscribers.
	recent *recentIDs
}

type recentIDs struct {
	ids  [16]int64
	next int
}

// verdict is what a subscriber does with a dispatched event.
type verdict int

const (
	delivered verdict = iota
	dropped
	gap      // an event of the order is missing: read them from the database
	overflow // the buffer is full
)

// offer delivers e unless it is a duplicate, the subscriber is replaying, or its buffer is full.
func (s *subscriber) offer(e store.OrderEvent) verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dropped
	}
	if !s.live {
		s.pending = append(s.pending, e)
		return dropped
	}
	return s.deliverLocked(e)
}

func (s *subscriber) deliverLocked(e store.OrderEvent) verdict {
	if s.orderID != 0 {
		if e.ID <= s.lastID {
			return dropped
		}
		if e.PreviousStatus != nil && *e.PreviousStatus != s.lastStatus {
			return gap
		}
	} else if slices.Contains(s.recent.ids[:], e.ID) {
		return dropped
	}
	ev := e.OrderStatusEvent
	select {
	case s.ch <- &ev:
	default:
		s.closed = true
		return overflow
	}
	if s.orderID != 0 {
		s.lastID, s.lastStatus = e.ID, e.Status
	} else {
		s.recent.ids[s.recent.next] = e.ID
		s.recent.next = (s.recent.next + 1) % len(s.recent.ids)
	}
	return delivered
}

// fill delivers events read from the database after a gap, oldest first, skipping those
// already delivered; it never reports another gap.
func (s *subscriber) fill(events []store.OrderEvent) verdict {
	n := 0
	defer func() { s.ready(n) }()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range events {
		if s.closed {
			return dropped
		}
		if e.ID <= s.lastID {
			continue
		}
		s.lastStatus = derefOr(e.PreviousStatus, s.lastStatus) // accept the database's order as truth
		switch s.deliverLocked(e) {
		case overflow:
			return overflow
		case delivered:
			n++
		}
	}
	return delivered
}

// goLive delivers the replayed events (oldest first), then the live events that arrived
// meanwhile and are newer, and switches to live delivery. For orderStatusChanged, last is the
// newest event already seen (the `after` event, or the order's latest when there is no
// `after`); nothing at or below it is delivered.
func (s *subscriber) goLive(last store.OrderStatusEvent, replay []store.OrderEvent) verdict {
	n := 0
	defer func() { s.ready(n) }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dropped
	}
	s.live = true
	s.lastID, s.lastStatus = last.ID, last.Status
	pending := s.pending
	s.pending = nil
	slices.SortFunc(pending, func(a, b store.OrderEvent) int { return compareIDs(a.ID, b.ID) })
	for _, list := range [][]store.OrderEvent{replay, pending} {
		for _, e := range list {
			if s.orderID != 0 && e.ID <= s.lastID {
				continue
			}
			if s.orderID != 0 && e.PreviousStatus != nil && *e.PreviousStatus != s.lastStatus {
				// The replay is the database's truth; a live event that does not follow it
				// came out of order: trust its ID order instead of dropping it.
				s.lastStatus = *e.PreviousStatus
			}
			switch s.deliverLocked(e) {
			case overflow:
				return overflow
			case delivered:
				n++
			}
		}
	}
	return delivered
}

// close stops delivery and closes the channel, which ends the GraphQL subscription.
func (s *subscriber) close() {
	s.mu.Lock()
	if s.ch == nil {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.ch)
	s.ch = nil
	s.mu.Unlock()
	s.ready(1)
}

// giveSeat gives back the subscriber's seat, if it holds one; the broker calls it once,
// when it forgets s (and not under its lock: it may write to Redis).
func (s *subscriber) giveSeat() {
	if s.release != nil {
		s.release()
	}
}

// subscribed tells the listener that the subscription is set up, and how to end it.
func (s *subscriber) subscribed(b *Broker) {
	if s.listener != nil {
		s.listener.Subscribed(func() { b.unsubscribe(s) })
	}
}

// ready tells the listener that n more receives will not block; call it without s.mu.
func (s *subscriber) ready(n int) {
	if s.listener == nil {
		return
	}
	for range n {
		s.listener.Ready()
	}
}

func derefOr(p *store.OrderStatus, def store.OrderStatus) store.OrderStatus {
	if p == nil {
		return def
	}
	return *p
}

func compareIDs(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
