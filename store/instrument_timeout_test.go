package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// A statement is cut at StatementTimeout unless its context has an earlier deadline, and
// the error is one the caller may retry.
func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	s := openStore(t, store.Config{DatabaseURL: storetest.PostgresURL(t), MaxConns: 2, StatementTimeout: 300 * time.Millisecond})
	type timeoutCase struct {
		name     string
		deadline time.Duration // of the caller's context; 0: none
		want     time.Duration
	}
	for _, c := range []timeoutCase{
		{"no deadline", 0, 300 * time.Millisecond},
		{"a later deadline", 10 * time.Second, 300 * time.Millisecond},
		{"an earlier deadline", 100 * time.Millisecond, 100 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			if c.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.deadline)
				defer cancel()
			}
			start := time.Now()
			err := store.ExecForTest(ctx, s, "SELECT pg_sleep(3)")
			took := time.Since(start)
			if err == nil || !store.Unavailable(err) {
				t.Fatalf("pg_sleep(3): %v, want an error Unavailable reports", err)
			}
			if took < c.want || took > c.want+time.Second {
				t.Errorf("cut after %v, want about %v", took, c.want)
			}
		})
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("the pool after cancelled statements: %v", err)
	}
}
