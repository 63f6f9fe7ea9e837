// Package delivery delivers committed order status events to GraphQL subscribers, losing none.
//
// The status event row written in an order's transaction is the source of truth (an
// outbox). After commit, a Publisher sends the event to one Redis pub/sub channel and marks
// it published; a Relay in every process republishes events still unpublished after a grace
// period (PostgreSQL row locks keep concurrent relays apart). Each process holds exactly one
// Redis subscription, in its Broker, which fans events out in-process to its subscribers
// through bounded buffers, dropping duplicates by event ID: at-least-once publication
// becomes exactly-once delivery.
package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/store"
)

// Store is what live delivery reads and writes.
type Store interface {
	MarkEventsPublished(ctx context.Context, ids []int64) error
	RelayUnpublishedEvents(ctx context.Context, olderThan time.Time, limit int, publish func(context.Context, []store.OrderEvent) error) (int, error)
	FindOrderEventsFrom(ctx context.Context, orderID, fromID int64) ([]store.OrderStatusEvent, error)
	FindLatestOrderEvent(ctx context.Context, orderID int64) (store.OrderStatusEvent, error)
	FindEventsSince(ctx context.Context, since time.Time, limit int) ([]store.OrderEvent, error)
	MarkLowStockPublished(ctx context.Context, ids []int64) error
	RelayUnpublishedLowStock(ctx context.Context, olderThan time.Time, limit int, publish func(context.Context, []store.LowStockAlert) error) (int, error)
	FindLowStockSince(ctx context.Context, since time.Time, limit int) ([]store.LowStockAlert, error)
}

var _ Store = (*store.Store)(nil)

// Config tunes live delivery; zero fields take the defaults in parentheses.
type Config struct {
	// Channel is the Redis pub/sub channel, namespaced per service (required).
	Channel string
	// Buffer is how many events may wait for one subscriber before it is cut off (64).
	Buffer int
	// CatchUp is how far before a lost Redis subscription the broker rereads events from
	// the database once it is back (5s): covers commit-to-publish delays.
	CatchUp time.Duration
	// Setups is how many subscriptions may be setting up (reading the database) at once (8):
	// a reconnect storm then queues instead of exhausting the connection pool.
	Setups int
	// Seats, when set, takes a seat for each subscription before it registers (the caps of
	// live subscriptions per user and per address, across the service) and returns the
	// function that gives it back; its error refuses the subscription.
	Seats func(ctx context.Context) (release func(), err error)
	// OnDispatch, when set, is told how long after its commit each event reached this
	// process's subscribers (a metric of the whole path but the last socket write).
	OnDispatch func(lag time.Duration)
}

func (c Config) withDefaults() Config {
	if c.Buffer <= 0 {
		c.Buffer = 64
	}
	if c.CatchUp <= 0 {
		c.CatchUp = 5 * time.Second
	}
	if c.Setups <= 0 {
		c.Setups = 8
	}
	return c
}

// wireEvent is an event as published on the channel: an order status event, or with Kind
// "lowStock" a low-stock alert (see lowstock.go).
type wireEvent struct {
	Kind        string             `json:"kind,omitempty"`
	ID          int64              `json:"id"`
	OrderID     int64              `json:"orderId"`
	Status      store.OrderStatus  `json:"status"`
	Previous    *store.OrderStatus `json:"previousStatus,omitempty"`
	Note        *string            `json:"note,omitempty"`
	At          time.Time          `json:"at"`
	CustomerID  int64              `json:"customerId"`
	MerchantIDs []int64            `json:"merchantIds,omitempty"`
	Product     *wireProduct       `json:"product,omitempty"`
}

func encode(e store.OrderEvent) ([]byte, error) {
	return json.Marshal(wireEvent{ID: e.ID, OrderID: e.OrderID, Status: e.Status, Previous: e.PreviousStatus,
		Note: e.Note, At: e.At, CustomerID: e.CustomerID, MerchantIDs: e.MerchantIDs})
}

