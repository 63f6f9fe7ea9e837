package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// Every statement passes through one of gorm's callback chains (create, query, update,
// delete, row, raw). The store hangs on each a callback before the statement, which gives it
// a deadline and a span, and one after, which ends them and counts the statement.

// instrumentation is what those callbacks need.
type instrumentation struct {
	timeout time.Duration
	tracer  trace.Tracer // nil: no spans
	system  string       // db.system of the spans
	count   func(*gorm.DB)
}

// statementKey names, in a statement's settings, what its before callback left for its after
// callback. The statement is part of the key because gorm copies the settings into the
// statements a callback runs inside another (and reuses a statement for the next one on a
// dedicated connection).
type statementKey struct{ stmt *gorm.Statement }

// statementState is what a statement's before callback changed.
type statementState struct {
	parent context.Context
	cancel context.CancelFunc // nil: the statement kept its context's deadline
	span   trace.Span         // nil: no tracer
}

// register hangs the callbacks on db. Registering callbacks is not thread-safe: call
// it before db is shared.
func (in instrumentation) register(db *gorm.DB) error {
	cb := db.Callback()
	for _, err := range []error{
		cb.Create().Before("gorm:create").Register("shop:before_create", in.before("INSERT")),
		cb.Create().After("gorm:create").Register("shop:after_create", in.after(true)),
		cb.Query().Before("gorm:query").Register("shop:before_query", in.before("SELECT")),
		cb.Query().After("gorm:query").Register("shop:after_query", in.after(true)),
		cb.Update().Before("gorm:update").Register("shop:before_update", in.before("UPDATE")),
		cb.Update().After("gorm:update").Register("shop:after_update", in.after(true)),
		cb.Delete().Before("gorm:delete").Register("shop:before_delete", in.before("DELETE")),
		cb.Delete().After("gorm:delete").Register("shop:after_delete", in.after(true)),
		// Row statements hand their rows to the caller, who reads them after the callbacks:
		// their deadline ends with their context's, not in the after callback, unless
		// scanRows's scan has read them inside it (scanned).
		cb.Row().Before("gorm:row").Register("shop:before_row", in.before("ROW")),
		cb.Row().After("gorm:row").Register("shop:after_row", in.after(false)),
		cb.Row().Replace("gorm:row", queryRows(in.system == "postgresql")),
		cb.Raw().Before("gorm:raw").Register("shop:before_raw", in.before("RAW")),
		cb.Raw().After("gorm:raw").Register("shop:after_raw", in.after(true)),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// untimed marks a context whose statements get no statement deadline: migrations, whose DDL
// and backfills on a large table may rightly take minutes (and wait for the migration lock).
type untimed struct{}

// before gives the statement a deadline of in.timeout, unless its context has an earlier
// one or is untimed, and (with a tracer) a client span named after op, "sql SELECT" and the like.
func (in instrumentation) before(op string) func(*gorm.DB) {
	return func(tx *gorm.DB) {
		if tx.DryRun {
			return // gorm rendering a subquery: nothing is sent
		}
		ctx := tx.Statement.Context
		if ctx == nil {
			ctx = context.Background()
		}
		st := &statementState{parent: tx.Statement.Context}
		if d, ok := ctx.Deadline(); (!ok || time.Until(d) > in.timeout) && ctx.Value(untimed{}) == nil {
			ctx, st.cancel = context.WithTimeout(ctx, in.timeout)
		}
		if in.tracer != nil {
			ctx, st.span = in.tracer.Start(ctx, "sql "+op, trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("db.system", in.system), attribute.String("db.operation.name", op)))
		}
		tx.Statement.Context = ctx
		tx.Statement.Settings.Store(statementKey{tx.Statement}, st)
	}
}

// after counts the statement, ends its span with its text (placeholders only: values never
// leave the process) and, when endDeadline, releases its deadline.
func (in instrumentation) after(endDeadline bool) func(*gorm.DB) {
	return func(tx *gorm.DB) {
		if tx.DryRun {
			return
		}
		in.count(tx)
		v, ok := tx.Statement.Settings.LoadAndDelete(statementKey{tx.Statement})
		if !ok {
			return
		}
		st := v.(*statementState)
		if span := st.span; span != nil {
			span.SetAttributes(attribute.String("db.query.text", tx.Statement.SQL.String()),
				attribute.Int64("db.rows_affected", tx.Statement.RowsAffected))
			if err := tx.Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
				span.RecordError(err)
				span.SetStatus(codes.Error, "sql error")
			}
			span.End()
		}
		if st.cancel != nil && (endDeadline || scanned(tx)) {
			st.cancel()
		}
		// A statement reused for the next one must not hand it this one's deadline or span.
		tx.Statement.Context = st.parent
	}
}

// scanned reports whether tx's rows were read by its row callback (scanRows), and are
// closed by the time the after callback runs.
func scanned(tx *gorm.DB) bool {
	_, ok := tx.Statement.Settings.Load(rowsScanKey)
	return ok
}

// PoolStats returns the statistics of the store's connection pool, for metrics.
func (s *Store) PoolStats() sql.DBStats {
	sqlDB, err := s.db.DB()
	if err != nil {
		return sql.DBStats{}
	}
	return sqlDB.Stats()
}

// Unavailable reports whether err (of any store method, whatever its wrapping) comes from a
// database that could not be reached or did not answer in time (down, restarting, a deadline
// passed), as opposed to a bug or a refused request: the caller may retry later. Such errors
// have the code INTERNAL.
func Unavailable(err error) bool {
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &netErr) || errors.As(err, &connectErr) || pgconn.SafeToRetry(err)
}
