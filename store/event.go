package store

import (
	"context"
	"time"

	"gorm.io/gorm"
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
	var rows []eventRow
	if err := s.db.WithContext(ctx).Where("order_id IN ?", orderIDs).Order("order_id, id").Find(&rows).Error; err != nil {
		return nil, translate("find order events", err)
	}
	events := make([]OrderStatusEvent, len(rows))
	for i, r := range rows {
		events[i] = r.toEvent()
	}
	return events, nil
}

// FindEventByID returns one status event, or NOT_FOUND.
func (s *Store) FindEventByID(ctx context.Context, id int64) (OrderStatusEvent, error) {
	var row eventRow
	if err := s.db.WithContext(ctx).Take(&row, id).Error; err != nil {
		return OrderStatusEvent{}, translate("find order event", err)
	}
	return row.toEvent(), nil
}
