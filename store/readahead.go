package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// Reading ahead: an order history asks for a page of orders and, below it, the items and the
// status events of the page's orders. Read level by level that is three statements, each a
// round trip that waits for the one before, and on PostgreSQL the round trips (and pgx's and
// gorm's work around each) were the largest share of the request's CPU. The children's
// statements need only the page's order IDs, which the database can find itself: each reads
// WHERE order_id IN (the page's statement, ranked as rankedChildren ranks it), and the three
// go in one pgx batch, one round trip. They still count as three statements.

// OrderChildren says which children of the orders of a page a read brings along: their items
// and history, and the products of the items (with Items) and their merchants (with
// Products).
type OrderChildren struct {
	Items, History, Products, Merchants bool
}

// OrderPagesWith is what FindOrdersOfCustomersWith read: every customer's page and, when they
// were asked for, the children of every order on the pages, by order ID (nil for none).
// Items or History is nil when it was not asked for. Products and Merchants, when read, are
// those of the items, read from the primary as the cache's fills are; nil when not read.
type OrderPagesWith struct {
	Pages     map[int64]*OrderPage
	Items     map[int64][]OrderItem
	History   map[int64][]OrderStatusEvent
	Products  []Product
	Merchants []User
}

// FindOrdersOfCustomersWith returns the pages FindOrdersOfCustomers returns and the children
// with asks for of their orders, each kind a statement. On PostgreSQL the statements share
// one round trip and one snapshot; where they cannot (SQLite, read replicas) the children
// are read after the pages, by their orders' IDs.
func (s *Store) FindOrdersOfCustomersWith(ctx context.Context, customerIDs []int64, status *OrderStatus, page PageArgs,
	with OrderChildren) (OrderPagesWith, error) {
	if !s.Postgres() || s.replicas != nil || with == (OrderChildren{}) || page.First <= 0 {
		return s.findOrdersOfCustomersThenChildren(ctx, customerIDs, status, page, with)
	}
	after, err := checkPage(page, orderCursor)
	if err != nil {
		return OrderPagesWith{}, err
	}
	db := s.reads(ctx)
	narrow := customerOrdersNarrow(status, after)
	// The page's statement is FindOrdersOfCustomers'; the children's read the IDs of the
	// page's orders (first of each customer, not the extra row that tells a next page).
	pageQ := ranked[orderRow](db, "customer_id", ordersNewestFirst, customerIDs, page.First+1, narrow).
		Order("customer_id, " + ordersNewestFirst)
	ids := ranked[orderRow](db, "customer_id", ordersNewestFirst, customerIDs, page.First, narrow).Select("id")
	var orders []orderRow
	out := OrderPagesWith{}
	b := readBatch{s: s}
	b.add(pageQ.Model(&orderRow{}), selectList[orderRow](), func(rows pgx.Rows) error {
		var err error
		orders, err = scanBatch(rows, func(r orderRow) orderRow { return r })
		return err
	})
	if with.Items {
		q := db.Model(&orderItemRow{}).Where("order_id IN (?)", ids).Order("order_id, position")
		b.add(q, selectList[orderItemRow](), func(rows pgx.Rows) error {
			items, err := scanBatch(rows, orderItemRow.toItem)
			out.Items = make(map[int64][]OrderItem)
			for _, it := range items {
				out.Items[it.OrderID] = append(out.Items[it.OrderID], it)
			}
			return err
		})
	}
	if with.Items && with.Products {
		// The products (and merchants) the levels below would read by ID through the cache:
		// here the batch has them for the price of its round trip, where the cache would
		// cost one of its own for each.
		products := db.Model(&orderItemRow{}).Select("product_id").Where("order_id IN (?)", ids)
		b.add(db.Model(&productRow{}).Where("id IN (?)", products), selectList[productRow](), func(rows pgx.Rows) error {
			var err error
			out.Products, err = scanBatch(rows, productRow.toProduct)
			if out.Products == nil {
				out.Products = []Product{}
			}
			return err
		})
		if with.Merchants {
			merchants := db.Model(&productRow{}).Select("merchant_id").Where("id IN (?)", products)
			b.add(db.Model(&userRow{}).Where("id IN (?)", merchants), selectList[userRow](), func(rows pgx.Rows) error {
				var err error
				out.Merchants, err = scanBatch(rows, userRow.toUser)
				if out.Merchants == nil {
					out.Merchants = []User{}
				}
				return err
			})
		}
	}
	if with.History {
		q := db.Model(&eventRow{}).Where("order_id IN (?)", ids).Order("order_id, id")
		b.add(q, selectList[eventRow](), func(rows pgx.Rows) error {
			events, err := scanBatch(rows, eventRow.toEvent)
			out.History = make(map[int64][]OrderStatusEvent)
			for _, e := range events {
				out.History[e.OrderID] = append(out.History[e.OrderID], e)
			}
			return err
		})
	}
	if err := b.run(ctx, "find orders of customers"); err != nil {
		return OrderPagesWith{}, err
	}
	out.Pages = customerOrderPages(customerIDs, status, page, after, orders)
	return out, nil
}

