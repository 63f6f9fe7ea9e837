package store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// A storefront asks for a page of products and the merchant of each. Read level by level
// that is a statement built by gorm and, for the merchants, a read through the cache (a
// Redis round trip, and the decoding of every merchant it holds): on PostgreSQL the two were
// some half of such a request's CPU. The merchants' statement needs only the page's merchant
// IDs, which the database finds itself by reading the page again (its index scan), so both
// go in one pgx batch, one round trip, as the order history's read-ahead does
// (FindOrdersOfCustomersWith). Their text is written here once for each shape of read.

// ProductPageWith is what FindProductsWith read: the page and, when they were asked for and
// read with it, the merchants of its products (nil when not read).
type ProductPageWith struct {
	Page      *ProductPage
	Merchants []User
}

// FindProductsWith returns the page FindProducts returns and, with merchants, the merchants
// of its products: on PostgreSQL in the page's round trip and snapshot, read from the
// primary as the cache's fills are. Where they cannot share it (SQLite, read replicas) the
// merchants are not read, for the level below to read through the cache.
func (s *Store) FindProductsWith(ctx context.Context, f ProductFilter, sort ProductSort, page PageArgs, merchants bool) (ProductPageWith, error) {
	pp, err := productPagingOf(sort, page)
	if err != nil {
		return ProductPageWith{}, err
	}
	if !s.Postgres() || s.replicas != nil {
		p, err := s.findProducts(ctx, f, pp, page)
		return ProductPageWith{Page: p}, err
	}
	shape, args := productPageArgs(f, pp, page.First)
	shape.merchants = merchants
	sql := productPageSQL(shape)
	var out ProductPageWith
	var products []Product
	// The merchants need no snapshot of the page's: they only prime the user loader. Should a
	// page change between the two statements, a merchant read that its products no longer name
	// is primed for nothing, and one the page names that was not read is read by the level
	// below as it would without the read-ahead.
	b := readBatch{s: s, args: args}
	b.add(sql.page, func(rows pgx.Rows) error {
		var err error
		products, err = scanBatch(rows, page.First+1, productRow.toProduct)
		return err
	})
	if merchants {
		b.add(sql.merchants, func(rows pgx.Rows) (err error) {
			out.Merchants, err = scanRead(rows, page.First, userReadRow.toUser) // at most one a product
			return err
		})
	}
	if err := b.run(ctx, "find products"); err != nil {
		return ProductPageWith{}, err
	}
	out.Page = pp.page(products, f, page.First)
	return out, nil
}

// productPageShape is what the text of a read of a page of products depends on: which
// filters narrow it, its ordering, whether it starts after a cursor and whether the
// merchants come along.
type productPageShape struct {
	search, merchant, minPrice, maxPrice bool
	inStock                              int8 // 0: either, 1: in stock, 2: out of stock
	col                                  string
	desc, after, merchants               bool
}

// productPageArgs returns the shape of a read of a page of first products matching f and
// ordered by pp, and its arguments in the order productPageSQL numbers them: the filters',
// the cursor's, then first.
func productPageArgs(f ProductFilter, pp productPaging, first int) (productPageShape, []any) {
	shape := productPageShape{col: pp.col, desc: pp.sort.Desc, after: pp.after != nil}
	args := make([]any, 0, 8)
	if f.Search != nil && *f.Search != "" {
		shape.search = true
		args = append(args, likePattern(*f.Search))
	}
	if f.MerchantID != nil {
		shape.merchant = true
		args = append(args, *f.MerchantID)
	}
	if f.MinPrice != nil {
		shape.minPrice = true
		args = append(args, *f.MinPrice)
	}
	if f.MaxPrice != nil {
		shape.maxPrice = true
		args = append(args, *f.MaxPrice)
	}
	if f.InStock != nil {
		shape.inStock = map[bool]int8{true: 1, false: 2}[*f.InStock]
	}
	if a := pp.after; a != nil {
		switch pp.col {
		case "price":
			args = append(args, *a.Int)
		case "name":
			args = append(args, *a.Str)
		}
		args = append(args, a.ID)
	}
	return shape, append(args, first)
}

// productPageBatch is the text of the statements of a read of a page of products, merchants
// "" when they are not read.
type productPageBatch struct {
	page, merchants string
}

// productPageBatches holds the statements of each shape, written once.
var productPageBatches sync.Map // productPageShape → productPageBatch

// productPageSQL returns the statements of a read of shape: what gorm would send for
// findProducts, with ProductFilter.apply's conditions, and the merchants of the page's
// products, which read the page again.
func productPageSQL(shape productPageShape) productPageBatch {
	if q, ok := productPageBatches.Load(shape); ok {
		return q.(productPageBatch)
	}
	var where []string
	n := 0
	arg := func() string { n++; return fmt.Sprintf("$%d", n) }
	if shape.search {
		p := arg()
		where = append(where, `(LOWER(name) LIKE `+p+` ESCAPE '\' OR LOWER(description) LIKE `+p+` ESCAPE '\')`)
	}
	if shape.merchant {
		where = append(where, "merchant_id = "+arg())
	}
	if shape.minPrice {
		where = append(where, "price >= "+arg())
	}
	if shape.maxPrice {
		where = append(where, "price <= "+arg())
	}
	switch shape.inStock {
	case 1:
		where = append(where, "stock > 0")
	case 2:
		where = append(where, "stock = 0")
	}
	cmp, dir := ">", "ASC"
	if shape.desc {
		cmp, dir = "<", "DESC"
	}
	if shape.after {
		if shape.col == "id" {
			where = append(where, "id "+cmp+" "+arg())
		} else {
			key, id := arg(), arg()
			where = append(where, "("+shape.col+" "+cmp+" "+key+" OR ("+shape.col+" = "+key+" AND id "+cmp+" "+id+"))")
		}
	}
	from := " FROM products"
	if len(where) > 0 {
		from += " WHERE " + strings.Join(where, " AND ")
	}
	from += " ORDER BY "
	if shape.col != "id" {
		from += shape.col + " " + dir + ", "
	}
	from += "id " + dir + " LIMIT " + arg()
	// The page reads one row more than it shows, to tell whether a next page exists.
	q := productPageBatch{page: "SELECT " + selectList[productRow]() + from + " + 1"}
	if shape.merchants {
		q.merchants = "SELECT " + selectList[userReadRow]() + " FROM users WHERE id IN (SELECT merchant_id" + from + ")"
	}
	productPageBatches.Store(shape, q)
	return q
}