func (w wireEvent) orderEvent() (store.OrderEvent, error) {
	if w.ID <= 0 || w.OrderID <= 0 {
		return store.OrderEvent{}, errors.New("event without id")
	}
	return store.OrderEvent{
		OrderStatusEvent: store.OrderStatusEvent{ID: w.ID, OrderID: w.OrderID, Status: w.Status,
			PreviousStatus: w.Previous, Note: w.Note, At: w.At},
		CustomerID: w.CustomerID, MerchantIDs: w.MerchantIDs,
	}, nil
}

// Broker holds this process's one Redis subscription and its local subscribers.
type Broker struct {
	rdb   redis.UniversalClient
	store Store
	cfg   Config
	log   *slog.Logger

	mu      sync.Mutex
	byOrder map[int64][]*subscriber // orderStatusChanged
	byUser  map[int64][]*subscriber // myOrderEvents of customers and merchants
	admins  []*subscriber           // myOrderEvents of admins
	stock   stockSubscribers        // lowStock
	count   int
	closed  bool

	seen      idSet         // events dispatched recently, to drop republished duplicates
	setups    chan struct{} // admission of subscription setups
	connected atomic.Bool
	ready     chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
	// Delivered counts events handed to subscribers; Overflows subscribers cut off.
	Delivered, Overflows atomic.Int64
}

// NewBroker returns a broker; Start subscribes to Redis.
func NewBroker(rdb redis.UniversalClient, st Store, cfg Config, log *slog.Logger) *Broker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Broker{rdb: rdb, store: st, cfg: cfg, log: log,
		byOrder: map[int64][]*subscriber{}, byUser: map[int64][]*subscriber{}, stock: newStockSubscribers(),
		seen: newIDSet(1 << 16), setups: make(chan struct{}, cfg.Setups),
		ready: make(chan struct{}), done: make(chan struct{})}
}

// Start subscribes to the channel and dispatches its events until Close. It returns once the
// first subscription is confirmed or ctx ends (Redis may be down at start: the broker keeps
// trying in the background and catches up when it gets through).
func (b *Broker) Start(ctx context.Context) {
	runCtx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	go b.run(runCtx)
	select {
	case <-b.ready:
	case <-ctx.Done():
	}
}

// Connected reports whether the Redis subscription is up.
func (b *Broker) Connected() bool { return b.connected.Load() }

// Subscribers returns how many subscriptions are live in this process: set up (replayed
// when asked) and receiving; one still reading the database does not count yet.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

func (b *Broker) run(ctx context.Context) {
	defer close(b.done)
	ps := b.rdb.Subscribe(ctx, b.cfg.Channel)
	defer ps.Close()
	// Receive blocks in a read that ignores ctx: closing the PubSub is what unblocks it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	var once sync.Once
	var lostAt time.Time
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if b.connected.Swap(false) {
				lostAt = time.Now()
				b.log.Warn("live: redis subscription lost", "err", err)
			}
			// go-redis reconnects and resubscribes on the next Receive.
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			b.connected.Store(true)
			once.Do(func() { close(b.ready) })
			if !lostAt.IsZero() {
				b.log.Info("live: redis subscription back; catching up", "since", lostAt)
				b.catchUp(ctx, lostAt.Add(-b.cfg.CatchUp))
				lostAt = time.Time{}
			}
		case *redis.Message:
			var w wireEvent
			err := json.Unmarshal([]byte(m.Payload), &w)
			if err == nil && w.Kind == kindLowStock {
				var a store.LowStockAlert
				if a, err = w.lowStock(); err == nil {
					b.dispatchLowStock(a)
					continue
				}
			}
			var e store.OrderEvent
			if err == nil {
				e, err = w.orderEvent()
			}
			if err != nil {
				b.log.Warn("live: undecodable event", "err", err)
				continue
			}
			b.dispatch(ctx, e)
		}
	}
}

