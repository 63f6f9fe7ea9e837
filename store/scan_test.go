package store

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A read runs again on the primary when its connection broke, not when its statement failed.
func TestBrokenConnection(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true}, // admin_shutdown: the server is stopping
		{&pgconn.PgError{Code: "08006"}, true}, // connection_failure
		{fmt.Errorf("read rows: %w", io.ErrUnexpectedEOF), true},
		{&net.OpError{Op: "read", Err: fmt.Errorf("connection reset by peer")}, true},
		{&pgconn.PgError{Code: "57014"}, false}, // query_canceled: the statement's timeout
		{&pgconn.PgError{Code: "42601"}, false}, // a syntax error fails on the primary too
		{fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{context.Canceled, false},
	} {
		if got := brokenConnection(c.err); got != c.want {
			t.Errorf("brokenConnection(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
