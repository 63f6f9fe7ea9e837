package loaders

import (
	"context"

	"github.com/graph-gophers/dataloader/v7"
)

// Level says what a resolver's keys are. gqlgen hands a batch resolver the parents of one
// list; when no list encloses that one, they are every parent of their level and nothing is
// gained by waiting for more. So is the one parent of a field that no list encloses, when no
// other root field of the operation resolves beside it.
type Level bool

const (
	// Partial keys are those of one list among sibling lists (the items of one order of a
	// page), or of one parent among siblings: they join the loader's batch window, so that
	// every list's keys go in one read.
	Partial Level = false
	// Whole keys are all the level will ask for: what the loader has not cached is read at
	// once, without a window, and kept in its cache.
	Whole Level = true
)

// many loads keys through z and returns their values in key order, with errs nil unless a
// key failed (then errs[i] is that key's error).
func many[K comparable, V any](ctx context.Context, z *lazy[K, V], keys []K, level Level) (vals []V, errs []error) {
	loader := z.get()
	vals = make([]V, len(keys))
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(keys))
		}
		errs[i] = err
	}
	if level == Partial {
		// A cached key is answered from the cache: Load would allocate a channel and a thunk
		// for it and take the loader's lock, and below a Whole level that prefetched (see
		// resolvers) every key is cached. Load queues the others before any thunk waits: one
		// window for all of them, and no goroutine per key as dataloader's LoadMany would start.
		var thunks []dataloader.Thunk[V]
		for i, k := range keys {
			v, err, ok := z.cache.value(k)
			if !ok {
				if thunks == nil {
					thunks = make([]dataloader.Thunk[V], len(keys))
				}
				thunks[i] = loader.Load(ctx, k)
				continue
			}
			vals[i] = v
			if err != nil {
				fail(i, err)
			}
		}
		for i, thunk := range thunks {
			if thunk == nil {
				continue
			}
			v, err := thunk()
			vals[i] = v
			if err != nil {
				fail(i, err)
			}
		}
		return vals, errs
	}

	var missing []K
	pending := map[K][]int{} // the positions of each key read now
	for i, k := range keys {
		if v, err, ok := z.cache.value(k); ok {
			vals[i] = v
			if err != nil {
				fail(i, err)
			}
			continue
		}
		if _, ok := pending[k]; !ok {
			missing = append(missing, k)
		}
		pending[k] = append(pending[k], i)
	}
	for len(missing) > 0 {
		batch := missing
		if z.maxBatch > 0 && len(batch) > z.maxBatch {
			batch = batch[:z.maxBatch]
		}
		missing = missing[len(batch):]
		for j, r := range z.fetch(ctx, batch) {
			k := batch[j]
			if r.Error == nil {
				z.cache.put(k, r.Data)
			}
			for _, i := range pending[k] {
				vals[i] = r.Data
				if r.Error != nil {
					fail(i, r.Error)
				}
			}
		}
	}
	return vals, errs
}

// one loads key through z, for a resolver of one parent: through the batch window when
// level is Partial, at once when it is Whole.
func one[K comparable, V any](ctx context.Context, z *lazy[K, V], key K, level Level) (V, error) {
	if level == Partial {
		loader := z.get()
		if v, err, ok := z.cache.value(key); ok {
			return v, err
		}
		return loader.Load(ctx, key)()
	}
	vals, errs := many(ctx, z, []K{key}, Whole)
	if errs != nil {
		return vals[0], errs[0]
	}
	return vals[0], nil
}
