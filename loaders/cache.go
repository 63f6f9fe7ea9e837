package loaders

import (
	"context"
	"sync"

	"github.com/graph-gophers/dataloader/v7"
)

// cache is a loader's cache, the one its many and one read first. dataloader's own
// (InMemoryCache) holds a thunk for every key, a closure allocated for each value primed,
// and grows its map a key at a time: priming a storefront's 50 merchants was some 5% of its
// request. Here a primed value is kept as it is, a batch of them is put in at once, and a
// thunk is made only for the loader's own Load, which asks for one.
type cache[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]entry[V]
}

// entry is a key's thunk (the loader's Load put it in) or, without one, its primed value.
type entry[V any] struct {
	thunk dataloader.Thunk[V]
	v     V
}

func (c *cache[K, V]) Get(_ context.Context, key K) (dataloader.Thunk[V], bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || e.thunk != nil {
		return e.thunk, ok
	}
	return func() (V, error) { return e.v, nil }, true
}

func (c *cache[K, V]) Set(_ context.Context, key K, thunk dataloader.Thunk[V]) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[K]entry[V])
	}
	c.m[key] = entry[V]{thunk: thunk}
	c.mu.Unlock()
}

func (c *cache[K, V]) Delete(_ context.Context, key K) bool {
	c.mu.Lock()
	_, ok := c.m[key]
	delete(c.m, key)
	c.mu.Unlock()
	return ok
}

func (c *cache[K, V]) Clear() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

// value returns what is cached for key, as its thunk would, and whether anything is.
func (c *cache[K, V]) value(key K) (V, error, bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && e.thunk != nil {
		v, err := e.thunk()
		return v, err, true
	}
	return e.v, nil, ok
}

// has reports whether anything is cached for key.
func (c *cache[K, V]) has(key K) bool {
	c.mu.Lock()
	_, ok := c.m[key]
	c.mu.Unlock()
	return ok
}

// put caches v under key where nothing is cached yet (as Loader.Prime does).
func (c *cache[K, V]) put(key K, v V) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[K]entry[V])
	}
	c.putLocked(key, v)
	c.mu.Unlock()
}

// prime puts vals, each under its key, at once.
func (c *cache[K, V]) prime(vals []V, key func(V) K) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[K]entry[V], len(vals))
	}
	for _, v := range vals {
		c.putLocked(key(v), v)
	}
	c.mu.Unlock()
}

func (c *cache[K, V]) putLocked(key K, v V) {
	if _, ok := c.m[key]; !ok {
		c.m[key] = entry[V]{v: v}
	}
}
