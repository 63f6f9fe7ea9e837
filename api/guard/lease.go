package guard

import (
	"sync"
	"time"
)

// A cost bucket far from empty is charged in leases. With its charge an operation takes a
// slice of its caller's bucket in Redis (1/leaseShare of the burst), and the caller's next
// operations in this process spend the slice here, without a Redis round trip (a Lua script
// each, 6% of a storefront read's CPU). Nothing is over-admitted: every point spent was first
// taken from Redis. The price is points a process holds and others may not spend, at most a
// slice per caller and process, dropped after leaseTTL. Near empty (1/leaseFloor of the burst
// or less, as this process last saw it) a bucket is charged operation by operation, so the
// last points go to whichever process asks first and refusals are exact.
const (
	leaseShare = 100
	leaseFloor = 4
	leaseTTL   = time.Second
	// leaseSweep is how many callers' leases a process keeps before it drops expired ones.
	leaseSweep = 4096
)

// lease is what this process holds of one caller's bucket.
type lease struct {
	points    int       // taken from Redis and not yet spent
	remaining int       // what the bucket in Redis held after the last charge
	taken     time.Time // when points were taken
}

// leases are this process's leases, by bucket key.
type leases struct {
	mu sync.Mutex
	m  map[string]*lease
}

// spend pays cost from the lease of key and returns the bucket's points as this process
// knows them; false when the lease cannot pay it.
func (l *leases) spend(key string, cost int, now time.Time) (available int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	le := l.m[key]
	if le == nil || now.Sub(le.taken) > leaseTTL || le.points < cost {
		return 0, false
	}
	le.points -= cost
	return le.remaining + le.points, true
}

// charge is what to ask Redis for to pay cost: what the lease could not pay (its leftover
// points are reserved for this charge), and a new lease of share points while the bucket
// holds more than floor.
type charge struct {
	key             string
	leftover, lease int
}

func (c charge) points(cost int) int { return cost - c.leftover + c.lease }

func (l *leases) plan(key string, cost, share, floor int, now time.Time) charge {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := charge{key: key}
	le := l.m[key]
	if le == nil {
		return c
	}
	if now.Sub(le.taken) <= leaseTTL {
		c.leftover = min(le.points, cost)
		le.points -= c.leftover
	}
	if le.remaining-(cost-c.leftover)-share > floor {
		c.lease = share
	}
	return c
}

// paid records that Redis took c's points and had remaining left, and returns the bucket's
// points as this process knows them.
func (l *leases) paid(c charge, remaining int, now time.Time) (available int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*lease{}
	}
	le := l.m[c.key]
	if le == nil {
		if len(l.m) >= leaseSweep {
			l.sweep(now)
		}
		le = &lease{}
		l.m[c.key] = le
	}
	if now.Sub(le.taken) > leaseTTL {
		le.points = 0
	}
	le.points += c.lease
	le.remaining, le.taken = remaining, now
	return le.remaining + le.points
}

// refused records that Redis did not take c (it refused, or could not be asked: remaining
// < 0): the reserved leftover goes back to the lease.
func (l *leases) refused(c charge, remaining int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if le := l.m[c.key]; le != nil {
		le.points += c.leftover
		if remaining >= 0 {
			le.remaining = remaining
		}
	}
}

// sweep drops expired leases; l.mu must be held.
func (l *leases) sweep(now time.Time) {
	for k, le := range l.m {
		if now.Sub(le.taken) > leaseTTL {
			delete(l.m, k)
		}
	}
}
