package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// Batch reads go through pgx on a pooled connection (store/scan.go). When the server drops
// every pooled connection, the reads that follow at once (before the pool would ping an idle
// connection) get live ones: no caller sees the dead connections.
func TestReadsOutliveDroppedConnections(t *testing.T) {
	url := storetest.PostgresURL(t)
	s := openStore(t, store.Config{DatabaseURL: url, MaxConns: 4})
	shop := storetest.Seed(t, s, storetest.Shop{Merchants: 1, ProductsPerMerchant: 5, Stock: 10})
	ctx := context.Background()
	read := func() error {
		ps, err := s.FindProductsByIDs(ctx, shop.ProductIDs)
		if err == nil && len(ps) != len(shop.ProductIDs) {
			t.Errorf("read %d products of %d", len(ps), len(shop.ProductIDs))
		}
		return err
	}
	// Four reads at once leave four connections in the pool.
	for s.PoolStats().OpenConnections < 4 {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { _ = read() })
		}
		wg.Wait()
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends still up", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 3 {
		if err := read(); err != nil {
			t.Fatalf("read %d after the connections dropped: %v", i+1, err)
		}
	}
}

// A page read through pgx costs the same allocations whatever its length but for each
// row's copy: its rows are one slice sized from the LIMIT, its strings share a few chunks
// (pgx made each its own), no row escapes for its cursor, and the statement is completed
// on the caller's chain. A page of 50 products allocated three times a product more than a
// page of 5 (265 and 127); now both allocate alike.
func TestProductPageAllocationsDoNotGrowPerRow(t *testing.T) {
	s := openStore(t, store.Config{DatabaseURL: storetest.PostgresURL(t), MaxConns: 2})
	storetest.Seed(t, s, storetest.Shop{Merchants: 1, ProductsPerMerchant: 60, Stock: 10})
	ctx := context.Background()
	page := func(n int) float64 {
		return testing.AllocsPerRun(20, func() {
			p, err := s.FindProducts(ctx, store.ProductFilter{}, store.ProductSort{}, store.PageArgs{First: n})
			if err != nil || len(p.Products) != n || p.Products[n-1].Name == "" {
				t.Fatalf("page of %d: %v", n, err)
			}
		})
	}
	small, large := page(5), page(50)
	t.Logf("a page of 5 products: %.0f allocations, of 50: %.0f", small, large)
	if large-small > 45/2 {
		t.Errorf("45 more products cost %.0f more allocations", large-small)
	}
}
