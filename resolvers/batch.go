package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/shop/api/loaders"
)

// Relations are batch resolvers: gqlgen calls one with the parents of a list, so a level
// needs no goroutine per parent to find its keys, and no batch window when that list is the
// level's only one.

// level says whether a batch resolver's parents are all of their level: when no list
// encloses theirs (products(first: 50) → merchant), or they are not in a list at all.
// Nested lists (the items of each order of a page) are Partial: they meet in the loaders'
// window, so that the products of every order are read together.
func level(ctx context.Context) loaders.Level {
	lists := 0
	for fc := graphql.GetFieldContext(ctx); fc != nil; fc = fc.Parent {
		if fc.Index != nil {
			lists++
		}
	}
	if lists > 1 {
		return loaders.Partial
	}
	return loaders.Whole
}

// keys maps parents to the keys of what they refer to.
func keys[P any](parents []*P, key func(*P) int64) []int64 {
	ks := make([]int64, len(parents))
	for i, p := range parents {
		ks[i] = key(p)
	}
	return ks
}

// pointers returns a pointer to each of vals, and errs as the per-parent errors gqlgen
// expects (nil when every key was found).
func pointers[V any](vals []V, errs []error) ([]*V, error) {
	ptrs := make([]*V, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	return ptrs, batchErrors(errs)
}

// batchErrors returns errs as gqlgen's per-parent errors, nil when there are none.
func batchErrors(errs []error) error {
	if errs == nil {
		return nil
	}
	return graphql.BatchErrorList(errs)
}
