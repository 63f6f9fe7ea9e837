package respcache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// TestVersionReaderSharesRoundTrips: concurrent reads of different keys each get their own
// values, in their order, however they were batched, and a value written before a read
// began is what it returns.
func TestVersionReaderSharesRoundTrips(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	v := &versionReader{rdb: rdb, timeout: time.Second}
	for i := range 20 {
		mr.Set(fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := []string{fmt.Sprint("k", g%20), "absent", fmt.Sprint("k", (g*7)%20)}
			vals, err := v.read(context.Background(), keys)
			if err != nil {
				errs <- err
				return
			}
			want := []any{fmt.Sprint("v", g%20), nil, fmt.Sprint("v", (g*7)%20)}
			if fmt.Sprint(vals) != fmt.Sprint(want) {
				errs <- fmt.Errorf("%v: got %v, want %v", keys, vals, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mr.Set("k0", "new")
	if vals, err := v.read(context.Background(), []string{"k0"}); err != nil || vals[0] != "new" {
		t.Fatalf("after a write: %v, %v", vals, err)
	}
}