// catchUp dispatches what was committed while the subscription was down; duplicates of
// what did arrive are dropped as usual.
func (b *Broker) catchUp(ctx context.Context, since time.Time) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	events, err := b.store.FindEventsSince(ctx, since, 10000)
	if err != nil {
		b.log.Error("live: catch up", "err", err)
		return
	}
	for _, e := range events {
		b.dispatch(ctx, e)
	}
	b.catchUpLowStock(ctx, since)
}

// dispatch hands e to every local subscriber that may see it.
func (b *Broker) dispatch(ctx context.Context, e store.OrderEvent) {
	if !b.seen.add(e.ID) {
		return
	}
	// A subscriber is in exactly one list, so only a user named twice (a merchant who
	// bought from themselves, a merchant listed twice) could be reached twice: the audience
	// is deduplicated by user, a few IDs, before the lock, and under it lists are only
	// copied, whatever their length.
	users := audience(e)
	b.mu.Lock()
	targets := make([]*subscriber, 0, 4)
	targets = append(targets, b.byOrder[e.OrderID]...)
	targets = append(targets, b.admins...)
	for _, u := range users {
		targets = append(targets, b.byUser[u]...)
	}
	b.mu.Unlock()
	if b.cfg.OnDispatch != nil && len(targets) > 0 {
		b.cfg.OnDispatch(time.Since(e.At))
	}
	var gapped []*subscriber
	for _, s := range targets {
		switch s.offer(e) {
		case delivered:
			b.Delivered.Add(1)
			s.ready(1)
		case gap:
			gapped = append(gapped, s)
		case overflow:
			b.overflow(s)
		}
	}
	if len(gapped) > 0 {
		b.fillGap(ctx, gapped, e)
	}
}

// fillGap reads from the database the events an order subscriber missed (a publication that
// arrived out of order, e.g. one republished by the relay after a Redis outage) and delivers
// them in order.
func (b *Broker) fillGap(ctx context.Context, subs []*subscriber, e store.OrderEvent) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	from := e.ID
	for _, s := range subs {
		s.mu.Lock()
		from = min(from, s.lastID)
		s.mu.Unlock()
	}
	found, err := b.store.FindOrderEventsFrom(ctx, e.OrderID, from+1)
	if err != nil {
		b.log.Error("live: fill gap", "order", e.OrderID, "err", err)
		return
	}
	events := withAudience(found, e)
	for _, s := range subs {
		if s.fill(events) == overflow {
			b.overflow(s)
		}
	}
}

// audience is the users an event concerns, each once: its customer and its merchants.
func audience(e store.OrderEvent) []int64 {
	users := make([]int64, 0, 1+len(e.MerchantIDs))
	users = append(users, e.CustomerID)
	for _, m := range e.MerchantIDs {
		if !slices.Contains(users, m) {
			users = append(users, m)
		}
	}
	return users
}

// overflow cuts off a subscriber that cannot keep up.
func (b *Broker) overflow(s *subscriber) {
	b.Overflows.Add(1)
	b.remove(s)
	b.log.Warn("live: subscriber cannot keep up; closing it", "order", s.orderID, "user", s.viewer.UserID)
	if s.listener != nil {
		s.listener.Overflow()
		return
	}
	s.close()
}

// ErrClosed is returned by Subscribe once the broker shuts down.
var ErrClosed = errors.New("live: shutting down")

// orderBuffer bounds the buffer of an orderStatusChanged subscriber: an order has at most
// four status events (PENDING, PAID, SHIPPED, DELIVERED; the transitions form no cycle), so
// eight hold its whole life and a replay, and the 56 slots of Buffer it would not use are
// half a KiB for every watching phone.
const orderBuffer = 8

