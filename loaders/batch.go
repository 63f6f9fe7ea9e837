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

// childKey names a page of one parent's children: the parent and the page's arguments.
type childKey struct {
	parent int64
	first  int
	after  string
	status store.OrderStatus // "" for any status
}

// orderPage names a page of a customer's orders, only those in status when it is set.
func orderPage(customerID int64, status *store.OrderStatus, page store.PageArgs) childKey {
	k := orderCount(customerID, status)
	k.first, k.after = page.First, page.After
	return k
}

// orderCount names the count of a customer's orders, only those in status when it is set.
func orderCount(customerID int64, status *store.OrderStatus) childKey {
	k := childKey{parent: customerID}
	if status != nil {
		k.status = *status
	}
	return k
}

// productPage names a page of a merchant's products.
func productPage(merchantID int64, page store.PageArgs) childKey {
	return childKey{parent: merchantID, first: page.First, after: page.After}
}

func (k childKey) page() store.PageArgs { return store.PageArgs{First: k.first, After: k.after} }

func (k childKey) statusFilter() *store.OrderStatus {
	if k.status == "" {
		return nil
	}
	s := k.status
	return &s
}

// args is a childKey without its parent: keys with equal args share one statement.
func (k childKey) args() childKey { k.parent = 0; return k }

// byArgs groups keys by their arguments, in order of first appearance, with the parents of
// each group and the positions of its keys.
func byArgs(keys []childKey) (groups []childKey, parents map[childKey][]int64, at map[childKey][]int) {
	parents, at = map[childKey][]int64{}, map[childKey][]int{}
	for i, k := range keys {
		a := k.args()
		if _, ok := at[a]; !ok {
			groups = append(groups, a)
		}
		parents[a] = append(parents[a], k.parent)
		at[a] = append(at[a], i)
	}
	return groups, parents, at
}

// childrenOf turns a find-children-of-parents store method, which takes one set of page
// arguments, into a batch function over keys that may differ in their arguments: one
// statement per distinct set of arguments (nearly always exactly one), results in key order.
// A parent the store left out gets missing(parent).
func childrenOf[V any](find func(context.Context, []int64, childKey) (map[int64]V, error), missing func(int64) V) dataloader.BatchFunc[childKey, V] {
	return func(ctx context.Context, keys []childKey) []*dataloader.Result[V] {
		results := make([]*dataloader.Result[V], len(keys))
		groups, parents, at := byArgs(keys)
		for _, g := range groups {
			found, err := find(ctx, parents[g], g)
			for _, i := range at[g] {
				switch v, ok := found[keys[i].parent]; {
				case err != nil:
					results[i] = &dataloader.Result[V]{Error: err}
				case ok:
					results[i] = &dataloader.Result[V]{Data: v}
				default:
					results[i] = &dataloader.Result[V]{Data: missing(keys[i].parent)}
				}
			}
		}
		return results
	}
}

// pagesOf batches a find-pages-of-parents store method, which gives every parent a page.
func pagesOf[V any](find func(context.Context, []int64, childKey) (map[int64]*V, error)) dataloader.BatchFunc[childKey, *V] {
	return childrenOf(find, func(int64) *V { return nil })
}

// countsOf batches a count-per-parent store method, which leaves out parents counting zero.
func countsOf(find func(context.Context, []int64, childKey) (map[int64]int, error)) dataloader.BatchFunc[childKey, int] {
	return childrenOf(find, func(int64) int { return 0 })
}
