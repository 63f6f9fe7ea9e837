package store

import (
	"context"
	"sync"

	"gorm.io/gorm"
)

// Stats is what the store did since the process started: the SQL statements it issued and
// what the cache answered. Every number only grows, as Prometheus counters do.
type Stats struct {
	// Statements is how many SQL statements were sent to the database (BEGIN and COMMIT are
	// not statements gorm sees, so they are not counted).
	Statements int64
	// CacheHits and CacheMisses count keys served from Redis and read from the database.
	CacheHits, CacheMisses int64
	// CacheErrors counts Redis calls that failed or timed out.
	CacheErrors int64
	// Replicas are the read replicas, in DATABASE_REPLICA_URLS order; PrimaryReads counts
	// the reads replicas could have served that went to the primary.
	Replicas     []ReplicaStats
	PrimaryReads int64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{Statements: s.statements.Load()}
	if c := s.cache; c != nil {
		st.CacheHits, st.CacheMisses, st.CacheErrors = c.Counts()
	}
	if s.replicas != nil {
		st.Replicas, st.PrimaryReads = s.replicas.Stats()
	}
	return st
}

// RequestStats counts what one request (or operation) cost: its SQL statements, with their
// text, and its cache hits and misses. It is safe for concurrent use, as resolvers run in
// parallel goroutines.
type RequestStats struct {
	mu                     sync.Mutex
	sql                    []string
	roundTrips             int
	cacheHits, cacheMisses int
}

type requestStatsKey struct{}

// WithRequestStats returns ctx in which the store counts into rs.
func WithRequestStats(ctx context.Context, rs *RequestStats) context.Context {
	return context.WithValue(ctx, requestStatsKey{}, rs)
}

func requestStatsFrom(ctx context.Context) *RequestStats {
	if ctx == nil {
		return nil
	}
	rs, _ := ctx.Value(requestStatsKey{}).(*RequestStats)
	return rs
}

// maxKeptSQL bounds the statement texts a request keeps; the count goes on beyond it.
const maxKeptSQL = 200

// Statements returns the number of SQL statements counted so far.
func (rs *RequestStats) Statements() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.sql)
}

// RoundTrips returns how many times the statements counted so far waited for the database:
// one each, but one for all the statements of a batch (see FindOrdersOfCustomersWith).
func (rs *RequestStats) RoundTrips() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.roundTrips
}

// SQL returns the text of the statements counted so far (at most the first 200), in order.
func (rs *RequestStats) SQL() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]string, 0, len(rs.sql))
	for _, s := range rs.sql {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Cache returns how many keys the cache answered and missed for this request.
func (rs *RequestStats) Cache() (hits, misses int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.cacheHits, rs.cacheMisses
}

// addStatements counts statements sent together, in one round trip.
func (rs *RequestStats) addStatements(sql ...string) {
	rs.mu.Lock()
	for _, s := range sql {
		if len(rs.sql) >= maxKeptSQL {
			s = ""
		}
		rs.sql = append(rs.sql, s)
	}
	rs.roundTrips++
	rs.mu.Unlock()
}

func (rs *RequestStats) addCache(hits, misses int) {
	rs.mu.Lock()
	rs.cacheHits += hits
	rs.cacheMisses += misses
	rs.mu.Unlock()
}

// countStatement counts a statement that ran, in the process-wide counter and in the
// RequestStats of the statement's context.
func (s *Store) countStatement(db *gorm.DB) {
	s.statements.Add(1)
	if rs := requestStatsFrom(db.Statement.Context); rs != nil {
		rs.addStatements(db.Statement.SQL.String())
	}
}

// countBatch counts statements that went to the database in one round trip, as
// countStatement counts one.
func (s *Store) countBatch(ctx context.Context, sql ...string) {
	s.statements.Add(int64(len(sql)))
	if rs := requestStatsFrom(ctx); rs != nil {
		rs.addStatements(sql...)
	}
}
