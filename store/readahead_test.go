package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// FindOrdersOfCustomersWith returns the pages FindOrdersOfCustomers returns and, where it
// reads them, the items and events FindItemsByOrderIDs and FindEventsByOrderIDs return for
// the pages' orders (none of the orders after a page); on PostgreSQL in one round trip,
// counted as its statements.
func TestOrderPagesReadAheadMatchLevelByLevel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		shop := storetest.Seed(t, s, storetest.Shop{Merchants: 1, ProductsPerMerchant: 5, Stock: 100, Customers: 3,
			OrdersOf: func(c int) int { return []int{7, 0, 2}[c] }, ItemsOf: func(o int) int { return 1 + o%5 }})
		first, err := s.FindOrdersOfCustomers(context.Background(), shop.CustomerIDs, nil, store.PageArgs{First: 3})
		if err != nil {
			t.Fatal(err)
		}
		pending := store.OrderStatus("PENDING")
		type pageCase struct {
			status *store.OrderStatus
			page   store.PageArgs
		}
		for _, c := range []pageCase{{nil, store.PageArgs{First: 3}},
			{&pending, store.PageArgs{First: 2, After: first[shop.CustomerIDs[0]].Cursor(0)}}} {
			readAheadMatches(t, s, shop, c.status, c.page)
		}
		if _, err := s.FindOrdersOfCustomersWith(context.Background(), shop.CustomerIDs, nil, store.PageArgs{First: 3, After: "nope"},
			store.OrderChildren{Items: true}); store.ErrorCode(err) != store.CodeInvalid {
			t.Fatalf("bad cursor: %v", err)
		}
	})
}

