package respcache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// versionReader reads the current versions of tags for every hit, sharing Redis round trips
// between concurrent requests: requests that ask while one MGET is in flight wait for it,
// then go together in the next one. A request's versions always come from an MGET sent
// after it asked, so a write that returned before the request began is always seen; under
// load, one round trip serves several hits.
type versionReader struct {
	rdb     redis.UniversalClient
	timeout time.Duration

	mu      sync.Mutex
	pending []*versionRead
	running bool // a goroutine is sending the pending reads
}

// versionRead is one request's read: its keys, then the values (shared with the other
// requests of the same keys: read only) or the error.
type versionRead struct {
	keys []string
	vals []any
	err  error
	done chan struct{}
}

// read returns the values of keys (nil where absent), from an MGET sent after it was called.
func (v *versionReader) read(ctx context.Context, keys []string) ([]any, error) {
	r := &versionRead{keys: keys, done: make(chan struct{})}
	v.mu.Lock()
	v.pending = append(v.pending, r)
	if !v.running {
		v.running = true
		go v.send()
	}
	v.mu.Unlock()
	select {
	case <-r.done:
		return r.vals, r.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// send sends the pending reads, one MGET for all those waiting, until none is left.
func (v *versionReader) send() {
	for {
		v.mu.Lock()
		batch := v.pending
		v.pending = nil
		if len(batch) == 0 {
			v.running = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		// Hits of one response ask for its entry's very slice of tags: each such slice is
		// asked once, and its values shared (read only) by the requests that asked it.
		var keys []string
		var asked [][]string // the distinct slices, in keys' order
		at := make([]int, len(batch))
		for i, r := range batch {
			at[i] = -1
			for j, a := range asked {
				if sameSlice(a, r.keys) {
					at[i] = j
					break
				}
			}
			if at[i] < 0 {
				at[i] = len(asked)
				asked = append(asked, r.keys)
			}
		}
		if len(asked) == 1 {
			keys = asked[0]
		} else {
			for _, a := range asked {
				keys = append(keys, a...)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
		vals, err := v.rdb.MGet(ctx, keys...).Result()
		cancel()
		if err == nil && len(vals) != len(keys) {
			err = errors.New("MGET answered another number of values than it was asked")
		}
		answers := make([][]any, len(asked))
		for j, a := range asked {
			if err == nil {
				answers[j], vals = vals[:len(a):len(a)], vals[len(a):]
			}
		}
		for i, r := range batch {
			r.vals, r.err = answers[at[i]], err
			close(r.done)
		}
	}
}

// sameSlice reports whether a and b are the same slice (not merely equal).
func sameSlice(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
