package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
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
//
// q is the caller's chain, which it does not use again: the statement is completed on it
// rather than on a copy (gorm's WithContext and Model each copied the statement, its clauses
// and its settings, a dozen allocations a read). The retry puts back what the first run
// changed on it.
func findAll[R, T any, P scannable[R]](q *gorm.DB, op string, convert func(R) T) ([]T, error) {
	tx := q.Model(new(R)).Select(selectList[R, P]())
	st := tx.Statement
	ctx, pool := st.Context, st.ConnPool
	out, err := scanAll[R, T, P](tx, convert)
	if err != nil && brokenConnection(err) && ctx.Err() == nil {
		st.Context, st.ConnPool, tx.Error, tx.RowsAffected = ctx, pool, nil, 0
		st.SQL.Reset()
		st.Vars = st.Vars[:0]
		out, err = scanAll[R, T, P](tx.Clauses(dbresolver.Write), convert)
	}
	return out, translate(op, err)
}

func scanAll[R, T any, P scannable[R]](q *gorm.DB, convert func(R) T) ([]T, error) {
	// One row is scanned into again and again: every column is written for every row (a
	// NULL too), and convert copies it out, so the row and its destinations are allocated
	// once a read, not once a row.
	var r R
	cols := P(&r).columns()
	var out []T
	if n := limitOf(q.Statement); n > 0 {
		out = make([]T, 0, n) // a page's rows: one allocation, not a slice grown by doubling
	}
	err := scanRows(q, func(rows rowScanner) error {
		var fields []pgconn.FieldDescription
		if pr, ok := rows.(pgx.Rows); ok {
			fields = pr.FieldDescriptions()
		}
		dest := scanDest(cols, fields)
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

// scanDest returns the scan's destinations of cols: a text column that pgx describes in
// fields (none: not read through pgx) is read into an arena of the read's own.
func scanDest(cols []column, fields []pgconn.FieldDescription) []any {
	dest := make([]any, len(cols))
	var strs *stringArena
	for i, c := range cols {
		dest[i] = c.dest
		if s, ok := c.dest.(*string); ok && i < len(fields) && textOID(fields[i].DataTypeOID) {
			if strs == nil {
				strs = new(stringArena)
			}
			dest[i] = arenaString{s, strs}
		}
	}
	return dest
}

// limitOf returns the LIMIT of st, 0 if none or above maxPreallocated.
func limitOf(st *gorm.Statement) int {
	c, ok := st.Clauses["LIMIT"]
	if !ok {
		return 0
	}
	l, ok := c.Expression.(clause.Limit)
	if !ok || l.Limit == nil || *l.Limit <= 0 || *l.Limit > maxPreallocated {
		return 0
	}
	return *l.Limit
}

// maxPreallocated bounds the rows allocated ahead of a read: pages are at most
// MaxPageSize+1 rows.
const maxPreallocated = 4 * MaxPageSize

// stringArena holds the text of a read's string columns. pgx copies every text value into
// a string of its own, two allocations a product; here a read's strings are substrings of
// a few chunks. A chunk is never written again where a string points into it, and it lives
// as long as any of its strings does: a chunk is small, so one string kept for long (none
// is: rows live for their request) pins little.
type stringArena struct{ buf []byte }

// textOID reports whether a column of type oid is text, whose values pgx hands a
// pgtype.BytesScanner as they are.
func textOID(oid uint32) bool {
	return oid == pgtype.TextOID || oid == pgtype.VarcharOID
}

// arenaChunk is the size of the arena's chunks: a page of 50 products' names and
// descriptions fits in a few.
const arenaChunk = 2048

// arenaString scans a text column into *s, its bytes copied into the read's arena.
type arenaString struct {
	s     *string
	arena *stringArena
}

// ScanBytes is pgx's pgtype.BytesScanner: v is the driver's buffer, valid until the next
// row. A NULL is refused, as pgx refuses it for a *string.
func (a arenaString) ScanBytes(v []byte) error {
	if v == nil {
		return errors.New("cannot scan NULL into *string")
	}
	if len(v) == 0 {
		*a.s = ""
		return nil
	}
	b := a.arena.buf
	if cap(b)-len(b) < len(v) {
		b = make([]byte, 0, max(arenaChunk, len(v)))
	}
	n := len(b)
	b = append(b, v...)
	a.arena.buf = b
	*a.s = unsafe.String(unsafe.SliceData(b[n:]), len(v))
	return nil
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