// readAheadMatches checks FindOrdersOfCustomersWith against the level-by-level reads for one
// page of every customer of shop.
func readAheadMatches(t *testing.T, s *store.Store, shop storetest.Seeded, status *store.OrderStatus, page store.PageArgs) {
	t.Helper()
	plain, err := s.FindOrdersOfCustomers(context.Background(), shop.CustomerIDs, status, page)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, p := range plain {
		for _, o := range p.Orders {
			ids = append(ids, o.ID)
		}
	}
	items, err := s.FindItemsByOrderIDs(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	events, err := s.FindEventsByOrderIDs(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	wantItems, wantEvents := map[int64][]store.OrderItem{}, map[int64][]store.OrderStatusEvent{}
	for _, it := range items {
		wantItems[it.OrderID] = append(wantItems[it.OrderID], it)
	}
	for _, e := range events {
		wantEvents[e.OrderID] = append(wantEvents[e.OrderID], e)
	}
	var productIDs []int64
	for _, it := range items {
		productIDs = append(productIDs, it.ProductID)
	}
	products, err := s.FindProductsByIDs(context.Background(), productIDs)
	if err != nil {
		t.Fatal(err)
	}
	merchants, err := s.FindUsersByIDs(context.Background(), shop.MerchantIDs)
	if err != nil {
		t.Fatal(err)
	}
	for _, with := range []store.OrderChildren{{Items: true}, {History: true}, {Items: true, History: true},
		{Items: true, Products: true}, {Items: true, History: true, Products: true, Merchants: true}} {
		rs := &store.RequestStats{}
		got, err := s.FindOrdersOfCustomersWith(store.WithRequestStats(context.Background(), rs), shop.CustomerIDs, status, page, with)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Pages, plain) {
			t.Fatalf("%+v: pages %+v, want %+v", with, got.Pages, plain)
		}
		statements := 1
		if with.Items {
			statements++
			if !reflect.DeepEqual(got.Items, wantItems) {
				t.Fatalf("items %+v, want %+v", got.Items, wantItems)
			}
		} else if got.Items != nil {
			t.Fatalf("%+v: items read", with)
		}
		if with.History {
			statements++
			if !reflect.DeepEqual(got.History, wantEvents) {
				t.Fatalf("events %+v, want %+v", got.History, wantEvents)
			}
		} else if got.History != nil {
			t.Fatalf("%+v: events read", with)
		}
		if with.Products && s.Postgres() { // SQLite leaves them to the cache's reads
			statements++
			if !sameByID(got.Products, products, func(p store.Product) int64 { return p.ID }) {
				t.Fatalf("products %+v, want %+v", got.Products, products)
			}
		} else if got.Products != nil {
			t.Fatalf("%+v: products read", with)
		}
		if with.Merchants && s.Postgres() {
			statements++
			if !sameByID(got.Merchants, merchants, func(u store.User) int64 { return u.ID }) {
				t.Fatalf("merchants %+v, want %+v", got.Merchants, merchants)
			}
		} else if got.Merchants != nil {
			t.Fatalf("%+v: merchants read", with)
		}
		roundTrips := statements // SQLite: one each
		if s.Postgres() {
			roundTrips = 1
		}
		if rs.Statements() != statements || rs.RoundTrips() != roundTrips {
			t.Fatalf("%+v: %d statements in %d round trips, want %d in %d: %v", with, rs.Statements(), rs.RoundTrips(),
				statements, roundTrips, rs.SQL())
		}
	}
}

// sameByID reports whether got and want hold the same values, in any order.
func sameByID[V any](got, want []V, id func(V) int64) bool {
	if len(got) != len(want) {
		return false
	}
	byID := map[int64]V{}
	for _, v := range want {
		byID[id(v)] = v
	}
	for _, v := range got {
		if w, ok := byID[id(v)]; !ok || !reflect.DeepEqual(v, w) {
			return false
		}
	}
	return true
}

// A batch's statements get a span each, as the statements gorm sends do.
func TestReadAheadSpans(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := openStore(t, store.Config{DatabaseURL: storetest.PostgresURL(t), MaxConns: 4, Tracer: tp})
	shop := storetest.Seed(t, s, storetest.Shop{Merchants: 1, ProductsPerMerchant: 3, Stock: 10, Customers: 1,
		OrdersOf: func(int) int { return 2 }, ItemsOf: func(int) int { return 2 }})
	before := len(rec.Ended())
	_, err := s.FindOrdersOfCustomersWith(context.Background(), shop.CustomerIDs, nil, store.PageArgs{First: 5},
		store.OrderChildren{Items: true, History: true, Products: true, Merchants: true})
	if err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()[before:]
	if len(spans) != 5 {
		t.Fatalf("%d spans, want 5 (page, items, products, merchants, events)", len(spans))
	}
	for _, span := range spans {
		attrs := map[attribute.Key]string{}
		for _, a := range span.Attributes() {
			attrs[a.Key] = a.Value.String()
		}
		if span.Name() != "sql SELECT" || attrs["db.system"] != "postgresql" || attrs["db.query.text"] == "" {
			t.Errorf("span %s: attributes %v", span.Name(), attrs)
		}
	}
}

// The children of a page of orders read ahead are those of the page's orders even when an
// order is placed between the batch's statements: they share one snapshot. Here the items'
// statement waits on a lock while a newer order is placed, which a statement of its own
// snapshot would see, reading the items of a page without the page's oldest order.
func TestOrderPagesReadAheadShareASnapshot(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	s := openStore(t, store.Config{DatabaseURL: url, MaxConns: 1})
	shop := storetest.Seed(t, s, storetest.Shop{Merchants: 1, ProductsPerMerchant: 2, Stock: 100, Customers: 1,
		OrdersOf: func(int) int { return 3 }, ItemsOf: func(int) int { return 1 }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	customers, page, with := shop.CustomerIDs, store.PageArgs{First: 3}, store.OrderChildren{Items: true}
	// Once read, the statements are prepared on the store's one connection: preparing them
	// again would wait on the lock before the page's statement runs.
	if _, err := s.FindOrdersOfCustomersWith(ctx, customers, nil, page, with); err != nil {
		t.Fatal(err)
	}
	var read store.OrderPagesWith
	var err error
	storetest.WriteWhileWaiting(t, url, "order_items", "FROM order_items", func() {
		read, err = s.FindOrdersOfCustomersWith(ctx, customers, nil, page, with)
	}, "INSERT INTO orders (customer_id, status, total, created_at, updated_at) VALUES ($1, 'PENDING', 0, $2, $2)",
		customers[0], time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	orders := read.Pages[customers[0]].Orders
	if len(orders) != 3 {
		t.Fatalf("%d orders on the page, want 3", len(orders))
	}
	for _, o := range orders {
		if len(read.Items[o.ID]) != 1 {
			t.Errorf("order %d on the page has %d items read ahead, want its 1", o.ID, len(read.Items[o.ID]))
		}
	}
}
