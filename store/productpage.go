package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// A storefront asks for a page of products and the merchant of each. Read level by level
// that is a statement built by gorm and, for the merchants, a read through the cache (a
// Redis round trip, and the decoding of every merchant it holds): on PostgreSQL the two were
// some half of such a request's CPU. Here they are one statement, read with pgx: the page,
// each of its rows joined to its merchant where the row is the first of that merchant's, so
// that a merchant of many products on the page is decoded once. (A batch of two statements,
// the page and the merchants of a second read of it, cost a pipeline's writes and a second
// result set: a tenth of a storefront request more.) Its text is written here once for each
// shape of read.

// ProductPageWith is what FindProductsWith read: the page and, when they were asked for and
// read with it, the merchants of its products (nil when not read).
type ProductPageWith struct {
	Page      *ProductPage
	Merchants []User
}

// FindProductsWith returns the page FindProducts returns and, with merchants, the merchants
// of its products: on PostgreSQL in the page's statement, read from the primary as the
// cache's fills are. Where they cannot share it (SQLite, read replicas) the
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
	b := readBatch{s: s, args: args}
	if !merchants {
		b.add(sql, func(rows pgx.Rows) (err error) {
			products, err = scanBatch(rows, page.First+1, productRow.toProduct)
			return err
		})
	} else {
		out.Merchants = []User{} // read, even when the page is empty
		b.add(sql, func(rows pgx.Rows) (err error) {
			products, err = scanBatch(rows, page.First+1, func(r productMerchantRow) Product {
				if r.merchant.ID != 0 {
					out.Merchants = append(out.Merchants, r.merchant.toUser())
				}
				return r.product.toProduct()
			})
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
// filters narrow it, its ordering, whether it starts after a cursor, whether the merchants
// come along, and its size.
type productPageShape struct {
	search, merchant, minPrice, maxPrice bool
	inStock                              int8 // 0: either, 1: in stock, 2: out of stock
	col                                  string
	desc, after, merchants               bool
	// first is written into the text: PostgreSQL plans a LIMIT it is given as a parameter
	// for a tenth of the table, a plan of the page and its merchants so much dearer than the
	// page's own that it plans the statement again at every execution, which cost more than
	// the read itself. A page holds at most MaxPageSize products, so the shapes stay few.
	first int
}

// productPageArgs returns the shape of a read of a page of first products matching f and
// ordered by pp, and its arguments in the order productPageSQL numbers them: the filters',
// then the cursor's.
func productPageArgs(f ProductFilter, pp productPaging, first int) (productPageShape, []any) {
	shape := productPageShape{col: pp.col, desc: pp.sort.Desc, after: pp.after != nil, first: first}
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
	return shape, args
}

// productPageStatements holds the statement of each shape, written once.
var productPageStatements sync.Map // productPageShape → string

// productPageSQL returns the statement of a read of shape: what gorm would send for
// findProducts, with ProductFilter.apply's conditions, and when the merchants come along,
// that page with each row's merchant joined where the row is the first of that merchant's.
func productPageSQL(shape productPageShape) string {
	if q, ok := productPageStatements.Load(shape); ok {
		return q.(string)
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
	order := "id " + dir
	if shape.col != "id" {
		order = shape.col + " " + dir + ", " + order
	}
	// The page reads one row more than it shows, to tell whether a next page exists.
	q := "SELECT " + selectList[productRow]() + from + " ORDER BY " + order + " LIMIT " + strconv.Itoa(shape.first+1)
	if shape.merchants {
		// The first row of each merchant's products carries the merchant; the others carry
		// zeros (id 0: none), which cost pgx next to nothing to decode.
		order = "p.id " + dir
		if shape.col != "id" {
			order = "p." + shape.col + " " + dir + ", " + order
		}
		q = "SELECT " + productMerchantList() +
			" FROM (SELECT *, row_number() OVER (PARTITION BY merchant_id) AS nth FROM (" + q + ") page) p" +
			" LEFT JOIN users u ON p.nth = 1 AND u.id = p.merchant_id ORDER BY " + order
	}
	productPageStatements.Store(shape, q)
	return q
}

// productMerchantRow is a row of a page read with its merchants: a product and, on the
// first row of each of the page's merchants, that merchant (ID 0 on the others).
type productMerchantRow struct {
	product  productRow
	merchant userReadRow
}

func (r *productMerchantRow) columns() []column {
	return append(r.product.columns(), r.merchant.columns()...)
}

// The SELECT list of a page read with its merchants: the product's columns from the page p,
// and the merchant's from u, each its type's zero where the row carries none.
var productMerchantList = sync.OnceValue(func() string {
	var r productMerchantRow
	var cols []string
	for _, c := range r.product.columns() {
		cols = append(cols, "p."+c.name)
	}
	for _, c := range r.merchant.columns() {
		zero := "0"
		switch c.dest.(type) {
		case *string:
			zero = "''"
		case *time.Time:
			zero = "'epoch'"
		}
		cols = append(cols, "COALESCE(u."+c.name+", "+zero+")")
	}
	return strings.Join(cols, ", ")
})
