package store

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Shipment is lines of an order handed to a carrier by MerchantID (the merchant of those
// lines, or the ADMIN who shipped them).
type Shipment struct {
	ID             int64
	OrderID        int64
	MerchantID     int64
	Carrier        string
	TrackingNumber string
	TrackingURL    *string
	ShippedAt      time.Time
	DeliveredAt    *time.Time
}

func (Shipment) node() {}

type shipmentRow struct {
	ID             int64 `gorm:"primaryKey"`
	OrderID        int64
	MerchantID     int64
	Carrier        string
	TrackingNumber string
	TrackingURL    *string
	ShippedAt      time.Time
	DeliveredAt    *time.Time
}

func (shipmentRow) TableName() string { return "shipments" }

func (r *shipmentRow) columns() []column {
	return []column{{"id", &r.ID}, {"order_id", &r.OrderID}, {"merchant_id", &r.MerchantID}, {"carrier", &r.Carrier},
		{"tracking_number", &r.TrackingNumber}, {"tracking_url", &r.TrackingURL}, {"shipped_at", &r.ShippedAt},
		{"delivered_at", &r.DeliveredAt}}
}

func (r shipmentRow) toShipment() Shipment { return Shipment(r) }

type shipmentItemRow struct {
	ShipmentID int64 `gorm:"primaryKey"`
	OrderID    int64
	Position   int `gorm:"primaryKey"`
}

func (shipmentItemRow) TableName() string { return "shipment_items" }

// ShipmentItem is an order line in a shipment.
type ShipmentItem struct {
	ShipmentID int64
	OrderItem
}

// Limits of a shipment's input.
const MaxTrackingLength = 100

// NewShipment is a shipment to make; TrackingURL is optional.
type NewShipment struct {
	OrderID        int64
	Carrier        string
	TrackingNumber string
	TrackingURL    *string
}

func (in NewShipment) validate() error {
	var v validator
	for _, f := range []struct{ val, name string }{{in.Carrier, "carrier"}, {in.TrackingNumber, "trackingNumber"}} {
		if n := len([]rune(strings.TrimSpace(f.val))); n < 1 || n > MaxTrackingLength {
			v.add(fmt.Sprintf("must be 1 to %d characters", MaxTrackingLength), f.name)
		}
	}
	if in.TrackingURL != nil {
		u, err := url.Parse(*in.TrackingURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || len(*in.TrackingURL) > 2000 {
			v.add("must be an absolute https URL", "trackingUrl")
		}
	}
	return v.errs.err()
}

// ShipOrder ships the viewer's unshipped lines of a PAID order: a MERCHANT's own, every one
// for an ADMIN. When no line is left unshipped the order becomes SHIPPED in the same
// transaction. It returns UNAUTHENTICATED, INVALID for bad input, NOT_FOUND when the viewer
// may not see the order, FORBIDDEN for a viewer who sees it but has no line to ship in it
// (a customer, or a merchant without a product in it), and INVALID_TRANSITION (field
// orderId) when it is not PAID or nothing is left for the viewer to ship.
func (s *Store) ShipOrder(ctx context.Context, viewer Viewer, in NewShipment) (Shipment, error) {
	if err := checkSignedIn(viewer); err != nil {
		return Shipment{}, err
	}
	if err := in.validate(); err != nil {
		return Shipment{}, err
	}
	var order orderRow
	var items []orderItemRow
	var ship shipmentRow
	var event *OrderStatusEvent
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&order, in.OrderID).Error; err != nil {
			return err
		}
		if err := tx.Where("order_id = ?", order.ID).Order("position").Find(&items).Error; err != nil {
			return err
		}
		merchants := merchantsOf(items)
		if !CanSeeOrder(viewer, order.CustomerID, merchants) {
			return newError(CodeNotFound, "not found")
		}
		if viewer.Role != RoleAdmin && (viewer.Role != RoleMerchant || !slices.Contains(merchants, viewer.UserID)) {
			return newError(CodeForbidden, "only the merchant of a line or an admin may ship it")
		}
		if order.Status != string(StatusPaid) {
			return newError(CodeInvalidTransition, fmt.Sprintf("a %s order cannot be shipped", order.Status), "orderId")
		}
		var shipped []int
		if err := tx.Model(&shipmentItemRow{}).Where("order_id = ?", order.ID).Pluck("position", &shipped).Error; err != nil {
			return err
		}
		var lines []shipmentItemRow
		for _, it := range items {
			if !slices.Contains(shipped, it.Position) && (viewer.Role == RoleAdmin || it.MerchantID == viewer.UserID) {
				lines = append(lines, shipmentItemRow{OrderID: order.ID, Position: it.Position})
			}
		}
		if len(lines) == 0 {
			return newError(CodeInvalidTransition, "nothing is left for you to ship in this order", "orderId")
		}
		now := s.now()
		ship = shipmentRow{OrderID: order.ID, MerchantID: viewer.UserID, Carrier: strings.TrimSpace(in.Carrier),
			TrackingNumber: strings.TrimSpace(in.TrackingNumber), TrackingURL: in.TrackingURL, ShippedAt: now}
		if err := tx.Create(&ship).Error; err != nil {
			return err
		}
		for i := range lines {
			lines[i].ShipmentID = ship.ID
		}
		if err := tx.Create(&lines).Error; err != nil {
			return err
		}
		if len(shipped)+len(lines) < len(items) {
			return nil
		}
		note := ship.Carrier + " " + ship.TrackingNumber
		e, err := s.moveOrder(ctx, tx, &order, items, StatusShipped, &note, ReasonOrderCancelled)
		event = &e
		return err
	})
	if err != nil {
		return Shipment{}, translate("ship order", err)
	}
	if event != nil {
		s.committed(ctx, order, items, *event, false)
	}
	s.wrote(ctx, viewer.UserID)
	return ship.toShipment(), nil
}

