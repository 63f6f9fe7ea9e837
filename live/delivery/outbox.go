package delivery

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/store"
)

// Publisher publishes events to Redis after their transaction commits, in commit order, and
// marks them published. It is the store's EventSink: a commit never waits for Redis, and an
// event it could not publish (Redis down, queue full) stays unpublished for the Relay.
type Publisher struct {
	rdb     redis.UniversalClient
	store   Store
	channel string
	log     *slog.Logger
	queue   chan store.OrderEvent
	alerts  chan store.LowStockAlert
	stop    chan struct{}
	done    chan struct{}
	// Published counts events sent to Redis by this publisher; Failed those left to the relay.
	Published, Failed atomic.Int64
}

var _ store.EventSink = (*Publisher)(nil)

// NewPublisher returns a publisher to channel; Start runs it.
func NewPublisher(rdb redis.UniversalClient, st Store, channel string, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{rdb: rdb, store: st, channel: channel, log: log,
		queue: make(chan store.OrderEvent, 4096), alerts: make(chan store.LowStockAlert, 256), stop: make(chan struct{}), done: make(chan struct{})}
}

// OrderEventsCommitted queues events for publication without blocking.
func (p *Publisher) OrderEventsCommitted(_ context.Context, events []store.OrderEvent) {
	for _, e := range events {
		select {
		case p.queue <- e:
		default:
			p.Failed.Add(1) // the relay publishes it later
		}
	}
}

// Start runs the publisher until Close.
func (p *Publisher) Start() { go p.run() }

// Close publishes what is queued (briefly) and stops.
func (p *Publisher) Close() {
	close(p.stop)
	<-p.done
}

func (p *Publisher) run() {
	defer close(p.done)
	const maxBatch, markEvery = 256, 50 * time.Millisecond
	var toMark []int64
	tick := time.NewTicker(markEvery)
	defer tick.Stop()
	mark := func() {
		if len(toMark) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.store.MarkEventsPublished(ctx, toMark); err != nil {
			// Harmless: the relay republishes them and subscribers drop the duplicates.
			p.log.Warn("live: mark events published", "err", err)
		}
		toMark = toMark[:0]
	}
	defer mark()
	batch := make([]store.OrderEvent, 0, maxBatch)
	for {
		select {
		case <-p.stop:
			// Publish what is already queued, then stop; anything left is the relay's.
			for {
				select {
				case e := <-p.queue:
					batch = append(batch[:0], e)
					toMark = append(toMark, p.publish(batch)...)
				case a := <-p.alerts:
					p.publishAlerts([]store.LowStockAlert{a})
				default:
					return
				}
			}
		case <-tick.C:
			mark()
		case a := <-p.alerts:
			p.publishAlerts([]store.LowStockAlert{a})
		case e := <-p.queue:
			batch = append(batch[:0], e)
		more:
			for len(batch) < maxBatch {
				select {
				case e := <-p.queue:
					batch = append(batch, e)
				default:
					break more
				}
			}
			toMark = append(toMark, p.publish(batch)...)
			if len(toMark) >= 512 {
				mark()
			}
		}
	}
}

// publish sends events in one pipeline and returns the IDs Redis accepted.
func (p *Publisher) publish(events []store.OrderEvent) []int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := publish(ctx, p.rdb, p.channel, events); err != nil {
		p.Failed.Add(int64(len(events)))
		p.log.Warn("live: publish failed; the relay will retry", "events", len(events), "err", err)
		return nil
	}
	p.Published.Add(int64(len(events)))
	ids := make([]int64, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

func publish(ctx context.Context, rdb redis.UniversalClient, channel string, events []store.OrderEvent) error {
	cmds, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, e := range events {
			b, err := encode(e)
			if err != nil {
				return err
			}
			pipe.Publish(ctx, channel, b)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if c.Err() != nil {
			return c.Err()
		}
	}
	return nil
}

// Relay republishes committed events whose publication was never confirmed: those committed
// while Redis was down, or by a process that died before publishing. Every process runs one;
// the store's row locks make concurrent relays take different events.
type Relay struct {
	rdb      redis.UniversalClient
	store    Store
	channel  string
	interval time.Duration
	grace    time.Duration
	log      *slog.Logger
	stop     chan struct{}
	done     chan struct{}
	// Relayed counts events this relay published.
	Relayed atomic.Int64
}

// NewRelay returns a relay that looks every interval for events unpublished for grace.
func NewRelay(rdb redis.UniversalClient, st Store, channel string, interval, grace time.Duration, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{rdb: rdb, store: st, channel: channel, interval: interval, grace: grace, log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Start runs the relay until Close.
func (r *Relay) Start() { go r.run() }

// Close stops the relay.
func (r *Relay) Close() {
	close(r.stop)
	<-r.done
}

func (r *Relay) run() {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			for r.RelayOnce() == relayBatch { // a full batch: there may be more
			}
			for r.relayLowStock() == relayBatch {
			}
		}
	}
}

const relayBatch = 500

// RelayOnce publishes one batch of overdue events and returns how many it published.
func (r *Relay) RelayOnce() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := r.store.RelayUnpublishedEvents(ctx, time.Now().Add(-r.grace), relayBatch,
		func(ctx context.Context, events []store.OrderEvent) error {
			return publish(ctx, r.rdb, r.channel, events)
		})
	if err != nil {
		r.log.Warn("live: relay", "err", err)
		return 0
	}
	if n > 0 {
		r.Relayed.Add(int64(n))
		r.log.Info("live: relayed unpublished events", "events", n)
	}
	return n
}
