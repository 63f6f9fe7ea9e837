package store_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// BenchmarkBatchReads measures the batch reads the loaders send, on PostgreSQL without the
// cache: each one reads a page's worth of rows (100 keys) in one statement; and a storefront's
// page of 50 products, alone and with its merchants (one statement, pgx).
func BenchmarkBatchReads(b *testing.B) {
	s := openStore(b, store.Config{DatabaseURL: storetest.PostgresURL(b), MaxConns: 4})
	shop := storetest.Seed(b, s, storetest.Shop{
		Merchants: 20, ProductsPerMerchant: 20, Stock: 100, Customers: 100,
		OrdersOf: func(int) int { return 5 },
		ItemsOf:  func(order int) int { return 1 + order%5 },
	})
	ctx := context.Background()
	var orderIDs []int64
	for _, ids := range shop.OrderIDs {
		orderIDs = append(orderIDs, ids...)
	}
	const keys = 100
	users, products, orders := shop.CustomerIDs[:keys], shop.ProductIDs[:keys], orderIDs[:keys]
	page := store.PageArgs{First: 10}
	for _, bc := range []struct {
		name string
		read func() (int, error)
	}{
		{"users", func() (int, error) { r, err := s.FindUsersByIDs(ctx, users); return len(r), err }},
		{"products", func() (int, error) { r, err := s.FindProductsByIDs(ctx, products); return len(r), err }},
		{"orders", func() (int, error) { r, err := s.FindOrdersByIDs(ctx, orders); return len(r), err }},
		{"items", func() (int, error) { r, err := s.FindItemsByOrderIDs(ctx, orders); return len(r), err }},
		{"events", func() (int, error) { r, err := s.FindEventsByOrderIDs(ctx, orders); return len(r), err }},
		{"customer_orders", func() (int, error) {
			r, err := s.FindOrdersOfCustomers(ctx, users, nil, page)
			return len(r), err
		}},
		{"merchant_products", func() (int, error) {
			r, err := s.FindProductsOfMerchants(ctx, shop.MerchantIDs, page)
			return len(r), err
		}},
		{"product_page_merchants", func() (int, error) {
			r, err := s.FindProductsWith(ctx, store.ProductFilter{}, store.ProductSort{}, store.PageArgs{First: 50}, true)
			return len(r.Merchants), err
		}},
		{"product_page", func() (int, error) {
			r, err := s.FindProducts(ctx, store.ProductFilter{}, store.ProductSort{}, store.PageArgs{First: 50})
			return len(r.Products), err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var r0, r1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			for b.Loop() {
				if n, err := bc.read(); err != nil || n == 0 {
					b.Fatalf("%d rows, %v", n, err)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			// The process's CPU: the wall time is mostly the database's.
			cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}