// subscribe registers s (not yet live) with a buffer of capacity events, arranges its
// removal when ctx ends (or, with a listener, when the transport says: see
// Listener.Subscribed), and returns its channel: read it from here, not from s, which a
// context already ended closes (and clears) at once.
func (b *Broker) subscribe(ctx context.Context, s *subscriber, capacity int) (<-chan *store.OrderStatusEvent, error) {
	if b.cfg.Seats != nil {
		release, err := b.cfg.Seats(ctx)
		if err != nil {
			return nil, err
		}
		s.release = release
	}
	ch := make(chan *store.OrderStatusEvent, capacity)
	s.ch = ch
	s.listener = listenerFrom(ctx)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		s.giveSeat()
		return nil, ErrClosed
	}
	switch {
	case s.orderID != 0:
		b.byOrder[s.orderID] = append(b.byOrder[s.orderID], s)
	case s.viewer.Role == store.RoleAdmin:
		b.admins = append(b.admins, s)
	default:
		b.byUser[s.viewer.UserID] = append(b.byUser[s.viewer.UserID], s)
	}
	b.mu.Unlock()
	if s.listener == nil {
		context.AfterFunc(ctx, func() { b.unsubscribe(s) })
	}
	return ch, nil
}

// unsubscribe ends s: the broker forgets it and its channel closes.
func (b *Broker) unsubscribe(s *subscriber) {
	b.remove(s)
	s.close()
}

func (b *Broker) remove(s *subscriber) {
	if b.removeLocked(s) {
		s.giveSeat()
	}
}

// removeLocked forgets s and reports whether it was registered.
func (b *Broker) removeLocked(s *subscriber) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	removeFrom := func(list []*subscriber) ([]*subscriber, bool) {
		i := slices.Index(list, s)
		if i < 0 {
			return list, false
		}
		return slices.Delete(list, i, i+1), true
	}
	var ok bool
	switch {
	case s.orderID != 0:
		if b.byOrder[s.orderID], ok = removeFrom(b.byOrder[s.orderID]); len(b.byOrder[s.orderID]) == 0 {
			delete(b.byOrder, s.orderID)
		}
	case s.viewer.Role == store.RoleAdmin:
		b.admins, ok = removeFrom(b.admins)
	default:
		if b.byUser[s.viewer.UserID], ok = removeFrom(b.byUser[s.viewer.UserID]); len(b.byUser[s.viewer.UserID]) == 0 {
			delete(b.byUser, s.viewer.UserID)
		}
	}
	if ok && s.counted {
		b.count--
	}
	return ok
}

// counted makes a subscriber that went live count among the live subscriptions, unless it
// was removed meanwhile.
func (b *Broker) counted(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.registered(s) {
		s.counted = true
		b.count++
	}
}

func (b *Broker) registered(s *subscriber) bool {
	switch {
	case s.orderID != 0:
		return slices.Contains(b.byOrder[s.orderID], s)
	case s.viewer.Role == store.RoleAdmin:
		return slices.Contains(b.admins, s)
	}
	return slices.Contains(b.byUser[s.viewer.UserID], s)
}

// OrderEvents subscribes to the events of one order until ctx ends (with a Listener in ctx:
// until its stop). With afterID > 0 it
// first replays the order's events after that one, and returns INVALID (field "after") when
// afterID is not an event of the order; otherwise it sends only events committed from now
// on. Visibility is the caller's to check.
func (b *Broker) OrderEvents(ctx context.Context, orderID, afterID int64) (<-chan *store.OrderStatusEvent, error) {
	s := &subscriber{orderID: orderID}
	// Subscribe first, then read the database: an event committed in between is both
	// pending and read, and the merge by ID keeps one copy.
	ch, err := b.subscribe(ctx, s, min(b.cfg.Buffer, orderBuffer))
	if err != nil {
		return nil, err
	}
	var last store.OrderStatusEvent
	var replay []store.OrderStatusEvent
	onShortStack(func() {
		if afterID > 0 {
			// One query: the cursor's event (when it is one of this order's) and those after it.
			replay, err = b.store.FindOrderEventsFrom(ctx, orderID, afterID)
			if err == nil && (len(replay) == 0 || replay[0].ID != afterID) {
				err = &store.Error{Code: store.CodeInvalid, Message: "after is not an event of this order", Field: []string{"after"}}
			}
			if err == nil {
				last, replay = replay[0], replay[1:]
			}
		} else {
			// Without a cursor only events committed from now on count: the order's latest
			// event is the starting point.
			last, err = b.store.FindLatestOrderEvent(ctx, orderID)
		}
	})
	if err != nil {
		b.unsubscribe(s)
		return nil, err
	}
	v := s.goLive(last, withAudience(replay, store.OrderEvent{}))
	b.counted(s)
	s.subscribed(b)
	if v == overflow {
		b.overflow(s)
	}
	return ch, nil
}

