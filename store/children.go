package store

import (
	"context"

	"gorm.io/gorm"
)

// Paged children of many parents in one statement: each parent's rows are numbered in the
// list's order with ROW_NUMBER() OVER (PARTITION BY parent ORDER BY ...), and the outer query
// keeps the first page+1 of each (the extra row says whether a next page exists). Window
// functions exist in PostgreSQL and in SQLite since 3.25, so one query serves both.

// rankedChildren returns the rows of model whose parentCol is one of parents, at most limit
// per parent, each parent's in order (an ORDER BY list), after narrow has added its
// conditions.
func rankedChildren[R any, P scannable[R]](db *gorm.DB, parentCol, order string, parents []int64, limit int,
	narrow func(*gorm.DB) *gorm.DB, op string) ([]R, error) {
	q := ranked[R, P](db, parentCol, order, parents, limit, narrow).Order(parentCol + ", " + order)
	return findRows[R, P](q, op)
}

// ranked is rankedChildren's statement before its SELECT list and its ORDER BY: the first
// limit rows of each parent, as a table a statement may also read as a subquery.
func ranked[R any, P scannable[R]](db *gorm.DB, parentCol, order string, parents []int64, limit int,
	narrow func(*gorm.DB) *gorm.DB) *gorm.DB {
	inner := db.Model(P(new(R))).
		Select("*, ROW_NUMBER() OVER (PARTITION BY "+parentCol+" ORDER BY "+order+") AS child_rank").
		Where(parentCol+" IN ?", parents)
	inner = narrow(inner)
	return db.Table("(?) AS ranked", inner).Where("child_rank <= ?", limit)
}

// FindOrdersOfCustomers returns, for each customer, the page of the orders they placed
// (newest first, only those in status when it is set) that FindOrders returns for
// OrderFilter{CustomerID, Status}, all in one statement. Every customer gets a page, empty
// when they have no orders. A bad page size or cursor is INVALID.
func (s *Store) FindOrdersOfCustomers(ctx context.Context, customerIDs []int64, status *OrderStatus, page PageArgs) (map[int64]*OrderPage, error) {
	after, err := checkPage(page, orderCursor)
	if err != nil {
		return nil, err
	}
	rows, err := rankedChildren[orderRow](s.reads(ctx), "customer_id", ordersNewestFirst, customerIDs, page.First+1,
		customerOrdersNarrow(status, after), "find orders of customers")
	if err != nil {
		return nil, err
	}
	return customerOrderPages(customerIDs, status, page, after, rows), nil
}

// customerOrdersNarrow keeps the orders of a customer's list: in status when it is set, after
// the cursor after when it is set.
func customerOrdersNarrow(status *OrderStatus, after *cursor) func(*gorm.DB) *gorm.DB {
	return func(q *gorm.DB) *gorm.DB {
		if status != nil {
			q = q.Where("status = ?", string(*status))
		}
		return ordersAfter(q, after)
	}
}

// customerOrderPages makes the page of every customer of customerIDs from rows, their orders
// ranked as rankedChildren reads them.
func customerOrderPages(customerIDs []int64, status *OrderStatus, page PageArgs, after *cursor, rows []orderRow) map[int64]*OrderPage {
	byCustomer := groupBy(rows, func(r orderRow) int64 { return r.CustomerID })
	pages := make(map[int64]*OrderPage, len(customerIDs))
	for _, id := range customerIDs {
		pages[id] = newOrderPage(OrderFilter{CustomerID: &id, Status: status}, byCustomer[id], page.First, after)
	}
	return pages
}

// productsByMerchantOrder is the ordering of a merchant's product list: newest first.
var productsByMerchantOrder = string(SortCreatedAt) + ":DESC"

// FindProductsOfMerchants returns, for each merchant, the page of their products (newest
// first) that FindProducts returns for ProductFilter{MerchantID} in its default order, all in
// one statement. Every merchant gets a page, empty when they sell nothing. A bad page size or
// cursor is INVALID.
func (s *Store) FindProductsOfMerchants(ctx context.Context, merchantIDs []int64, page PageArgs) (map[int64]*ProductPage, error) {
	after, err := checkPage(page, productsByMerchantOrder)
	if err != nil {
		return nil, err
	}
	rows, err := rankedChildren[productRow](s.reads(ctx), "merchant_id", "id DESC", merchantIDs, page.First+1,
		func(q *gorm.DB) *gorm.DB {
			if after != nil {
				q = q.Where("id < ?", after.ID)
			}
			return q
		}, "find products of merchants")
	if err != nil {
		return nil, err
	}
	byMerchant := groupBy(rows, func(r productRow) int64 { return r.MerchantID })
	pages := make(map[int64]*ProductPage, len(merchantIDs))
	for _, id := range merchantIDs {
		p := &ProductPage{Filter: ProductFilter{MerchantID: &id}}
		p.Products, p.Cursors, p.PageInfo = buildPage(byMerchant[id], page.First, after, productRow.toProduct,
			func(r productRow) cursor { return cursor{Order: productsByMerchantOrder, ID: r.ID} })
		pages[id] = p
	}
	return pages, nil
}

// CountOrdersOfCustomers returns how many orders each customer placed (only those in status
// when it is set), in one statement; customers without orders are absent.
func (s *Store) CountOrdersOfCustomers(ctx context.Context, customerIDs []int64, status *OrderStatus) (map[int64]int, error) {
	q := s.reads(ctx).Model(&orderRow{}).Where("customer_id IN ?", customerIDs)
	if status != nil {
		q = q.Where("status = ?", string(*status))
	}
	return countByParent(q, "customer_id", "count orders of customers")
}

// CountProductsOfMerchants returns how many products each merchant sells, in one statement;
// merchants without products are absent.
func (s *Store) CountProductsOfMerchants(ctx context.Context, merchantIDs []int64) (map[int64]int, error) {
	q := s.reads(ctx).Model(&productRow{}).Where("merchant_id IN ?", merchantIDs)
	return countByParent(q, "merchant_id", "count products of merchants")
}

func countByParent(q *gorm.DB, parentCol, op string) (map[int64]int, error) {
	var rows []struct {
		Parent int64
		N      int
	}
	if err := q.Select(parentCol + " AS parent, COUNT(*) AS n").Group(parentCol).Scan(&rows).Error; err != nil {
		return nil, translate(op, err)
	}
	counts := make(map[int64]int, len(rows))
	for _, r := range rows {
		counts[r.Parent] = r.N
	}
	return counts, nil
}
