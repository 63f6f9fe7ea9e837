package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/shop/api/store"
	"github.com/shop/api/store/internal/handle"
)

// Shop describes a data set to seed in bulk.
type Shop struct {
	Merchants           int
	ProductsPerMerchant int
	// Stock is every product's stock.
	Stock     int
	Customers int
	// OrdersOf returns how many orders customer i (counting from 0) has placed.
	OrdersOf func(customer int) int
	// ItemsOf returns how many lines (1 to 5) order j (counting from 0, over all customers)
	// has. Each line names a different product.
	ItemsOf func(order int) int
}

// Seeded is what Seed created. Accounts have the password SeedPassword.
type Seeded struct {
	MerchantIDs, ProductIDs, CustomerIDs []int64
	// OrderIDs lists each customer's orders, in CustomerIDs order, oldest first.
	OrderIDs [][]int64
	Items    int
}

// SeedPassword is the password of every seeded account.
const SeedPassword = "password123"

// Seed fills st with shop in multi-row INSERTs, a few hundred rows a statement, so tens of
// thousands of orders take seconds. It works on PostgreSQL and SQLite, next to rows already
// there: IDs continue after the largest in each table, and PostgreSQL's sequences are moved
// past them. Every order is PENDING with its creation event, already published.
func Seed(tb testing.TB, st *store.Store, shop Shop) Seeded {
	tb.Helper()
	db := handle.DB(st.Internal())
	hash, err := bcrypt.GenerateFromPassword([]byte(SeedPassword), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	next := func(table string) int64 {
		var max *int64
		if err := db.Raw("SELECT MAX(id) FROM " + table).Scan(&max).Error; err != nil {
			tb.Fatalf("seed: %v", err)
		}
		if max == nil {
			return 1
		}
		return *max + 1
	}
	var out Seeded
	ins := newInserter(tb, db)

	userID := next("users")
	addUser := func(role string, i int) int64 {
		id := userID
		userID++
		email := fmt.Sprintf("seed-%s-%d-%d@example.com", strings.ToLower(role), i, id)
		ins.add("users", []string{"id", "email", "email_key", "name", "role", "password_hash", "created_at"},
			id, email, email, fmt.Sprintf("Seeded %s %d", strings.ToLower(role), i), role, string(hash), now)
		return id
	}
	for i := 0; i < shop.Merchants; i++ {
		out.MerchantIDs = append(out.MerchantIDs, addUser("MERCHANT", i))
	}
	for i := 0; i < shop.Customers; i++ {
		out.CustomerIDs = append(out.CustomerIDs, addUser("CUSTOMER", i))
	}
	ins.flush()

	productID := next("products")
	merchantOf := map[int64]int64{}
	priceOf := map[int64]int{}
	// Merchants take turns, so a page of the newest products shows many merchants.
	for i := 0; i < shop.ProductsPerMerchant; i++ {
		for m, merchant := range out.MerchantIDs {
			id := productID
			productID++
			price := 100 + int(id*37%9900)
			merchantOf[id], priceOf[id] = merchant, price
			ins.add("products", []string{"id", "merchant_id", "name", "description", "price", "stock", "created_at", "updated_at"},
				id, merchant, fmt.Sprintf("Product %d of merchant %d", i, m), "seeded", price, shop.Stock, now, now)
			out.ProductIDs = append(out.ProductIDs, id)
		}
	}
	ins.flush()

	orderID, itemID, eventID := next("orders"), next("order_items"), next("order_status_events")
	order := 0
	for c, customer := range out.CustomerIDs {
		var ids []int64
		n := 0
		if shop.OrdersOf != nil {
			n = shop.OrdersOf(c)
		}
		for k := 0; k < n; k++ {
			id := orderID
			orderID++
			lines := shop.ItemsOf(order)
			at := now.Add(time.Duration(order) * time.Microsecond)
			type line struct {
				product int64
				qty     int
			}
			var items []line
			total := 0
			for pos := 0; pos < lines; pos++ {
				l := line{out.ProductIDs[(order*7+pos*13)%len(out.ProductIDs)], 1 + (order+pos)%3}
				total += priceOf[l.product] * l.qty
				items = append(items, l)
			}
			// Each order before its items and event: a full buffer flushes every table in
			// the order they were first added, parents first.
			ins.add("orders", []string{"id", "customer_id", "status", "total", "created_at", "updated_at"},
				id, customer, "PENDING", total, at, at)
			for pos, l := range items {
				ins.add("order_items", []string{"id", "order_id", "position", "product_id", "merchant_id", "quantity", "unit_price"},
					itemID, id, pos, l.product, merchantOf[l.product], l.qty, priceOf[l.product])
				itemID++
				out.Items++
			}
			ins.add("order_status_events", []string{"id", "order_id", "status", "at", "published_at"},
				eventID, id, "PENDING", at, at)
			eventID++
			ids = append(ids, id)
			order++
		}
		out.OrderIDs = append(out.OrderIDs, ids)
	}
	ins.flush()

	if db.Dialector.Name() == "postgres" {
		for _, t := range []string{"users", "products", "orders", "order_items", "order_status_events"} {
			if err := db.Exec("SELECT setval(pg_get_serial_sequence('" + t + "', 'id'), (SELECT MAX(id) FROM " + t + "))").Error; err != nil {
				tb.Fatalf("seed: %v", err)
			}
		}
		if err := db.Exec("ANALYZE").Error; err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
	return out
}

// inserter collects rows per table and writes them in multi-row INSERTs.
type inserter struct {
	tb     testing.TB
	db     *gorm.DB
	tables []string
	cols   map[string][]string
	rows   map[string][][]any
}

func newInserter(tb testing.TB, db *gorm.DB) *inserter {
	return &inserter{tb: tb, db: db, cols: map[string][]string{}, rows: map[string][][]any{}}
}

// maxParams keeps one statement well under SQLite's limit of 32,766 parameters.
const maxParams = 8000

func (in *inserter) add(table string, cols []string, vals ...any) {
	if _, ok := in.cols[table]; !ok {
		in.tables = append(in.tables, table)
		in.cols[table] = cols
	}
	in.rows[table] = append(in.rows[table], vals)
	if len(in.rows[table])*len(cols) >= maxParams {
		in.flush()
	}
}

func (in *inserter) flushOnly(table string) {
	rows := in.rows[table]
	if len(rows) == 0 {
		return
	}
	cols := in.cols[table]
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	var args []any
	for _, r := range rows {
		args = append(args, r...)
	}
	sql := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(row+",", len(rows)), ",")
	if err := in.db.Exec(sql, args...).Error; err != nil {
		in.tb.Fatalf("seed %s: %v", table, err)
	}
	in.rows[table] = nil
}

// flush writes every table's pending rows, in the order the tables were first added to.
func (in *inserter) flush() {
	for _, t := range in.tables {
		in.flushOnly(t)
	}
}

// Exec runs a statement on st's database, failing the test when it fails: for tests that
// set up a state no store method produces (e.g. events left unpublished).
func Exec(tb testing.TB, st *store.Store, sql string) {
	tb.Helper()
	if err := handle.DB(st.Internal()).Exec(sql).Error; err != nil {
		tb.Fatalf("exec %q: %v", sql, err)
	}
}

// Count runs a query of one integer (SELECT count(*) ...) on st's database and returns it,
// failing the test when it fails.
func Count(tb testing.TB, st *store.Store, sql string) int {
	tb.Helper()
	var n int
	if err := handle.DB(st.Internal()).Raw(sql).Scan(&n).Error; err != nil {
		tb.Fatalf("count %q: %v", sql, err)
	}
	return n
}
