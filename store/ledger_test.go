package store_test

import (
	"context"
	"testing"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// TestLedgerMigrationOpensEveryProduct: products that existed before migration
// 0007_stock_ledger get one CREATED movement of their stock, so their ledger adds up from
// the start; on both backends.
func TestLedgerMigrationOpensEveryProduct(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) store.Config
	}{
		{"embedded", func(t *testing.T) store.Config { return store.Config{SQLitePath: storetest.SQLitePath(t)} }},
		{"postgres", func(t *testing.T) store.Config {
			return store.Config{DatabaseURL: storetest.PostgresURL(t), MaxConns: 2}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := store.Open(ctx, tc.cfg(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Back to the database as it was before the ledger, with products in it.
			for _, sql := range []string{
				"DROP TABLE shipment_items", "DROP TABLE shipments", "DROP TABLE low_stock_alerts",
				"DROP TABLE stock_movements", "ALTER TABLE products DROP COLUMN low_stock_threshold",
				"DELETE FROM schema_migrations WHERE id = '0007_stock_ledger'",
				`INSERT INTO users (id, email, email_key, name, role, password_hash, created_at)
				 VALUES (1, 'm@x.example', 'm@x.example', 'M', 'MERCHANT', 'x', '2026-01-01 00:00:00')`,
				`INSERT INTO products (id, merchant_id, name, price, stock, created_at, updated_at) VALUES
				 (1, 1, 'a', 100, 7, '2026-01-01 00:00:00', '2026-01-02 00:00:00'),
				 (2, 1, 'b', 100, 0, '2026-01-01 00:00:00', '2026-01-03 00:00:00')`,
			} {
				if err := store.ExecForTest(ctx, s, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			pages, err := s.FindStockMovementsOfProducts(ctx, []int64{1, 2}, store.PageArgs{First: 10})
			if err != nil {
				t.Fatal(err)
			}
			for id, stock := range map[int64]int{1: 7, 2: 0} {
				ms := pages[id].Movements
				if len(ms) != 1 || ms[0].Reason != store.ReasonCreated || ms[0].Delta != stock || ms[0].StockAfter != stock {
					t.Fatalf("product %d: movements %+v, want one CREATED of %d", id, ms, stock)
				}
			}
			// The ledger goes on from there.
			p, err := s.AdjustStock(ctx, store.Viewer{UserID: 1, Role: store.RoleMerchant},
				store.StockChange{ProductID: 1, Delta: -2, Reason: "count"})
			if err != nil || p.Stock != 5 || p.LowStockThreshold != 0 {
				t.Fatalf("adjust after the migration: %+v, %v", p, err)
			}
			if n := storetest.Count(t, s, `SELECT COUNT(*) FROM products p
				WHERE p.stock <> (SELECT COALESCE(SUM(m.delta), 0) FROM stock_movements m WHERE m.product_id = p.id)`); n != 0 {
				t.Fatalf("%d products whose ledger does not add up", n)
			}
		})
	}
}
