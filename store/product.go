package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

type productRow struct {
	ID          int64 `gorm:"primaryKey"`
	MerchantID  int64
	Name        string
	Description string
	Price       int
	Stock       int
	// LowStockThreshold is where lowStock alerts fire; 0: never.
	LowStockThreshold int
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

func (productRow) TableName() string { return "products" }

func (r *productRow) columns() []column {
	return []column{{"id", &r.ID}, {"merchant_id", &r.MerchantID}, {"name", &r.Name}, {"description", &r.Description},
		{"price", &r.Price}, {"stock", &r.Stock}, {"low_stock_threshold", &r.LowStockThreshold},
		{"created_at", &r.CreatedAt}, {"updated_at", &r.UpdatedAt}}
}

func (r productRow) toProduct() Product {
	return Product{ID: r.ID, MerchantID: r.MerchantID, Name: r.Name, Description: r.Description,
		Price: Money(r.Price), Stock: r.Stock, LowStockThreshold: r.LowStockThreshold, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// NewProduct is a product to create.
type NewProduct struct {
	Name              string
	Description       string
	Price             int
	Stock             int
	LowStockThreshold int
}

// ProductChanges are the fields of a product to change; nil fields stay as they are.
// ExpectedStock, when set, is the stock the caller last saw: the change is refused with
// STOCK_CHANGED when the stock is no longer that.
type ProductChanges struct {
	Name              *string
	Description       *string
	Price             *int
	Stock             *int
	LowStockThreshold *int
	ExpectedStock     *int
}

func validateProduct(v *validator, name, description *string, price, stock, threshold *int) {
	if name != nil {
		v.name(*name, "name")
	}
	if description != nil {
		v.maxLen(*description, MaxDescription, "description")
	}
	if price != nil {
		v.between(*price, 0, MaxPrice, "price")
	}
	if stock != nil {
		v.between(*stock, 0, MaxStock, "stock")
	}
	if threshold != nil {
		v.between(*threshold, 0, MaxStock, "lowStockThreshold")
	}
}

// CreateProduct creates a product sold by the viewer. It returns UNAUTHENTICATED,
// FORBIDDEN for non-merchants, and INVALID for bad input.
func (s *Store) CreateProduct(ctx context.Context, viewer Viewer, in NewProduct) (Product, error) {
	if err := checkSignedIn(viewer); err != nil {
		return Product{}, err
	}
	if !CanCreateProduct(viewer) {
		return Product{}, newError(CodeForbidden, "only merchants sell products")
	}
	var v validator
	validateProduct(&v, &in.Name, &in.Description, &in.Price, &in.Stock, &in.LowStockThreshold)
	if err := v.errs.err(); err != nil {
		return Product{}, err
	}
	now := s.now()
	row := productRow{MerchantID: viewer.UserID, Name: strings.TrimSpace(in.Name), Description: in.Description,
		Price: in.Price, Stock: in.Stock, LowStockThreshold: in.LowStockThreshold, CreatedAt: now, UpdatedAt: now}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		_, err := appendMovements(tx, now, []movement{{product: row.toProduct(), delta: row.Stock, reason: ReasonCreated}})
		return err
	})
	if err != nil {
		return Product{}, translate("create product", err)
	}
	s.invalidateProducts(ctx, row.ID) // no entry yet, but the lists of products change
	s.wrote(ctx, viewer.UserID)
	return row.toProduct(), nil
}

// UpdateProduct changes a product. It returns NOT_FOUND for an unknown product, FORBIDDEN
// unless the viewer is its merchant or an ADMIN, and INVALID for bad input.
func (s *Store) UpdateProduct(ctx context.Context, viewer Viewer, id int64, ch ProductChanges) (Product, error) {
	if err := checkSignedIn(viewer); err != nil {
		return Product{}, err
	}
	var row productRow
	var alerts []LowStockAlert
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Locked: the stock compared with ExpectedStock, and the movement's stockAfter, are
		// the stock this write replaces.
		if err := lockProduct(tx, &row, id); err != nil {
			return err
		}
		if !CanEditProduct(viewer, row.MerchantID) {
			return newError(CodeForbidden, "only the product's merchant or an admin may change it")
		}
		var v validator
		validateProduct(&v, ch.Name, ch.Description, ch.Price, ch.Stock, ch.LowStockThreshold)
		if err := v.errs.err(); err != nil {
			return err
		}
		if ch.ExpectedStock != nil && *ch.ExpectedStock != row.Stock {
			return newError(CodeStockChanged, fmt.Sprintf("the stock is %d now, not %d", row.Stock, *ch.ExpectedStock), "stock")
		}
		now := s.now()
		set := map[string]any{"updated_at": now}
		if ch.Name != nil {
			set["name"] = strings.TrimSpace(*ch.Name)
		}
		if ch.Description != nil {
			set["description"] = *ch.Description
		}
		if ch.Price != nil {
			set["price"] = *ch.Price
		}
		if ch.Stock != nil {
			set["stock"] = *ch.Stock
		}
		if ch.LowStockThreshold != nil {
			set["low_stock_threshold"] = *ch.LowStockThreshold
		}
		before := row.Stock
		if err := tx.Model(&productRow{}).Where("id = ?", id).Updates(set).Error; err != nil {
			return err
		}
		if err := tx.Take(&row, id).Error; err != nil {
			return err
		}
		var err error
		alerts, err = appendMovements(tx, now, []movement{{product: row.toProduct(), delta: row.Stock - before,
			reason: ReasonProductUpdate, stockBefore: before}})
		return err
	})
	if err != nil {
		return Product{}, translate("update product", err)
	}
	s.invalidateProducts(ctx, id)
	s.wrote(ctx, viewer.UserID)
	s.notifyLowStock(ctx, alerts)
	return row.toProduct(), nil
}

