package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/shop/api/loaders"
)

// Relations are batch resolvers: gqlgen calls one with the parents of a list, so a level
// needs no goroutine per parent to find its keys, and no batch window when that list is the
// level's only one.

// level says whether the parents of a resolver (a batch resolver's, or the one of a field
// resolver) are all of their level: when no list encloses them and the operation has no
// other root field (me → orders), or they are the elements of the one list that encloses them
// (products(first: 50) → merchant). Otherwise they are Partial and meet their siblings in
// the loaders' window: the parents under each of several root fields (node(id:) of several
// IDs), the parents of one list among several (the items of each order of a page), or a
// parent that is no list's element under a list (the product of each item of an order:
// gqlgen calls Product.merchant's batch resolver once per item, with that one product).
func level(ctx context.Context) loaders.Level {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return loaders.Whole
	}
	lists := 0
	for f := fc; f != nil; f = f.Parent {
		if f.Index != nil {
			lists++
		}
	}
	if lists == 0 && alone(ctx) || lists == 1 && fc.Parent != nil && fc.Parent.Index != nil {
		return loaders.Whole
	}
	return loaders.Partial
}

// alone says whether the operation's root field is the only one that could load with it: a
// query's root fields resolve concurrently and share the window (node(id:) of several IDs is
// one statement), a mutation's resolve one after another, a subscription has one.
func alone(ctx context.Context) bool {
	if !graphql.HasOperationContext(ctx) {
		return true
	}
	op := graphql.GetOperationContext(ctx).Operation
	if op == nil || op.Operation != ast.Query {
		return true
	}
	if len(op.SelectionSet) != 1 {
		return false
	}
	_, field := op.SelectionSet[0].(*ast.Field)
	return field
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
