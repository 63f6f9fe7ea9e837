package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
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
	sql := batchSQL(status != nil, after != nil, with)
	// Every statement takes the same arguments ($1 the customers, $2 the page size, then the
	// narrowing's): the children's statements read the page's IDs themselves.
	args := []any{customerIDs, page.First}
	if status != nil {
		args = append(args, string(*status))
	}
	if after != nil {
		args = append(args, after.At.UTC(), after.ID)
	}
	var orders []orderRow
	out := OrderPagesWith{}
	// The children must be those of the page's orders: an order that a statement of its own
	// snapshot saw on the page while the items' did not (a newer order pushed it off) would
	// read as having none.
	b := readBatch{s: s, args: args, snapshot: true}
	b.add(sql.page, func(rows pgx.Rows) error {
		var err error
		orders, err = scanBatch(rows, 0, func(r orderRow) orderRow { return r })
		return err
	})
	if with.Items {
		b.add(sql.items, func(rows pgx.Rows) error {
			items, err := scanBatch(rows, 0, orderItemRow.toItem)
			out.Items = byOrder(items, func(it OrderItem) int64 { return it.OrderID })
			return err
		})
	}
	if with.Items && with.Products {
		// The products (and merchants) the levels below would read by ID through the cache:
		// here the batch has them for the price of its round trip, where the cache would
		// cost one of its own for each.
		b.add(sql.products, func(rows pgx.Rows) (err error) {
			out.Products, err = scanRead(rows, 0, productRow.toProduct)
			return err
		})
		if with.Merchants {
			b.add(sql.merchants, func(rows pgx.Rows) (err error) {
				out.Merchants, err = scanRead(rows, 0, userReadRow.toUser)
				return err
			})
		}
	}
	if with.History {
		b.add(sql.history, func(rows pgx.Rows) error {
			events, err := scanBatch(rows, 0, eventRow.toEvent)
			out.History = byOrder(events, func(e OrderStatusEvent) int64 { return e.OrderID })
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
			out.Items = byOrder(items, func(it OrderItem) int64 { return it.OrderID })
		}
	}
	if with.History {
		out.History = map[int64][]OrderStatusEvent{}
		if len(ids) > 0 {
			events, err := s.FindEventsByOrderIDs(ctx, ids)
			if err != nil {
				return OrderPagesWith{}, err
			}
			out.History = byOrder(events, func(e OrderStatusEvent) int64 { return e.OrderID })
		}
	}
	return out, nil
}

// orderBatchSQL is the text of the statements of FindOrdersOfCustomersWith's batch for one
// shape of read, "" for those it does not send.
type orderBatchSQL struct {
	page, items, products, merchants, history string
}

type orderBatchShape struct {
	status, after bool
	with          OrderChildren
}

// orderBatches holds the statements of each shape, written once: gorm would build them
// again for every request (its subqueries rendered once per statement they appear in), some
// 500 allocations a W2 request.
var orderBatches sync.Map // orderBatchShape → orderBatchSQL

// batchSQL returns the statements of a read of pages of customers' orders, narrowed by a
// status and a cursor when set, that brings along the children with asks for. They are
// written here rather than built by gorm, and say what gorm would for FindOrdersOfCustomers
// and for the children's reads by order ID, with the page's IDs read by a subquery.
func batchSQL(status, after bool, with OrderChildren) orderBatchSQL {
	shape := orderBatchShape{status, after, with}
	if q, ok := orderBatches.Load(shape); ok {
		return q.(orderBatchSQL)
	}
	narrow, n := "", 2
	if status {
		n++
		narrow += fmt.Sprintf(" AND status = $%d", n)
	}
	if after {
		narrow += fmt.Sprintf(" AND (created_at < $%d OR (created_at = $%d AND id < $%d))", n+1, n+1, n+2)
	}
	// Each customer's page is an index scan of its first rows (orders_customer_created and
	// its status twin), which the children's statements repeat: numbering every order of
	// the customers (ROW_NUMBER, as the window's batch reads do) would read all of a long
	// history three to five times a request.
	pages := func(limit string) string {
		return "(SELECT o.* FROM unnest($1::bigint[]) AS c(id) CROSS JOIN LATERAL (SELECT * FROM orders" +
			" WHERE customer_id = c.id" + narrow + " ORDER BY " + ordersNewestFirst + " LIMIT " + limit + ") AS o) AS page"
	}
	// The page reads one row more than it shows, to tell whether a next page exists.
	q := orderBatchSQL{page: "SELECT " + selectList[orderRow]() + " FROM " + pages("$2 + 1") +
		" ORDER BY customer_id, " + ordersNewestFirst}
	ids := "SELECT id FROM " + pages("$2")
	if with.Items {
		q.items = "SELECT " + selectList[orderItemRow]() + " FROM order_items WHERE order_id IN (" + ids + ") ORDER BY order_id, position"
		if with.Products {
			products := "SELECT product_id FROM order_items WHERE order_id IN (" + ids + ")"
			q.products = "SELECT " + selectList[productRow]() + " FROM products WHERE id IN (" + products + ")"
			if with.Merchants {
				q.merchants = "SELECT " + selectList[userReadRow]() + " FROM users WHERE id IN (SELECT merchant_id FROM products WHERE id IN (" +
					products + "))"
			}
		}
	}
	if with.History {
		q.history = "SELECT " + selectList[eventRow]() + " FROM order_status_events WHERE order_id IN (" + ids + ") ORDER BY order_id, id"
	}
	orderBatches.Store(shape, q)
	return q
}

