package replicas

import (
	"context"
	"strings"
	"testing"
)

// A URL that does not parse is refused under the variable's name, and a write outside an
// operation that reads replicas, by nobody signed in, does not read the primary's position.
func TestNewAndWroteWithoutReads(t *testing.T) {
	if _, err := New(Config{URLs: []string{"postgres://%zz"}}); err == nil || !strings.HasPrefix(err.Error(), "DATABASE_REPLICA_URLS") {
		t.Errorf("a bad URL: %v", err)
	}
	rs, err := New(Config{URLs: []string{"postgres://postgres@127.0.0.1:1/none"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if rs.maxLag != defaultMaxLag || rs.interval != defaultCheckInterval {
		t.Errorf("defaults: max lag %s, interval %s", rs.maxLag, rs.interval)
	}
	asked := false
	rs.Wrote(context.Background(), 0, func() (int64, error) { asked = true; return 1, nil })
	if asked {
		t.Error("the primary's position was read for a write nobody needs to see")
	}
	ctx := WithReads(context.Background(), func() int64 { return 0 })
	rs.Wrote(ctx, 0, func() (int64, error) { asked = true; return 42, nil })
	if !asked {
		t.Error("an operation that reads replicas did not record its write")
	}
	if rr := ctx.Value(replicaReadsKey{}).(*replicaReads); rr.wrote.Load() != 42 {
		t.Errorf("the operation must see position %d, want 42", rr.wrote.Load())
	}
	if r := rs.pick(ctx); r != nil {
		t.Errorf("an unprobed replica %s was picked", r.name)
	}
	rs.Close() // twice: the store's Open and Close may both close it
}
