package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// The stock ledger: every change of a product's stock appends a stock movement in the
// change's transaction, under the product's row lock (PostgreSQL) or SQLite's one writer,
// so the sum of a product's deltas is its stock and each movement's stockAfter is exact.

// StockMovementReason says why a product's stock changed.
type StockMovementReason string

// Reasons of stock movements.
const (
	ReasonCreated            StockMovementReason = "CREATED"
	ReasonOrderPlaced        StockMovementReason = "ORDER_PLACED"
	ReasonOrderCancelled     StockMovementReason = "ORDER_CANCELLED"
	ReasonReservationExpired StockMovementReason = "RESERVATION_EXPIRED"
	ReasonAdjustment         StockMovementReason = "ADJUSTMENT"
	ReasonProductUpdate      StockMovementReason = "PRODUCT_UPDATE"
)

// MaxReasonLength bounds an adjustment's reason.
const MaxReasonLength = 200

// StockMovement is one change of a product's stock; OrderID is set for the changes an
// order caused.
type StockMovement struct {
	ID         int64
	ProductID  int64
	Delta      int
	StockAfter int
	Reason     StockMovementReason
	Note       *string
	OrderID    *int64
	At         time.Time
}

type movementRow struct {
	ID         int64 `gorm:"primaryKey"`
	ProductID  int64
	Delta      int
	StockAfter int
	Reason     string
	Note       *string
	OrderID    *int64
	At         time.Time
}

func (movementRow) TableName() string { return "stock_movements" }

func (r *movementRow) columns() []column {
	return []column{{"id", &r.ID}, {"product_id", &r.ProductID}, {"delta", &r.Delta}, {"stock_after", &r.StockAfter},
		{"reason", &r.Reason}, {"note", &r.Note}, {"order_id", &r.OrderID}, {"at", &r.At}}
}

func (r movementRow) toMovement() StockMovement {
	return StockMovement{ID: r.ID, ProductID: r.ProductID, Delta: r.Delta, StockAfter: r.StockAfter,
		Reason: StockMovementReason(r.Reason), Note: r.Note, OrderID: r.OrderID, At: r.At}
}

// movement is a stock change to record; stockBefore and threshold tell whether it crossed
// the product's low-stock threshold.
type movement struct {
	product     Product // as the change left it
	delta       int
	reason      StockMovementReason
	note        *string
	orderID     *int64
	stockBefore int
}

// crossedLow reports whether the change took the stock from above the product's low-stock
// threshold to at or below it (a threshold of 0 never alerts).
func (m movement) crossedLow() bool {
	t := m.product.LowStockThreshold
	return t > 0 && m.stockBefore > t && m.product.Stock <= t
}

// appendMovements records changes in one multi-row INSERT inside their transaction (an
// order of fifty lines is one statement), and queues the low-stock alerts they raise in the
// same transaction. Changes of zero are left out: a write that keeps the stock appends none.
func appendMovements(tx *gorm.DB, at time.Time, ms []movement) ([]LowStockAlert, error) {
	var b strings.Builder
	args := make([]any, 0, 7*len(ms))
	b.WriteString("INSERT INTO stock_movements (product_id, delta, stock_after, reason, note, order_id, at) VALUES ")
	n := 0
	var alerts []movement
	for _, m := range ms {
		if m.delta == 0 && m.reason != ReasonCreated {
			continue
		}
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?)")
		args = append(args, m.product.ID, m.delta, m.product.Stock, string(m.reason), m.note, m.orderID, at)
		n++
		if m.crossedLow() {
			alerts = append(alerts, m)
		}
	}
	if n == 0 {
		return nil, nil
	}
	if err := tx.Exec(b.String(), args...).Error; err != nil {
		return nil, err
	}
	return queueLowStock(tx, at, alerts)
}

