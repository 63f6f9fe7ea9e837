package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/store"
)

// Low-stock alerts take the order events' path: the alert row written with the stock
// change is the outbox, the Publisher sends it on the same channel after commit (marked
// "lowStock"), the Relay republishes what was never marked published, and the Broker hands
// it to the lowStock subscribers that may hear of it, once per alert ID.

// wireProduct is a product as a low-stock message carries it.
type wireProduct struct {
	ID                int64     `json:"id"`
	MerchantID        int64     `json:"merchantId"`
	Name              string    `json:"name"`
	Description       string    `json:"description"`
	Price             int       `json:"price"`
	Stock             int       `json:"stock"`
	LowStockThreshold int       `json:"lowStockThreshold"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

const kindLowStock = "lowStock"

func encodeLowStock(a store.LowStockAlert) ([]byte, error) {
	p := a.Product
	return json.Marshal(wireEvent{Kind: kindLowStock, ID: a.ID, At: a.At, Product: &wireProduct{ID: p.ID,
		MerchantID: p.MerchantID, Name: p.Name, Description: p.Description, Price: int(p.Price), Stock: p.Stock,
		LowStockThreshold: p.LowStockThreshold, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}})
}

func (w wireEvent) lowStock() (store.LowStockAlert, error) {
	p := w.Product
	if w.ID <= 0 || p == nil || p.ID <= 0 {
		return store.LowStockAlert{}, errors.New("low-stock alert without id")
	}
	return store.LowStockAlert{ID: w.ID, At: w.At, Product: store.Product{ID: p.ID, MerchantID: p.MerchantID,
		Name: p.Name, Description: p.Description, Price: store.Money(p.Price), Stock: p.Stock,
		LowStockThreshold: p.LowStockThreshold, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}}, nil
}

func publishLowStock(ctx context.Context, rdb redis.UniversalClient, channel string, alerts []store.LowStockAlert) error {
	cmds, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, a := range alerts {
			b, err := encodeLowStock(a)
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

var _ store.LowStockSink = (*Publisher)(nil)

// LowStockCommitted queues alerts for publication without blocking.
func (p *Publisher) LowStockCommitted(_ context.Context, alerts []store.LowStockAlert) {
	for _, a := range alerts {
		select {
		case p.alerts <- a:
		default:
			p.Failed.Add(1) // the relay publishes it later
		}
	}
}

// publishAlerts sends alerts and marks them published; a failure leaves them to the relay.
func (p *Publisher) publishAlerts(alerts []store.LowStockAlert) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := publishLowStock(ctx, p.rdb, p.channel, alerts); err != nil {
		p.Failed.Add(int64(len(alerts)))
		p.log.Warn("live: publish low-stock alerts failed; the relay will retry", "alerts", len(alerts), "err", err)
		return
	}
	p.Published.Add(int64(len(alerts)))
	ids := make([]int64, len(alerts))
	for i, a := range alerts {
		ids[i] = a.ID
	}
	if err := p.store.MarkLowStockPublished(ctx, ids); err != nil {
		p.log.Warn("live: mark low-stock alerts published", "err", err)
	}
}

// relayLowStock publishes one batch of overdue alerts and returns how many it published.
func (r *Relay) relayLowStock() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := r.store.RelayUnpublishedLowStock(ctx, time.Now().Add(-r.grace), relayBatch,
		func(ctx context.Context, alerts []store.LowStockAlert) error {
			return publishLowStock(ctx, r.rdb, r.channel, alerts)
		})
	if err != nil {
		r.log.Warn("live: relay low-stock alerts", "err", err)
		return 0
	}
	r.Relayed.Add(int64(n))
	return n
}

// stockSubscriber is one lowStock subscription: a bounded buffer of products.
type stockSubscriber struct {
	viewer   store.Viewer
	listener Listener
	counted  bool // guarded by the broker's lock

	mu     sync.Mutex
	ch     chan *store.Product
	closed bool
}

func (s *stockSubscriber) offer(p store.Product) verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dropped
	}
	select {
	case s.ch <- &p:
		return delivered
	default:
		s.closed = true
		return overflow
	}
}

func (s *stockSubscriber) close() {
	s.mu.Lock()
	if s.ch == nil {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.ch)
	s.ch = nil
	s.mu.Unlock()
	if s.listener != nil {
		s.listener.Ready()
	}
}

// stockSubscribers are the broker's lowStock subscribers: merchants by user ID, and admins.
type stockSubscribers struct {
	byMerchant map[int64][]*stockSubscriber
	admins     []*stockSubscriber
	seen       idSet // alerts dispatched recently, to drop republished duplicates
}

func newStockSubscribers() stockSubscribers {
	return stockSubscribers{byMerchant: map[int64][]*stockSubscriber{}, seen: newIDSet(1 << 12)}
}

// LowStock subscribes v (a MERCHANT or an ADMIN; the caller checks) to low-stock alerts
// until ctx ends (with a Listener in ctx: until its stop): a merchant hears of their
// products, an admin of every product.
func (b *Broker) LowStock(ctx context.Context, v store.Viewer) (<-chan *store.Product, error) {
	ch := make(chan *store.Product, b.cfg.Buffer)
	s := &stockSubscriber{viewer: v, listener: listenerFrom(ctx), ch: ch}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if v.Role == store.RoleAdmin {
		b.stock.admins = append(b.stock.admins, s)
	} else {
		b.stock.byMerchant[v.UserID] = append(b.stock.byMerchant[v.UserID], s)
	}
	s.counted = true
	b.count++
	b.mu.Unlock()
	stop := func() { b.unsubscribeStock(s) }
	if s.listener != nil {
		s.listener.Subscribed(stop)
	} else {
		context.AfterFunc(ctx, stop)
	}
	return ch, nil
}

func (b *Broker) unsubscribeStock(s *stockSubscriber) {
	b.removeStock(s)
	s.close()
}

func (b *Broker) removeStock(s *stockSubscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := b.stock.admins
	if s.viewer.Role != store.RoleAdmin {
		list = b.stock.byMerchant[s.viewer.UserID]
	}
	i := slices.Index(list, s)
	if i < 0 {
		return
	}
	list = slices.Delete(list, i, i+1)
	switch {
	case s.viewer.Role == store.RoleAdmin:
		b.stock.admins = list
	case len(list) == 0:
		delete(b.stock.byMerchant, s.viewer.UserID)
	default:
		b.stock.byMerchant[s.viewer.UserID] = list
	}
	if s.counted {
		b.count--
		s.counted = false
	}
}

// dispatchLowStock hands an alert to the subscribers who may hear of it, once.
func (b *Broker) dispatchLowStock(a store.LowStockAlert) {
	if !b.stock.seen.add(a.ID) {
		return
	}
	b.mu.Lock()
	targets := append(slices.Clone(b.stock.admins), b.stock.byMerchant[a.Product.MerchantID]...)
	b.mu.Unlock()
	for _, s := range targets {
		if !a.VisibleTo(s.viewer) {
			continue
		}
		switch s.offer(a.Product) {
		case delivered:
			b.Delivered.Add(1)
			if s.listener != nil {
				s.listener.Ready()
			}
		case overflow:
			b.Overflows.Add(1)
			b.removeStock(s)
			if s.listener != nil {
				s.listener.Overflow()
			} else {
				s.close()
			}
		}
	}
}

// catchUpLowStock dispatches the alerts committed while the subscription was down.
func (b *Broker) catchUpLowStock(ctx context.Context, since time.Time) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	alerts, err := b.store.FindLowStockSince(ctx, since, 10000)
	if err != nil {
		b.log.Error("live: catch up low-stock alerts", "err", err)
		return
	}
	for _, a := range alerts {
		b.dispatchLowStock(a)
	}
}

// takeStockSubscribers forgets every lowStock subscriber and returns them; the caller holds
// the broker's lock and closes them after releasing it.
func (b *Broker) takeStockSubscribers() []*stockSubscriber {
	all := slices.Clone(b.stock.admins)
	for _, l := range b.stock.byMerchant {
		all = append(all, l...)
	}
	b.stock.admins, b.stock.byMerchant = nil, map[int64][]*stockSubscriber{}
	return all
}
