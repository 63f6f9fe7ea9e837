package loaders

import (
	"context"

	"github.com/graph-gophers/dataloader/v7"

	"github.com/shop/api/store"
)

var errNotFound = &store.Error{Code: store.CodeNotFound, Message: "not found"}

// byID turns a find-by-IDs store method into a batch function: one result per key, in key
// order, NOT_FOUND for a key the store did not return.
func byID[V any](find func(context.Context, []int64) ([]V, error), id func(V) int64) dataloader.BatchFunc[int64, V] {
	return func(ctx context.Context, keys []int64) []*dataloader.Result[V] {
		found, err := find(ctx, keys)
		results := make([]*dataloader.Result[V], len(keys))
		if err != nil {
			for i := range results {
				results[i] = &dataloader.Result[V]{Error: err}
			}
			return results
		}
		byKey := make(map[int64]V, len(found))
		for _, v := range found {
			byKey[id(v)] = v
		}
		for i, k := range keys {
			if v, ok := byKey[k]; ok {
				results[i] = &dataloader.Result[V]{Data: v}
			} else {
				results[i] = &dataloader.Result[V]{Error: errNotFound}
			}
		}
		return results
	}
}

// groupedBy turns a find-children-of-parents store method into a batch function returning
// each parent's children, in the store's order; a parent without children gets an empty list.
func groupedBy[V any](find func(context.Context, []int64) ([]V, error), parent func(V) int64) dataloader.BatchFunc[int64, []V] {
	return func(ctx context.Context, keys []int64) []*dataloader.Result[[]V] {
		found, err := find(ctx, keys)
		results := make([]*dataloader.Result[[]V], len(keys))
		if err != nil {
			for i := range results {
				results[i] = &dataloader.Result[[]V]{Error: err}
			}
			return results
		}
		byKey := make(map[int64][]V, len(keys))
		for _, v := range found {
			byKey[parent(v)] = append(byKey[parent(v)], v)
		}
		for i, k := range keys {
			results[i] = &dataloader.Result[[]V]{Data: byKey[k]}
		}
		return results
	}
}
