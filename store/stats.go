package store

import "sync/atomic"

// CacheStats counts cache outcomes since the process started.
type CacheStats struct {
	hits, misses, errors atomic.Int64
}

func (s *CacheStats) addHits(n int)   { s.hits.Add(int64(n)) }
func (s *CacheStats) addMisses(n int) { s.misses.Add(int64(n)) }
func (s *CacheStats) addErrors(n int) { s.errors.Add(int64(n)) }

// Hits returns how many keys were served from the cache.
func (s *CacheStats) Hits() int64 { return s.hits.Load() }

// Misses returns how many keys had to be read from the database.
func (s *CacheStats) Misses() int64 { return s.misses.Load() }

// Errors returns how many Redis calls failed.
func (s *CacheStats) Errors() int64 { return s.errors.Load() }

// Stats returns the cache's counters.
func (c *Cache) Stats() *CacheStats { return &c.stats }