// MarkShipmentDelivered records a shipment's delivery; when every shipment of a SHIPPED
// order is delivered, the order becomes DELIVERED in the same transaction. It returns
// UNAUTHENTICATED, NOT_FOUND when the viewer may not see the shipment's order, FORBIDDEN
// unless the viewer shipped it or is an ADMIN, and INVALID_TRANSITION when it was already
// delivered.
func (s *Store) MarkShipmentDelivered(ctx context.Context, viewer Viewer, id int64) (Shipment, error) {
	if err := checkSignedIn(viewer); err != nil {
		return Shipment{}, err
	}
	var order orderRow
	var items []orderItemRow
	var ship shipmentRow
	var event *OrderStatusEvent
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Take(&ship, id).Error; err != nil {
			return err
		}
		// The order's lock serialises the deliveries of its shipments: the last one sees
		// every other one delivered.
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&order, ship.OrderID).Error; err != nil {
			return err
		}
		if err := tx.Take(&ship, id).Error; err != nil {
			return err
		}
		if err := tx.Where("order_id = ?", order.ID).Order("position").Find(&items).Error; err != nil {
			return err
		}
		if !CanSeeOrder(viewer, order.CustomerID, merchantsOf(items)) {
			return newError(CodeNotFound, "not found")
		}
		if viewer.Role != RoleAdmin && viewer.UserID != ship.MerchantID {
			return newError(CodeForbidden, "only who shipped it or an admin may mark it delivered")
		}
		if ship.DeliveredAt != nil {
			return newError(CodeInvalidTransition, "this shipment was already delivered", "id")
		}
		now := s.now()
		ship.DeliveredAt = &now
		if err := tx.Model(&shipmentRow{}).Where("id = ?", id).Update("delivered_at", now).Error; err != nil {
			return err
		}
		if order.Status != string(StatusShipped) {
			return nil
		}
		var undelivered int64
		if err := tx.Model(&shipmentRow{}).Where("order_id = ? AND delivered_at IS NULL", order.ID).
			Count(&undelivered).Error; err != nil {
			return err
		}
		if undelivered > 0 {
			return nil
		}
		e, err := s.moveOrder(ctx, tx, &order, items, StatusDelivered, nil, ReasonOrderCancelled)
		event = &e
		return err
	})
	if err != nil {
		return Shipment{}, translate("mark shipment delivered", err)
	}
	if event != nil {
		s.committed(ctx, order, items, *event, false)
	}
	s.wrote(ctx, viewer.UserID)
	return ship.toShipment(), nil
}

// FindShipmentsByIDs returns the shipments with these IDs, in no particular order; callers
// check visibility. Unknown IDs are left out.
func (s *Store) FindShipmentsByIDs(ctx context.Context, ids []int64) ([]Shipment, error) {
	return findAll(s.reads(ctx).Where("id IN ?", ids), "find shipments", shipmentRow.toShipment)
}

// FindShipmentsByOrderIDs returns the shipments of these orders, each order's oldest first.
func (s *Store) FindShipmentsByOrderIDs(ctx context.Context, orderIDs []int64) ([]Shipment, error) {
	q := s.reads(ctx).Where("order_id IN ?", orderIDs).Order("order_id, id")
	return findAll(q, "find shipments of orders", shipmentRow.toShipment)
}

// FindItemsByShipmentIDs returns the order lines of these shipments, each shipment's in
// the order's order.
func (s *Store) FindItemsByShipmentIDs(ctx context.Context, shipmentIDs []int64) ([]ShipmentItem, error) {
	var rows []struct {
		ShipmentID int64
		OrderID    int64
		ProductID  int64
		MerchantID int64
		Quantity   int
		UnitPrice  int
	}
	err := s.reads(ctx).Raw(`SELECT si.shipment_id, oi.order_id, oi.product_id, oi.merchant_id, oi.quantity, oi.unit_price
FROM shipment_items si JOIN order_items oi ON oi.order_id = si.order_id AND oi.position = si.position
WHERE si.shipment_id IN ? ORDER BY si.shipment_id, si.position`, shipmentIDs).Scan(&rows).Error
	if err != nil {
		return nil, translate("find shipment items", err)
	}
	out := make([]ShipmentItem, len(rows))
	for i, r := range rows {
		out[i] = ShipmentItem{ShipmentID: r.ShipmentID, OrderItem: OrderItem{OrderID: r.OrderID, ProductID: r.ProductID,
			MerchantID: r.MerchantID, Quantity: r.Quantity, UnitPrice: Money(r.UnitPrice)}}
	}
	return out, nil
}
