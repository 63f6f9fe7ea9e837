package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// reads returns the handle of the reads replicas may serve: loaders' batches, list pages,
// counts.
func (s *Store) reads(ctx context.Context) *gorm.DB {
	return s.replicaDB.WithContext(ctx)
}

// wrote tells the replica routing that a write of user (0: none signed in) committed.
func (s *Store) wrote(ctx context.Context, user int64) {
	if s.replicas == nil {
		return
	}
	s.replicas.Wrote(ctx, user, func() (int64, error) {
		var at int64
		err := s.db.WithContext(ctx).Raw("SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&at).Error
		return at, err
	})
}

// ReplicaStats is what one read replica did since the process started.
type ReplicaStats struct {
	// Name is the replica's host:port.
	Name string
	// Healthy says whether the last probe found it fit to serve reads; Lag bounds how far
	// it was behind the primary then.
	Healthy bool
	Lag     time.Duration
	// Reads counts the statements it served; Failures those that failed on it and ran again
	// on the primary.
	Reads, Failures int64
}

// fills returns the handle of the reads that fill the cache (users and products by ID): the
// primary, since a row a replica had not replayed yet would outlive the lag bound by the
// cache's TTL; replicas when there is no cache.
func (s *Store) fills(ctx context.Context) *gorm.DB {
	if s.cache != nil {
		return s.db.WithContext(ctx)
	}
	return s.reads(ctx)
}
