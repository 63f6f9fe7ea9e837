package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Low-stock alerts travel like order status events (see event.go): a row written in the
// transaction whose stock change crossed the threshold, published after commit, and
// republished by the relay when publishing failed, so a crossing is announced once
// whichever process made it, also when Redis was away at that moment.

// LowStockAlert is a product whose stock fell to or below its low-stock threshold, as the
// change left it.
type LowStockAlert struct {
	ID      int64
	Product Product
	At      time.Time
}

// VisibleTo reports whether v hears of the alert: the product's merchant and ADMINs.
func (a LowStockAlert) VisibleTo(v Viewer) bool {
	return v.Role == RoleAdmin || (v.Role == RoleMerchant && v.UserID == a.Product.MerchantID)
}

type alertRow struct {
	ID          int64 `gorm:"primaryKey"`
	ProductID   int64
	MerchantID  int64
	Stock       int
	At          time.Time
	PublishedAt *time.Time
}

func (alertRow) TableName() string { return "low_stock_alerts" }

// LowStockSink is told of low-stock alerts after their transaction commits; an EventSink
// that is one too receives them.
type LowStockSink interface {
	LowStockCommitted(ctx context.Context, alerts []LowStockAlert)
}

// queueLowStock writes the alerts of the crossings in ms inside their transaction.
func queueLowStock(tx *gorm.DB, at time.Time, ms []movement) ([]LowStockAlert, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	rows := make([]alertRow, len(ms))
	for i, m := range ms {
		rows[i] = alertRow{ProductID: m.product.ID, MerchantID: m.product.MerchantID, Stock: m.product.Stock, At: at}
	}
	if err := tx.Create(&rows).Error; err != nil {
		return nil, err
	}
	alerts := make([]LowStockAlert, len(ms))
	for i, m := range ms {
		alerts[i] = LowStockAlert{ID: rows[i].ID, Product: m.product, At: at}
	}
	return alerts, nil
}

func (s *Store) notifyLowStock(ctx context.Context, alerts []LowStockAlert) {
	if len(alerts) == 0 {
		return
	}
	if sink, ok := s.sink.(LowStockSink); ok {
		sink.LowStockCommitted(ctx, alerts)
	}
}

// MarkLowStockPublished records that these alerts reached Redis.
func (s *Store) MarkLowStockPublished(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Model(&alertRow{}).Where("id IN ? AND published_at IS NULL", ids).
		Update("published_at", s.now()).Error
	return translate("mark low-stock alerts published", err)
}

// alertsOf returns the alerts of rows with their products as they are now (the stock as the
// crossing left it).
func alertsOf(db *gorm.DB, rows []alertRow) ([]LowStockAlert, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ProductID
	}
	var products []productRow
	if err := db.Where("id IN ?", ids).Find(&products).Error; err != nil {
		return nil, err
	}
	byID := make(map[int64]Product, len(products))
	for _, p := range products {
		byID[p.ID] = p.toProduct()
	}
	alerts := make([]LowStockAlert, 0, len(rows))
	for _, r := range rows {
		p, ok := byID[r.ProductID]
		if !ok {
			continue
		}
		p.Stock = r.Stock
		alerts = append(alerts, LowStockAlert{ID: r.ID, Product: p, At: r.At})
	}
	return alerts, nil
}

// RelayUnpublishedLowStock hands publish up to limit alerts still unpublished and written
// before olderThan, and marks them published when publish succeeds, as
// RelayUnpublishedEvents does for status events.
func (s *Store) RelayUnpublishedLowStock(ctx context.Context, olderThan time.Time, limit int,
	publish func(context.Context, []LowStockAlert) error) (int, error) {
	var pending []int64
	if err := s.db.WithContext(ctx).Model(&alertRow{}).Where("published_at IS NULL AND at < ?", olderThan.UTC()).
		Limit(1).Pluck("id", &pending).Error; err != nil {
		return 0, translate("relay low-stock alerts", err)
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
		var rows []alertRow
		if err := q.Find(&rows).Error; err != nil || len(rows) == 0 {
			return err
		}
		alerts, err := alertsOf(tx, rows)
		if err != nil {
			return err
		}
		if err := publish(ctx, alerts); err != nil {
			return err
		}
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		n = len(rows)
		return tx.Model(&alertRow{}).Where("id IN ?", ids).Update("published_at", s.now()).Error
	})
	if err != nil {
		return 0, translate("relay low-stock alerts", err)
	}
	return n, nil
}

// FindLowStockSince returns up to limit alerts written at or after since, oldest first:
// what a process missed while its Redis subscription was down.
func (s *Store) FindLowStockSince(ctx context.Context, since time.Time, limit int) ([]LowStockAlert, error) {
	db := s.db.WithContext(ctx)
	var rows []alertRow
	if err := db.Where("at >= ?", since.UTC()).Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, translate("find low-stock alerts since", err)
	}
	alerts, err := alertsOf(db, rows)
	return alerts, translate("find low-stock alerts since", err)
}