// findOrdersOfCustomersThenChildren is FindOrdersOfCustomersWith where statements cannot
// share a round trip: the children are read by the IDs of the pages' orders, a statement and
// a round trip each, as the levels below would read them. Products and merchants are left to
// the levels below, which read them through the cache.
func (s *Store) findOrdersOfCustomersThenChildren(ctx context.Context, customerIDs []int64, status *OrderStatus, page PageArgs,
	with OrderChildren) (OrderPagesWith, error) {
	pages, err := s.FindOrdersOfCustomers(ctx, customerIDs, status, page)
	if err != nil {
		return OrderPagesWith{}, err
	}
	out := OrderPagesWith{Pages: pages}
	var ids []int64
	for _, id := range customerIDs {
		for _, o := range pages[id].Orders {
			ids = append(ids, o.ID)
		}
	}
	if with.Items {
		out.Items = map[int64][]OrderItem{}
		if len(ids) > 0 {
			items, err := s.FindItemsByOrderIDs(ctx, ids)
			if err != nil {
				return OrderPagesWith{}, err
			}
			for _, it := range items {
				out.Items[it.OrderID] = append(out.Items[it.OrderID], it)
			}
		}
	}
	if with.History {
		out.History = map[int64][]OrderStatusEvent{}
		if len(ids) > 0 {
			events, err := s.FindEventsByOrderIDs(ctx, ids)
			if err != nil {
				return OrderPagesWith{}, err
			}
			for _, e := range events {
				out.History[e.OrderID] = append(out.History[e.OrderID], e)
			}
		}
	}
	return out, nil
}

// readBatch is statements gorm builds and pgx sends together.
type readBatch struct {
	s     *Store
	stmts []batchStatement
}

type batchStatement struct {
	sql  string
	vars []any
	scan func(pgx.Rows) error
}

// add renders q with the SELECT list cols, for scan to read its rows.
func (b *readBatch) add(q *gorm.DB, cols string, scan func(pgx.Rows) error) {
	st := q.Session(&gorm.Session{DryRun: true}).Select(cols).Find(nil).Statement
	b.stmts = append(b.stmts, batchStatement{sql: st.SQL.String(), vars: st.Vars, scan: scan})
}

// run sends the statements in one round trip, in a read-only REPEATABLE READ transaction so
// that all of them see the same snapshot, with the deadline and the spans the store's
// instrumentation gives a statement; it counts them. A batch whose connection broke runs
// once more, as findAll's reads do.
func (b *readBatch) run(ctx context.Context, op string) error {
	err := b.send(ctx)
	if err != nil && brokenConnection(err) && ctx.Err() == nil {
		err = b.send(ctx)
	}
	return translate(op, err)
}

func (b *readBatch) send(ctx context.Context) error {
	in := b.s.in
	if d, ok := ctx.Deadline(); (!ok || time.Until(d) > in.timeout) && ctx.Value(untimed{}) == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, in.timeout)
		defer cancel()
	}
	var spans []trace.Span
	if in.tracer != nil {
		for _, st := range b.stmts {
			_, span := in.tracer.Start(ctx, "sql SELECT", trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("db.system", in.system), attribute.String("db.operation.name", "SELECT"),
					attribute.String("db.query.text", st.sql)))
			spans = append(spans, span)
		}
	}
	sqlDB, err := b.s.db.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	sent := false
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		batch := &pgx.Batch{}
		batch.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
		for _, st := range b.stmts {
			batch.Queue(st.sql, st.vars...)
		}
		batch.Queue("COMMIT")
		br := pc.SendBatch(ctx, batch)
		sent = true
		_, err := br.Exec()
		for _, st := range b.stmts {
			if err != nil {
				break
			}
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				err = st.scan(rows)
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
		}
		if err == nil {
			_, err = br.Exec()
		}
		err = errors.Join(err, br.Close())
		if pc.IsClosed() || pc.PgConn().TxStatus() != 'I' {
			// Broken, or left in the failed transaction: the pool must not hand it out again.
			return errors.Join(driver.ErrBadConn, err)
		}
		return err
	})
	if sent {
		sqls := make([]string, len(b.stmts))
		for i, st := range b.stmts {
			sqls[i] = st.sql
		}
		b.s.countBatch(ctx, sqls...)
	}
	for _, span := range spans {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "sql error")
		}
		span.End()
	}
	return err
}

// scanBatch reads rows of R, converted to T, as scanAll does.
func scanBatch[R, T any, P scannable[R]](rows pgx.Rows, convert func(R) T) ([]T, error) {
	var r R
	cols := P(&r).columns()
	dest := make([]any, len(cols))
	for i, c := range cols {
		dest[i] = c.dest
	}
	var out []T
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, convert(r))
	}
	return out, rows.Err()
}
