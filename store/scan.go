package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/plugin/dbresolver"
)

// The batch reads are the hottest statements of the service, and gorm's reflective Find
// costs more CPU than the rest of their work in Go. They keep gorm to build the statement but
// scan rows by hand, into targets each row type lists next to its column names, so a schema
// change cannot desynchronise the SELECT list and the scan.

// column is one column of a row type: its name in SQL and where a scan puts its value.
type column struct {
	name string
	dest any
}

// scannable is a pointer to a row type that lists its columns.
type scannable[R any] interface {
	*R
	columns() []column
}

// selectList returns the SELECT list of the row type R.
func selectList[R any, P scannable[R]]() string {
	cols := P(new(R)).columns()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// findRows runs q for R's columns and returns the rows.
func findRows[R any, P scannable[R]](q *gorm.DB, op string) ([]R, error) {
	return findAll[R, R, P](q, op, func(r R) R { return r })
}

// findAll runs q for R's columns and returns the rows converted to domain values. A read
// whose connection broke while its rows were streaming (a replica stopped mid-read: the
// replica set retries only a query that failed to start) runs once more on the primary.
func findAll[R, T any, P scannable[R]](q *gorm.DB, op string, convert func(R) T) ([]T, error) {
	out, err := scanAll[R, T, P](q, convert)
	if err != nil && brokenConnection(err) && q.Statement.Context.Err() == nil {
		out, err = scanAll[R, T, P](q.Clauses(dbresolver.Write), convert)
	}
	return out, translate(op, err)
}

func scanAll[R, T any, P scannable[R]](q *gorm.DB, convert func(R) T) ([]T, error) {
	// The statement's deadline, which gorm's row callbacks cannot end, ends with the rows.
	ctx, cancel := context.WithCancel(q.Statement.Context)
	defer cancel()
	// One row is scanned into again and again: every column is written for every row (a
	// NULL too), and convert copies it out, so the row and its destinations are allocated
	// once a read, not once a row.
	var r R
	cols := P(&r).columns()
	dest := make([]any, len(cols))
	for i, c := range cols {
		dest[i] = c.dest
	}
	var out []T
	err := scanRows(q.WithContext(ctx).Model(new(R)).Select(selectList[R, P]()), func(rows rowScanner) error {
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			out = append(out, convert(r))
		}
		return rows.Err()
	})
	return out, err
}

// rowScanner is what a scan reads of *sql.Rows or pgx.Rows.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// rowsScanKey names, in a statement's settings, the scan scanRows gives it.
const rowsScanKey = "shop:scan_rows"

// scanRows runs q through gorm's row callbacks (the deadline, span and count of the
// instrumentation, the replica routing) and hands its rows to scan.
func scanRows(q *gorm.DB, scan func(rowScanner) error) error {
	tx := q.Set(rowsScanKey, scan)
	return tx.Callback().Row().Execute(tx).Error
}

// queryRows stands for gorm's row callback (callbacks.RowQuery). A statement of scanRows on
// PostgreSQL is read through pgx's own interface on a connection of the pool the routing
// chose: database/sql boxes every value of every row into a driver.Value and converts it
// again into its destination, a third of a product page's read. Others (SQLite, a
// transaction, the replica set, gorm's own Rows) take gorm's way.
func queryRows(postgres bool) func(*gorm.DB) {
	return func(db *gorm.DB) {
		v, ok := db.Get(rowsScanKey)
		if !ok {
			callbacks.RowQuery(db)
			return
		}
		scan := v.(func(rowScanner) error)
		if db.Error != nil {
			return
		}
		callbacks.BuildQuerySQL(db)
		if db.DryRun || db.Error != nil {
			return
		}
		db.RowsAffected = -1
		st := db.Statement
		if pool, ok := st.ConnPool.(*sql.DB); ok && postgres {
			_ = db.AddError(queryPgx(st.Context, pool, st.SQL.String(), st.Vars, scan))
			return
		}
		rows, err := st.ConnPool.QueryContext(st.Context, st.SQL.String(), st.Vars...)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		defer rows.Close()
		_ = db.AddError(scan(rows))
	}
}

// queryPgx runs query on a connection of pool with pgx and hands the rows to scan. The
// pool hands out no connection it finds closed (pgx checks at checkout); one that breaks
// during the query is handed back as bad, for the pool to discard, and findAll runs the
// read once more.
func queryPgx(ctx context.Context, pool *sql.DB, query string, args []any, scan func(rowScanner) error) error {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		rows, err := pc.Query(ctx, query, args...)
		if err == nil {
			err = scan(rows)
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		if err != nil && pc.IsClosed() {
			return errors.Join(driver.ErrBadConn, err)
		}
		return err
	})
}

// brokenConnection reports whether err is the connection's rather than the statement's: the
// server went away or is shutting down (57P01–03; 57014, a cancelled statement, is not).
func brokenConnection(err error) bool {
	if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false // the statement's deadline or the caller's: not worth a second try
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var netErr net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, driver.ErrBadConn) ||
		errors.As(err, &netErr)
}
