package guard

import (
	"sync"
	"testing"
	"time"
)

func TestLeases(t *testing.T) {
	var l leases
	now := time.Now()
	const share, floor = 100, 250
	// Unknown bucket: the cost alone.
	c := l.plan("k", 10, share, floor, now)
	if c.points(10) != 10 {
		t.Fatalf("first charge asks %d, want 10", c.points(10))
	}
	l.paid(c, 990, now)
	// Far from empty: the cost and a lease, which pays the next operations.
	if c = l.plan("k", 10, share, floor, now); c.points(10) != 110 {
		t.Fatalf("second charge asks %d, want 110", c.points(10))
	}
	if got := l.paid(c, 880, now); got != 980 {
		t.Errorf("after the lease: %d available, want 980", got)
	}
	for i := range 10 {
		if got, ok := l.spend("k", 10, now); !ok || got != 970-10*i {
			t.Fatalf("spend %d: %d, %v", i, got, ok)
		}
	}
	if _, ok := l.spend("k", 10, now); ok {
		t.Fatal("an empty lease paid")
	}
	// A refused charge gives back the leftover it reserved.
	l.paid(charge{key: "k", lease: 5}, 300, now)
	c = l.plan("k", 10, share, floor, now)
	if c.leftover != 5 || c.lease != 0 || c.points(10) != 5 {
		t.Fatalf("near empty: %+v, want the leftover 5 and no lease", c)
	}
	l.refused(c, 0)
	if _, ok := l.spend("k", 5, now); !ok {
		t.Error("the leftover of a refused charge was lost")
	}
	// Leases end after leaseTTL.
	l.paid(charge{key: "k", lease: 50}, 900, now)
	if _, ok := l.spend("k", 10, now.Add(leaseTTL+time.Millisecond)); ok {
		t.Error("an expired lease paid")
	}
}

// Concurrent operations of one caller never spend a point twice.
func TestLeasesConcurrent(t *testing.T) {
	var l leases
	now := time.Now()
	l.paid(charge{key: "k"}, 1_000_000, now)
	l.paid(charge{key: "k", lease: 1000}, 1_000_000, now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	spent := 0
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if _, ok := l.spend("k", 1, now); ok {
					mu.Lock()
					spent++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if spent != 1000 {
		t.Errorf("spent %d points of a lease of 1000", spent)
	}
}