// FindProductsByIDs returns the products with these IDs, in no particular order, through the
// cache when there is one; unknown IDs are left out.
func (s *Store) FindProductsByIDs(ctx context.Context, ids []int64) ([]Product, error) {
	return readThrough(ctx, s, productCodec, ids, (*Store).loadProducts)
}

func (s *Store) loadProducts(ctx context.Context, ids []int64) ([]Product, error) {
	return findAll(s.fills(ctx).Where("id IN ?", ids), "find products", productRow.toProduct)
}

// ProductFilter selects products; every set condition must hold.
type ProductFilter struct {
	Search     *string
	MerchantID *int64
	MinPrice   *int
	MaxPrice   *int
	InStock    *bool
}

// ProductSort orders products by a field, with the ID as tie-breaker.
type ProductSort struct {
	Field ProductSortField
	Desc  bool
}

// ProductSortField is what products can be sorted by.
type ProductSortField string

// Product sort fields. CREATED_AT sorts by ID, which grows with creation.
const (
	SortCreatedAt ProductSortField = "CREATED_AT"
	SortPrice     ProductSortField = "PRICE"
	SortName      ProductSortField = "NAME"
)

// ProductPage is one page of products with each product's cursor.
type ProductPage struct {
	Products []Product
	Cursors
	PageInfo
	Filter ProductFilter
}

func (f ProductFilter) apply(q *gorm.DB) *gorm.DB {
	if f.Search != nil && *f.Search != "" {
		p := likePattern(*f.Search)
		q = q.Where(`(LOWER(name) LIKE ? ESCAPE '\' OR LOWER(description) LIKE ? ESCAPE '\')`, p, p)
	}
	if f.MerchantID != nil {
		q = q.Where("merchant_id = ?", *f.MerchantID)
	}
	if f.MinPrice != nil {
		q = q.Where("price >= ?", *f.MinPrice)
	}
	if f.MaxPrice != nil {
		q = q.Where("price <= ?", *f.MaxPrice)
	}
	if f.InStock != nil {
		if *f.InStock {
			q = q.Where("stock > 0")
		} else {
			q = q.Where("stock = 0")
		}
	}
	return q
}

