package store

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

type eventRow struct {
	ID             int64 `gorm:"primaryKey"`
	OrderID        int64
	Status         string
	PreviousStatus *string
	Note           *string
	At             time.Time
	PublishedAt    *time.Time
}

func (eventRow) TableName() string { return "order_status_events" }

func (r *eventRow) columns() []column {
	return []column{{"id", &r.ID}, {"order_id", &r.OrderID}, {"status", &r.Status}, {"previous_status", &r.PreviousStatus},
		{"note", &r.Note}, {"at", &r.At}, {"published_at", &r.PublishedAt}}
}

func (r eventRow) toEvent() OrderStatusEvent {
	e := OrderStatusEvent{ID: r.ID, OrderID: r.OrderID, Status: OrderStatus(r.Status), Note: r.Note, At: r.At}
	if r.PreviousStatus != nil {
		prev := OrderStatus(*r.PreviousStatus)
		e.PreviousStatus = &prev
	}
	return e
}

// OrderEvent is a committed status event with who may see it, for live delivery.
type OrderEvent struct {
	OrderStatusEvent
	CustomerID  int64
	MerchantIDs []int64
}

// VisibleTo reports whether v may see the event's order.
func (e OrderEvent) VisibleTo(v Viewer) bool { return CanSeeOrder(v, e.CustomerID, e.MerchantIDs) }

// EventSink is told of status events after their transaction commits.
type EventSink interface {
	OrderEventsCommitted(ctx context.Context, events []OrderEvent)
}

// SetEventSink makes sink receive every status event this process commits from now on.
func (s *Store) SetEventSink(sink EventSink) { s.sink = sink }

func (s *Store) notify(ctx context.Context, events ...OrderEvent) {
	if s.sink != nil {
		s.sink.OrderEventsCommitted(ctx, events)
	}
}

// appendEvent records a status change in the order's history, inside the change's transaction.
func appendEvent(tx *gorm.DB, orderID int64, status OrderStatus, prev *OrderStatus, note *string, at time.Time) (OrderStatusEvent, error) {
	row := eventRow{OrderID: orderID, Status: string(status), Note: note, At: at}
	if prev != nil {
		p := string(*prev)
		row.PreviousStatus = &p
	}
	if err := tx.Create(&row).Error; err != nil {
		return OrderStatusEvent{}, err
	}
	return row.toEvent(), nil
}

// FindEventsByOrderIDs returns the status events of these orders, oldest first.
func (s *Store) FindEventsByOrderIDs(ctx context.Context, orderIDs []int64) ([]OrderStatusEvent, error) {
	q := s.reads(ctx).Where("order_id IN ?", orderIDs).Order("order_id, id")
	return findAll(q, "find order events", eventRow.toEvent)
}

// The outbox: every status event row is written in its order's transaction with
// published_at NULL; live delivery publishes it after commit and marks it published. Rows
// still unpublished after a grace period are republished by a relay, so an event committed
// while Redis was unreachable still reaches subscribers.

// audience returns the events of rows with who may see them: each order's customer and the
// merchants of its lines.
func (s *Store) audience(db *gorm.DB, rows []eventRow) ([]OrderEvent, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	orderIDs := make([]int64, 0, len(rows))
	for _, r := range rows {
		if !slices.Contains(orderIDs, r.OrderID) {
			orderIDs = append(orderIDs, r.OrderID)
		}
	}
	var orders []orderRow
	if err := db.Select("id", "customer_id").Where("id IN ?", orderIDs).Find(&orders).Error; err != nil {
		return nil, err
	}
	var items []orderItemRow
	if err := db.Select("order_id", "merchant_id").Where("order_id IN ?", orderIDs).Find(&items).Error; err != nil {
		return nil, err
	}
	customers := make(map[int64]int64, len(orders))
	for _, o := range orders {
		customers[o.ID] = o.CustomerID
	}
	merchants := make(map[int64][]int64, len(orders))
	for _, it := range items {
		if !slices.Contains(merchants[it.OrderID], it.MerchantID) {
			merchants[it.OrderID] = append(merchants[it.OrderID], it.MerchantID)
		}
	}
	events := make([]OrderEvent, len(rows))
	for i, r := range rows {
		events[i] = OrderEvent{OrderStatusEvent: r.toEvent(), CustomerID: customers[r.OrderID], MerchantIDs: merchants[r.OrderID]}
	}
	return events, nil
}

