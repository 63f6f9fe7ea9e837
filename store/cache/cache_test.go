package cache

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// rows is a read of rows whose entry is the tag byte and the ID in decimal.
type rows struct {
	decoded, loads []int64
	loaded         []int64
}

func (r *rows) Decode(entry string) bool {
	if entry == "" || entry[0] != store.CacheEntryTag {
		return false
	}
	id, err := strconv.ParseInt(entry[1:], 10, 64)
	r.decoded = append(r.decoded, id)
	return err == nil
}

func (r *rows) Load(_ context.Context, ids []int64) error {
	r.loads = append(r.loads, ids...)
	r.loaded = slices.Clone(ids)
	return nil
}

func (r *rows) Loaded() int    { return len(r.loaded) }
func (r *rows) ID(i int) int64 { return r.loaded[i] }
func (r *rows) Encode(i int) []byte {
	return append([]byte{store.CacheEntryTag}, strconv.FormatInt(r.loaded[i], 10)...)
}

// A miss is loaded and filled in, then served from Redis; an invalidation leaves a
// tombstone under the same key, bumps the response versions, and the next read loads again
// and fills over the tombstone it saw.
func TestReadThroughAndInvalidate(t *testing.T) {
	url := storetest.RedisURL(t)
	prefix := storetest.RedisPrefix(t, url)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()
	c := New(rdb, prefix, time.Minute, time.Second, nil)

	read := func(ids ...int64) (*rows, int, int) {
		t.Helper()
		r := &rows{}
		hits, misses, err := c.ReadThrough(ctx, store.CacheKindUser, ids, r)
		if err != nil {
			t.Fatal(err)
		}
		return r, hits, misses
	}
	if r, hits, misses := read(1, 2); hits != 0 || misses != 2 || !slices.Equal(r.loads, []int64{1, 2}) {
		t.Fatalf("cold read: %d hits, %d misses, loaded %v", hits, misses, r.loads)
	}
	if r, hits, misses := read(1, 2); hits != 2 || misses != 0 || len(r.loads) != 0 || len(r.decoded) != 2 {
		t.Fatalf("warm read: %d hits, %d misses, loaded %v, decoded %v", hits, misses, r.loads, r.decoded)
	}
	key := prefix + "cache:" + store.CacheSchema + ":user:1"
	version := prefix + "cache:" + store.CacheSchema + ":rv:user:1"
	before, _ := rdb.Get(ctx, version).Result()
	c.Invalidate(ctx, store.CacheKindUser, 1)
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v == "" || v[0] != store.CacheTombstoneTag {
		t.Fatalf("after the invalidation %s holds %q (%v), want a tombstone", key, v, err)
	}
	if after, _ := rdb.Get(ctx, version).Result(); after == "" || after == before {
		t.Errorf("the version key %s was not bumped", version)
	}
	if !c.ResponseTags().Trusted() {
		t.Error("an invalidation that landed leaves the cache untrusted")
	}
	if r, hits, misses := read(1, 2); hits != 1 || misses != 1 || !slices.Equal(r.loads, []int64{1}) {
		t.Fatalf("read after the invalidation: %d hits, %d misses, loaded %v", hits, misses, r.loads)
	}
	if _, hits, _ := read(1); hits != 1 {
		t.Error("the fill over the tombstone did not land")
	}
	if h, m, e := c.Counts(); h != 4 || m != 3 || e != 0 {
		t.Errorf("counts %d hits, %d misses, %d errors; want 4, 3, 0", h, m, e)
	}
}
