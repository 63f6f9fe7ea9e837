package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/shop/api/store"
)

// Revocations knows, in each process, the accounts whose earlier tokens were revoked (by a
// password change) and from which token version on their tokens hold. A token is checked
// against it on every request and at every heartbeat of a socket: a map read, no round trip.
// A revocation made in this process counts at once (Revoke); one made in another is read
// from the database by Follow within its interval.
type Revocations struct {
	mu   sync.RWMutex
	from map[int64]int64 // user ID → lowest valid token version
}

// NewRevocations returns an empty set; Follow fills it.
func NewRevocations() *Revocations { return &Revocations{from: map[int64]int64{}} }

// Revoke refuses user's tokens of a version below version.
func (r *Revocations) Revoke(user, version int64) {
	r.mu.Lock()
	if version > r.from[user] {
		r.from[user] = version
	}
	r.mu.Unlock()
}

// Revoked reports whether the session's token was revoked.
func (r *Revocations) Revoked(se Session) bool {
	if se.Viewer.UserID == 0 {
		return false
	}
	r.mu.RLock()
	from, ok := r.from[se.Viewer.UserID]
	r.mu.RUnlock()
	return ok && se.Version < from
}

// followOverlap is how far back each read looks past the newest revocation seen: a change
// committed a moment after a later-stamped one (clocks of two processes, a slow commit) is
// still found.
const followOverlap = time.Minute

// Follow reads the revocations of every process from list (the store's TokenRevocations):
// all of them once, then those of the last interval, until ctx ends. It returns once the
// first read is done, so that no request is served before the set is known, and fails if
// that read does; later failures are logged and retried.
func (r *Revocations) Follow(ctx context.Context, list func(ctx context.Context, since time.Time) ([]store.Revocation, error),
	interval time.Duration, log *slog.Logger) error {
	var since time.Time
	read := func() error {
		revs, err := list(ctx, since)
		if err != nil {
			return err
		}
		for _, rv := range revs {
			r.Revoke(rv.UserID, rv.Version)
			if newest := rv.At.Add(-followOverlap); newest.After(since) {
				since = newest
			}
		}
		return nil
	}
	if err := read(); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := read(); err != nil && ctx.Err() == nil {
					log.Warn("reading token revocations", "err", err)
				}
			}
		}
	}()
	return nil
}
