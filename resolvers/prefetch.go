package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// Below a Whole level everything is Partial: gqlgen resolves the next level list by list
// (the products of each order's items) or parent by parent (the merchant of each product),
// and each call waits for the loaders' window so that all of them share one read. A Whole
// batch resolver holds every parent of its level, so it reads the levels below it that the
// query asks for itself, at once (loaders' Whole path: one statement a level, as the window
// would send), and those calls find their keys cached and return without waiting.
//
// A prefetch reports nothing: a key it could not read stays out of the cache, and the call
// that needs it reads it again through the window and reports its error for that key alone.
// It reads only what the calls below would read, and visibility is checked by those calls as
// before: none of the relations prefetched here has a rule of its own.

// The types a selection's fragments may name for an object of each type, as the generated
// executor passes them to graphql.CollectFields (which then answers from its cache).
var (
	orderItemTypes = []string{"OrderItem"}
	productTypes   = []string{"Product", "Node"}
	eventTypes     = []string{"OrderStatusEvent"}
)

// asked returns the fields named name that the selections of fields ask for on an object of
// one of types: under any alias, through fragments, as @skip and @include leave them; none
// when the query does not ask for it.
func asked(ctx context.Context, fields []graphql.CollectedField, types []string, name string) []graphql.CollectedField {
	var found []graphql.CollectedField
	op := graphql.GetOperationContext(ctx)
	for _, f := range fields {
		for _, child := range graphql.CollectFields(op, f.Selections, types) {
			if child.Name == name {
				found = append(found, child)
			}
		}
	}
	return found
}

// here returns the field a resolver resolves, with its selections, to pass to asked.
func here(ctx context.Context) []graphql.CollectedField {
	return []graphql.CollectedField{graphql.GetFieldContext(ctx).Field}
}

// prefetchItems reads the products that fields (lists of order items) ask for, and what
// they ask for below.
func prefetchItems(ctx context.Context, items [][]store.OrderItem, fields []graphql.CollectedField) {
	product := asked(ctx, fields, orderItemTypes, "product")
	if len(product) == 0 {
		return
	}
	var ids []int64
	for _, list := range items {
		for _, it := range list {
			ids = append(ids, it.ProductID)
		}
	}
	if len(ids) == 0 {
		return
	}
	products, _ := loaders.Products(ctx, ids, loaders.Whole)
	prefetchProducts(ctx, products, product)
}

// prefetchProducts reads the merchants that fields (products) ask for.
func prefetchProducts(ctx context.Context, products []store.Product, fields []graphql.CollectedField) {
	if len(asked(ctx, fields, productTypes, "merchant")) == 0 {
		return
	}
	ids := make([]int64, 0, len(products))
	for _, p := range products {
		if p.ID != 0 { // not found: its own call reports it
			ids = append(ids, p.MerchantID)
		}
	}
	if len(ids) > 0 {
		loaders.Users(ctx, ids, loaders.Whole)
	}
}

// prefetchHistory caches orders, whose history fields ask for, when they ask for each
// event's order: it is the order itself, already read.
func prefetchHistory(ctx context.Context, orders []*store.Order, fields []graphql.CollectedField) {
	if len(asked(ctx, fields, eventTypes, "order")) > 0 {
		loaders.PrimeOrders(ctx, orders)
	}
}