// readBatch is statements pgx sends together, all with the same arguments (args). With
// snapshot they all see the same one (a read-only REPEATABLE READ transaction); without it
// each sees its own, as statements of an implicit transaction at READ COMMITTED do, which
// spares the round trip's BEGIN and COMMIT: for reads whose statements may disagree harmlessly.
type readBatch struct {
	s        *Store
	args     []any
	stmts    []batchStatement
	snapshot bool
}

type batchStatement struct {
	sql  string
	scan func(pgx.Rows) error
}

// add queues the statement sql, with the batch's arguments, for scan to read its rows.
func (b *readBatch) add(sql string, scan func(pgx.Rows) error) {
	b.stmts = append(b.stmts, batchStatement{sql: sql, scan: scan})
}

// run sends the statements in one round trip, in a transaction when they must share a
// snapshot (one statement needs none), with the deadline and the spans the store's
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
		if len(b.stmts) == 1 {
			// One statement has a snapshot of its own: no transaction, and pgx's Query
			// rather than a batch.
			sent = true
			rows, err := pc.Query(ctx, b.stmts[0].sql, b.args...)
			if err == nil {
				err = b.stmts[0].scan(rows)
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
			if pc.IsClosed() {
				return errors.Join(driver.ErrBadConn, err)
			}
			return err
		}
		batch := &pgx.Batch{}
		if b.snapshot {
			batch.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
		}
		for _, st := range b.stmts {
			batch.Queue(st.sql, b.args...)
		}
		if b.snapshot {
			batch.Queue("COMMIT")
		}
		br := pc.SendBatch(ctx, batch)
		sent = true
		var err error
		if b.snapshot {
			_, err = br.Exec()
		}
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
		if err == nil && b.snapshot {
			_, err = br.Exec()
		}
		err = errors.Join(err, br.Close())
		if !pc.IsClosed() && pc.PgConn().TxStatus() != 'I' {
			// A statement failed and left the transaction open: end it, or the pool would
			// discard the connection (stdlib's ResetSession).
			if _, rbErr := pc.Exec(ctx, "ROLLBACK"); rbErr != nil {
				return errors.Join(driver.ErrBadConn, err, rbErr)
			}
		}
		if pc.IsClosed() {
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

// scanBatch reads rows of R, converted to T, as scanAll does (their text in one arena);
// n, when above 0, is how many rows to make room for.
func scanBatch[R, T any, P scannable[R]](rows pgx.Rows, n int, convert func(R) T) ([]T, error) {
	var r R
	dest := scanDest(P(&r).columns(), rows.FieldDescriptions())
	var out []T
	if n > 0 && n <= maxPreallocated {
		out = make([]T, 0, n)
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, convert(r))
	}
	return out, rows.Err()
}

// scanRead is scanBatch for rows whose absence must read as read: none is an empty slice,
// where nil says the statement was not sent.
func scanRead[R, T any, P scannable[R]](rows pgx.Rows, n int, convert func(R) T) ([]T, error) {
	out, err := scanBatch[R, T, P](rows, n, convert)
	if out == nil {
		out = []T{}
	}
	return out, err
}

// byOrder groups rows, in their order, by the order each belongs to; never nil, so that an
// order without rows reads as read and empty.
func byOrder[T any](rows []T, orderID func(T) int64) map[int64][]T {
	out := make(map[int64][]T)
	for _, r := range rows {
		out[orderID(r)] = append(out[orderID(r)], r)
	}
	return out
}
