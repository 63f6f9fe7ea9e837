package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// Orders created in the same microsecond are listed by ID, newest first, and a walk page by
// page visits each exactly once whatever the page size.
func TestOrderPagesBreakTiesByID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		admin := mustCreateAdmin(t, s)
		shop := storetest.Seed(t, s, storetest.Shop{Merchants: 1, ProductsPerMerchant: 3, Stock: 10, Customers: 2,
			OrdersOf: func(int) int { return 6 }, ItemsOf: func(int) int { return 1 }})
		storetest.Exec(t, s, "UPDATE orders SET created_at = (SELECT MIN(created_at) FROM orders)")
		var want []int64
		for _, ids := range shop.OrderIDs {
			want = append(want, ids...)
		}
		slices.Sort(want)
		slices.Reverse(want)
		for _, first := range []int{1, 2, 5, 12, 100} {
			got := orderIDs(walkOrders(t, s, store.OrderFilter{VisibleTo: &admin}, first))
			if !slices.Equal(got, want) {
				t.Errorf("pages of %d: %v, want %v", first, got, want)
			}
		}
		customer := shop.CustomerIDs[1]
		pages, err := s.FindOrdersOfCustomers(context.Background(), []int64{customer}, nil, store.PageArgs{First: 4})
		if err != nil {
			t.Fatal(err)
		}
		if got := orderIDs(pages[customer].Orders); !slices.Equal(got, want[:4]) || !pages[customer].HasNext {
			t.Errorf("batched first page %v (next %v), want %v and a next page", got, pages[customer].HasNext, want[:4])
		}
	})
}

// Products of equal price or name are ordered by ID in the direction of the sort, and a
// walk visits each once.
func TestProductPagesBreakTiesByID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		merchant := mustCreateUser(t, s, store.RoleMerchant)
		var ids []int64
		for range 7 {
			ids = append(ids, mustCreateProduct(t, s, merchant, 500, 1).ID)
		}
		storetest.Exec(t, s, "UPDATE products SET name = 'Same name'")
		desc := slices.Clone(ids)
		slices.Reverse(desc)
		type sortCase struct {
			sort store.ProductSort
			want []int64
		}
		for _, c := range []sortCase{
			{store.ProductSort{Field: store.SortPrice}, ids},
			{store.ProductSort{Field: store.SortPrice, Desc: true}, desc},
			{store.ProductSort{Field: store.SortName}, ids},
			{store.ProductSort{Field: store.SortName, Desc: true}, desc},
			{store.ProductSort{Field: store.SortCreatedAt, Desc: true}, desc},
		} {
			if got := walkProducts(t, s, c.sort, 3, nil); !slices.Equal(got, c.want) {
				t.Errorf("%+v in pages of 3: %v, want %v", c.sort, got, c.want)
			}
		}
	})
}

// A client walking a list while orders and products are added sees every item that existed
// when it started exactly once, in order: new items come first in the newest-first lists,
// before any cursor already handed out.
func TestCursorsStayValidWhileItemsAreAdded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		merchant := mustCreateUser(t, s, store.RoleMerchant)
		customer := mustCreateUser(t, s, store.RoleCustomer)
		product := mustCreateProduct(t, s, merchant, 100, 1000)
		var before []int64
		for range 9 {
			before = append([]int64{mustPlaceOrder(t, s, customer, 1, product).ID}, before...)
		}
		mine := store.OrderFilter{CustomerID: &customer.UserID}
		var got []int64
		page := store.PageArgs{First: 2}
		for {
			p, err := s.FindOrders(ctx, mine, page)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, orderIDs(p.Orders)...)
			mustPlaceOrder(t, s, customer, 1, product)
			if !p.HasNext {
				break
			}
			page.After = p.Cursor(len(p.Cursors) - 1)
		}
		if !slices.Equal(got, before) {
			t.Errorf("orders walked while others were placed: %v, want %v", got, before)
		}

		products := []int64{product.ID}
		for range 6 {
			products = append([]int64{mustCreateProduct(t, s, merchant, 100, 1).ID}, products...)
		}
		newest := store.ProductSort{Field: store.SortCreatedAt, Desc: true}
		got = walkProducts(t, s, newest, 2, func() { mustCreateProduct(t, s, merchant, 100, 1) })
		if !slices.Equal(got, products) {
			t.Errorf("products walked while others were added: %v, want %v", got, products)
		}
	})
}

// walkProducts returns the IDs of every product of the merchant-less list in order sort,
// read in pages of first, calling between (when set) after each page.
func walkProducts(tb testing.TB, s *store.Store, sort store.ProductSort, first int, between func()) []int64 {
	tb.Helper()
	var ids []int64
	page := store.PageArgs{First: first}
	for range 1000 {
		p, err := s.FindProducts(context.Background(), store.ProductFilter{}, sort, page)
		if err != nil {
			tb.Fatalf("find products after %q: %v", page.After, err)
		}
		for _, pr := range p.Products {
			ids = append(ids, pr.ID)
		}
		if between != nil {
			between()
		}
		if !p.HasNext {
			return ids
		}
		page.After = p.Cursor(len(p.Cursors) - 1)
	}
	tb.Fatal("find products: no last page")
	return nil
}
