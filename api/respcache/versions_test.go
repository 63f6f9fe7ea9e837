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

// mgetKeys is a hook that records the number of keys of each MGET, holding the first one
// until release is closed.
type mgetKeys struct {
	mu      sync.Mutex
	counts  []int
	release chan struct{}
}

func (h *mgetKeys) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *mgetKeys) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *mgetKeys) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "mget" {
			h.mu.Lock()
			h.counts = append(h.counts, len(cmd.Args())-1)
			first := len(h.counts) == 1
			h.mu.Unlock()
			if first {
				<-h.release
			}
		}
		return next(ctx, cmd)
	}
}

// TestVersionReaderAsksSharedTagsOnce: hits of one response waiting together (they ask for
// its entry's slice of tags) are answered by one MGET of those tags, not one copy each.
func TestVersionReaderAsksSharedTagsOnce(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	hook := &mgetKeys{release: make(chan struct{})}
	rdb.AddHook(hook)
	v := &versionReader{rdb: rdb, timeout: 5 * time.Second}
	mr.Set("a", "1")
	tags := []string{"a", "b", "c"}
	const waiting = 50
	var wg sync.WaitGroup
	errs := make(chan error, waiting+1)
	read := func() {
		defer wg.Done()
		vals, err := v.read(context.Background(), tags)
		if err == nil && fmt.Sprint(vals) != "[1 <nil> <nil>]" {
			err = fmt.Errorf("got %v", vals)
		}
		if err != nil {
			errs <- err
		}
	}
	wg.Add(1)
	go read() // its MGET is held
	for len(hook.snapshot()) == 0 {
		time.Sleep(time.Millisecond)
	}
	for range waiting {
		wg.Add(1)
		go read()
	}
	for {
		v.mu.Lock()
		n := len(v.pending)
		v.mu.Unlock()
		if n == waiting {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(hook.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := hook.snapshot(); fmt.Sprint(got) != "[3 3]" {
		t.Fatalf("MGETs asked for %v keys, want [3 3]: the first read's, then the %d waiting reads' once", got, waiting)
	}
}

func (h *mgetKeys) snapshot() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.counts...)
}
