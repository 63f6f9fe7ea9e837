package store

import "context"

// cachedRows is one read of rows of type T through the cache: it decodes the entries the
// cache holds and loads the rest with load.
type cachedRows[T any] struct {
	s      *Store
	codec  entryCodec[T]
	load   func(*Store, context.Context, []int64) ([]T, error)
	rows   []T // the rows decoded, then the rows loaded
	loaded []T
}

func (r *cachedRows[T]) Decode(entry string) bool {
	v, err := r.codec.unmarshal(entry)
	if err != nil {
		return false
	}
	r.rows = append(r.rows, v)
	return true
}

func (r *cachedRows[T]) Load(ctx context.Context, ids []int64) error {
	loaded, err := r.load(r.s, ctx, ids)
	if err != nil {
		return err
	}
	r.loaded = loaded
	r.rows = append(r.rows, loaded...)
	return nil
}

func (r *cachedRows[T]) Loaded() int         { return len(r.loaded) }
func (r *cachedRows[T]) ID(i int) int64      { return r.codec.id(r.loaded[i]) }
func (r *cachedRows[T]) Encode(i int) []byte { return r.codec.marshal(r.loaded[i]) }

// readThrough returns the rows of ids through the store's cache, reading the misses with
// load; without a cache it reads them all with load. Unknown IDs are left out.
func readThrough[T any](ctx context.Context, s *Store, codec entryCodec[T], ids []int64,
	load func(*Store, context.Context, []int64) ([]T, error)) ([]T, error) {
	if s.cache == nil || len(ids) == 0 {
		return load(s, ctx, ids)
	}
	r := &cachedRows[T]{s: s, codec: codec, load: load, rows: make([]T, 0, len(ids))}
	hits, misses, err := s.cache.ReadThrough(ctx, codec.kind, ids, r)
	if rs := requestStatsFrom(ctx); rs != nil {
		rs.addCache(hits, misses)
	}
	if err != nil {
		return nil, err
	}
	return r.rows, nil
}

func (s *Store) invalidateProducts(ctx context.Context, ids ...int64) {
	if s.cache != nil {
		s.cache.Invalidate(ctx, productCodec.kind, ids...)
	}
}

func (s *Store) invalidateUsers(ctx context.Context, ids ...int64) {
	if s.cache != nil {
		s.cache.Invalidate(ctx, userCodec.kind, ids...)
	}
}