// onShortStack runs f in a goroutine of its own and waits for it. The caller is a
// subscription's goroutine, which lives as long as the subscription: the deep stack a
// database query grows (gorm, pgx) would stay with it until garbage collections shrink it,
// and multiplied by every subscriber of a reconnect storm that is most of the process's
// memory; a goroutine that ends frees its stack at once.
func onShortStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// Admit waits until a subscription may set up (read the database), and returns the function
// that ends its turn; it fails only when ctx ends first.
func (b *Broker) Admit(ctx context.Context) (func(), error) {
	select {
	case b.setups <- struct{}{}:
		return func() { <-b.setups }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// withAudience gives events read for one order the audience of like (routing is done by then).
func withAudience(events []store.OrderStatusEvent, like store.OrderEvent) []store.OrderEvent {
	out := make([]store.OrderEvent, len(events))
	for i, e := range events {
		out[i] = store.OrderEvent{OrderStatusEvent: e, CustomerID: like.CustomerID, MerchantIDs: like.MerchantIDs}
	}
	return out
}

// ViewerEvents subscribes to the events of every order v may see in `orders` until ctx ends
// (with a Listener in ctx: until its stop).
func (b *Broker) ViewerEvents(ctx context.Context, v store.Viewer) (<-chan *store.OrderStatusEvent, error) {
	s := &subscriber{viewer: v, recent: &recentIDs{}}
	ch, err := b.subscribe(ctx, s, b.cfg.Buffer)
	if err != nil {
		return nil, err
	}
	verdict := s.goLive(store.OrderStatusEvent{}, nil)
	b.counted(s)
	s.subscribed(b)
	if verdict == overflow {
		b.overflow(s)
	}
	return ch, nil
}

// CloseSubscriptions ends every subscription (the transports then complete them) and
// refuses new ones.
func (b *Broker) CloseSubscriptions() {
	b.mu.Lock()
	b.closed = true
	var all []*subscriber
	for _, l := range b.byOrder {
		all = append(all, l...)
	}
	for _, l := range b.byUser {
		all = append(all, l...)
	}
	all = append(all, b.admins...)
	b.byOrder, b.byUser, b.admins, b.count = map[int64][]*subscriber{}, map[int64][]*subscriber{}, nil, 0
	stock := b.takeStockSubscribers()
	b.mu.Unlock()
	for _, s := range all {
		s.giveSeat()
		s.close()
	}
	for _, s := range stock {
		s.close()
	}
}

// Close ends every subscription and the Redis subscription.
func (b *Broker) Close() {
	b.CloseSubscriptions()
	if b.stop != nil {
		b.stop()
		<-b.done
	}
}

// idSet remembers the last n IDs added, in two generations so that it stays bounded.
type idSet struct {
	mu        sync.Mutex
	n         int
	cur, prev map[int64]struct{}
}

func newIDSet(n int) idSet {
	return idSet{n: n, cur: make(map[int64]struct{}, n)}
}

// add reports whether id is new, remembering it.
func (s *idSet) add(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cur[id]; ok {
		return false
	}
	if _, ok := s.prev[id]; ok {
		return false
	}
	if len(s.cur) >= s.n {
		s.prev, s.cur = s.cur, make(map[int64]struct{}, s.n)
	}
	s.cur[id] = struct{}{}
	return true
}