// FindStockMovementsOfProducts returns, for each product, a page of its movements newest
// first, all in one statement. A bad page size or cursor is INVALID. It does not check who
// may see them.
func (s *Store) FindStockMovementsOfProducts(ctx context.Context, productIDs []int64, page PageArgs) (map[int64]*StockMovementPage, error) {
	after, err := checkPage(page, movementCursor)
	if err != nil {
		return nil, err
	}
	rows, err := rankedChildren[movementRow](s.reads(ctx), "product_id", "id DESC", productIDs, page.First+1,
		func(q *gorm.DB) *gorm.DB {
			if after != nil {
				q = q.Where("id < ?", after.ID)
			}
			return q
		}, "find stock movements")
	if err != nil {
		return nil, err
	}
	byProduct := groupBy(rows, func(r movementRow) int64 { return r.ProductID })
	pages := make(map[int64]*StockMovementPage, len(productIDs))
	for _, id := range productIDs {
		p := &StockMovementPage{ProductID: id}
		p.Movements, p.Cursors, p.PageInfo = buildPage(byProduct[id], page.First, after, movementRow.toMovement,
			func(r movementRow) cursor { return cursor{Order: movementCursor, ID: r.ID} })
		pages[id] = p
	}
	return pages, nil
}

const movementCursor = "MOVEMENT:DESC"

// StockMovementPage is one page of a product's movements, newest first.
type StockMovementPage struct {
	Movements []StockMovement
	Cursors
	PageInfo
	ProductID int64
}

// CountStockMovementsOfProducts returns how many movements each product has, in one
// statement; products without any are absent.
func (s *Store) CountStockMovementsOfProducts(ctx context.Context, productIDs []int64) (map[int64]int, error) {
	q := s.reads(ctx).Model(&movementRow{}).Where("product_id IN ?", productIDs)
	return countByParent(q, "product_id", "count stock movements")
}

// StockChange is a relative change of a product's stock.
type StockChange struct {
	ProductID int64
	Delta     int
	Reason    string
}

// AdjustStock adds Delta to a product's stock atomically and records it in the ledger. It
// returns UNAUTHENTICATED, NOT_FOUND for an unknown product, FORBIDDEN unless the viewer is
// its merchant or an ADMIN, INVALID for a zero or too large delta, a bad reason or a stock
// above the maximum, and INSUFFICIENT_STOCK (field delta) when the stock would fall below 0.
func (s *Store) AdjustStock(ctx context.Context, viewer Viewer, ch StockChange) (Product, error) {
	if err := checkSignedIn(viewer); err != nil {
		return Product{}, err
	}
	var v validator
	if ch.Delta == 0 || ch.Delta < -MaxStock || ch.Delta > MaxStock {
		v.add(fmt.Sprintf("must be non-zero and at most %d either way", MaxStock), "delta")
	}
	if n := len([]rune(strings.TrimSpace(ch.Reason))); n < 1 || n > MaxReasonLength {
		v.add(fmt.Sprintf("must be 1 to %d characters", MaxReasonLength), "reason")
	}
	var row productRow
	var alerts []LowStockAlert
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockProduct(tx, &row, ch.ProductID); err != nil {
			return err
		}
		if !CanEditProduct(viewer, row.MerchantID) {
			return newError(CodeForbidden, "only the product's merchant or an admin may change its stock")
		}
		if err := v.errs.err(); err != nil {
			return err
		}
		before, after := row.Stock, row.Stock+ch.Delta
		switch {
		case after < 0:
			return newError(CodeInsufficientStock, fmt.Sprintf("only %d left", before), "delta")
		case after > MaxStock:
			return newError(CodeInvalid, fmt.Sprintf("the stock would exceed %d", MaxStock), "delta")
		}
		now := s.now()
		if err := tx.Model(&productRow{}).Where("id = ?", row.ID).
			Updates(map[string]any{"stock": after, "updated_at": now}).Error; err != nil {
			return err
		}
		row.Stock, row.UpdatedAt = after, now
		note := strings.TrimSpace(ch.Reason)
		var err error
		alerts, err = appendMovements(tx, now, []movement{{product: row.toProduct(), delta: ch.Delta,
			reason: ReasonAdjustment, note: &note, stockBefore: before}})
		return err
	})
	if err != nil {
		return Product{}, translate("adjust stock", err)
	}
	s.invalidateProducts(ctx, row.ID)
	s.wrote(ctx, viewer.UserID)
	s.notifyLowStock(ctx, alerts)
	return row.toProduct(), nil
}

// lockProduct reads product id into row, locking it for the transaction on PostgreSQL
// (SQLite's one writer holds the whole database already).
func lockProduct(tx *gorm.DB, row *productRow, id int64) error {
	q := tx
	if tx.Dialector.Name() == "postgres" {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return q.Take(row, id).Error
}