// FindProducts returns a page of the products matching f in the order sort. A bad page
// size or cursor is INVALID.
func (s *Store) FindProducts(ctx context.Context, f ProductFilter, sort ProductSort, page PageArgs) (*ProductPage, error) {
	read, err := s.FindProductsWith(ctx, f, sort, page, false)
	return read.Page, err
}

// productPaging is how a read of a page of products orders it and where the page starts.
type productPaging struct {
	sort          ProductSort
	order         string // the ordering the cursors name
	after         *cursor
	col, cmp, dir string // the column sorted by (the ID breaks ties), after's comparison, the direction
}

func productPagingOf(sort ProductSort, page PageArgs) (productPaging, error) {
	if sort.Field == "" {
		sort = ProductSort{Field: SortCreatedAt, Desc: true}
	}
	pp := productPaging{sort: sort, order: string(sort.Field) + map[bool]string{true: ":DESC", false: ":ASC"}[sort.Desc]}
	var err error
	if pp.after, err = checkPage(page, pp.order); err != nil {
		return pp, err
	}
	pp.col = map[ProductSortField]string{SortCreatedAt: "id", SortPrice: "price", SortName: "name"}[sort.Field]
	if pp.col == "" {
		return pp, newError(CodeInvalid, "unknown sort field", "orderBy", "field")
	}
	// A cursor must carry the key of its ordering's type: a forged one comparing the price
	// with text (or the name with a number) would fail in SQL or silently match anything.
	if a := pp.after; a != nil && (pp.col == "price" && a.Int == nil || pp.col == "name" && a.Str == nil) {
		return pp, newError(CodeInvalid, "after is not a cursor of this list", "after")
	}
	pp.cmp, pp.dir = ">", "ASC"
	if sort.Desc {
		pp.cmp, pp.dir = "<", "DESC"
	}
	return pp, nil
}

// findProducts reads the page through gorm, as SQLite and the read replicas do.
func (s *Store) findProducts(ctx context.Context, f ProductFilter, pp productPaging, page PageArgs) (*ProductPage, error) {
	q := f.apply(s.reads(ctx).Model(&productRow{}))
	if a := pp.after; a != nil {
		switch pp.col {
		case "id":
			q = q.Where("id "+pp.cmp+" ?", a.ID)
		case "price":
			q = q.Where("(price "+pp.cmp+" ? OR (price = ? AND id "+pp.cmp+" ?))", *a.Int, *a.Int, a.ID)
		case "name":
			q = q.Where("(name "+pp.cmp+" ? OR (name = ? AND id "+pp.cmp+" ?))", *a.Str, *a.Str, a.ID)
		}
	}
	if pp.col != "id" {
		q = q.Order(pp.col + " " + pp.dir)
	}
	products, err := findAll(q.Order("id "+pp.dir).Limit(page.First+1), "find products", productRow.toProduct)
	if err != nil {
		return nil, err
	}
	return pp.page(products, f, page.First), nil
}

// page returns the page of the products read (one more than first when a next page exists).
func (pp productPaging) page(products []Product, f ProductFilter, first int) *ProductPage {
	p := &ProductPage{Filter: f}
	// The cursors point into the page's products, which nothing changes.
	p.Products, p.Cursors, p.PageInfo = pageOf(products, first, pp.after, func(pr *Product) cursor {
		c := cursor{Order: pp.order, ID: pr.ID}
		switch pp.sort.Field {
		case SortPrice:
			c.Int = (*int)(&pr.Price)
		case SortName:
			c.Str = &pr.Name
		}
		return c
	})
	return p
}

// CountProducts returns how many products match f.
func (s *Store) CountProducts(ctx context.Context, f ProductFilter) (int, error) {
	var n int64
	err := f.apply(s.reads(ctx).Model(&productRow{})).Count(&n).Error
	return int(n), translate("count products", err)
}