// MarkEventsPublished records that these events reached Redis, so the relay leaves them alone.
func (s *Store) MarkEventsPublished(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Model(&eventRow{}).Where("id IN ? AND published_at IS NULL", ids).
		Update("published_at", s.now()).Error
	return translate("mark events published", err)
}

// RelayUnpublishedEvents hands publish up to limit committed events that are still
// unpublished and were written before olderThan, oldest first, and marks them published
// when publish succeeds. On PostgreSQL the rows stay locked (FOR UPDATE SKIP LOCKED) until
// then, so relays running in several processes at once each take different events and none
// publishes an event another is publishing. It returns how many events were published; a
// publish error leaves them unpublished for the next round.
func (s *Store) RelayUnpublishedEvents(ctx context.Context, olderThan time.Time, limit int,
	publish func(context.Context, []OrderEvent) error) (int, error) {
	// Most rounds find nothing: look first without a transaction (the partial index on
	// unpublished events makes it cheap), so an idle relay never takes SQLite's write lock.
	var pending []int64
	if err := s.db.WithContext(ctx).Model(&eventRow{}).Where("published_at IS NULL AND at < ?", olderThan.UTC()).
		Limit(1).Pluck("id", &pending).Error; err != nil {
		return 0, translate("relay unpublished events", err)
	}
	if len(pending) == 0 {
		return 0, nil
	}
	n := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Where("published_at IS NULL AND at < ?", olderThan.UTC()).Order("id").Limit(limit)
		if s.Postgres() {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		var rows []eventRow
		if err := q.Find(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		events, err := s.audience(tx, rows)
		if err != nil {
			return err
		}
		if err := publish(ctx, events); err != nil {
			return err
		}
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		n = len(rows)
		return tx.Model(&eventRow{}).Where("id IN ?", ids).Update("published_at", s.now()).Error
	})
	if err != nil {
		return 0, translate("relay unpublished events", err)
	}
	return n, nil
}

// FindOrderEventsFrom returns the events of an order with an ID of at least fromID, oldest
// first: a subscription's replay after a cursor (the cursor's own event first, when it is an
// event of this order), or what a subscriber missed.
func (s *Store) FindOrderEventsFrom(ctx context.Context, orderID, fromID int64) ([]OrderStatusEvent, error) {
	q := s.db.WithContext(ctx).Where("order_id = ? AND id >= ?", orderID, fromID).Order("id")
	return findAll(q, "find order events from", eventRow.toEvent)
}

// FindLatestOrderEvent returns the newest event of an order, or NOT_FOUND when it has none.
func (s *Store) FindLatestOrderEvent(ctx context.Context, orderID int64) (OrderStatusEvent, error) {
	var row eventRow
	if err := s.db.WithContext(ctx).Where("order_id = ?", orderID).Order("id DESC").Take(&row).Error; err != nil {
		return OrderStatusEvent{}, translate("find latest order event", err)
	}
	return row.toEvent(), nil
}

// FindEventsSince returns up to limit events written at or after since, oldest first, with
// who may see them: what a process missed while its Redis subscription was down.
func (s *Store) FindEventsSince(ctx context.Context, since time.Time, limit int) ([]OrderEvent, error) {
	db := s.db.WithContext(ctx)
	var rows []eventRow
	if err := db.Where("at >= ?", since.UTC()).Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, translate("find events since", err)
	}
	events, err := s.audience(db, rows)
	return events, translate("find events since", err)
}
