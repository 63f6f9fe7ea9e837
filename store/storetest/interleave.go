package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// WriteWhileWaiting lands a write in the middle of a read on the PostgreSQL database at url:
// it locks table on a connection of its own, starts read, waits until a statement whose text
// contains waiting waits for that lock, runs write (with args) on another connection, then
// releases the lock, and returns once read has. The read's statements before the lock saw
// the database before the write; the waiting one and those after it may see it after.
func WriteWhileWaiting(tb testing.TB, url, table, waiting string, read func(), write string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	locker, writer := connect(), connect()
	lock, err := locker.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = lock.Rollback(context.Background()) }()
	if _, err := lock.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		read()
	}()
	for n := 0; n == 0; time.Sleep(5 * time.Millisecond) {
		if err := writer.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"+
			" AND wait_event_type = 'Lock' AND strpos(query, $1) > 0", waiting).Scan(&n); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := writer.Exec(ctx, write, args...); err != nil {
		tb.Fatal(err)
	}
	if err := lock.Rollback(ctx); err != nil {
		tb.Fatal(err)
	}
	<-done
}
