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
// It reads only what those calls would read, which still check visibility as before: of the
// relations prefetched here only User.orders has a rule, and its pages are read only where
// the rule lets the caller see them.

// The types a selection's fragments may name for an object of each type, as the generated
// executor passes them to graphql.CollectFields (which then answers from its cache).
var (
	orderItemTypes   = []string{"OrderItem"}
	productTypes     = []string{"Product", "Node"}
	eventTypes       = []string{"OrderStatusEvent"}
	userTypes        = []string{"User", "Node"}
	orderPageTypes   = []string{"OrderConnection"}
	orderEdgeTypes   = []string{"OrderEdge"}
	orderTypes       = []string{"Order", "Node"}
	productPageTypes = []string{"ProductConnection"}
	productEdgeTypes = []string{"ProductEdge"}
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

// pageNodes returns the nodes fields (pages, of pageTypes, whose edges are of edgeTypes) ask
// for, through nodes and through edges.
func pageNodes(ctx context.Context, fields []graphql.CollectedField, pageTypes, edgeTypes []string) []graphql.CollectedField {
	nodes := asked(ctx, fields, pageTypes, "nodes")
	return append(nodes, asked(ctx, asked(ctx, fields, pageTypes, "edges"), edgeTypes, "node")...)
}

// orderChildren says which children of their orders fields (pages of orders) ask for, of
// those a page's read can bring along (store.FindOrdersOfCustomersWith): their items and
// history, the items' products and the products' merchants.
func orderChildren(ctx context.Context, fields []graphql.CollectedField) store.OrderChildren {
	orders := pageNodes(ctx, fields, orderPageTypes, orderEdgeTypes)
	if len(orders) == 0 {
		return store.OrderChildren{}
	}
	items := asked(ctx, orders, orderTypes, "items")
	products := asked(ctx, items, orderItemTypes, "product")
	return store.OrderChildren{
		Items:     len(items) > 0,
		History:   len(asked(ctx, orders, orderTypes, "history")) > 0,
		Products:  len(products) > 0,
		Merchants: len(products) > 0 && len(asked(ctx, products, productTypes, "merchant")) > 0,
	}
}

// prefetchPages reads the pages of products and of orders that the field being resolved (of
// type User: Order.customer, Product.merchant) asks for of users, and their totalCount when
// it asks: gqlgen resolves them user by user. Pages of orders are read only for the users
// whose orders the caller may see: User.orders answers FORBIDDEN for the others, reading
// nothing.
func prefetchPages(ctx context.Context, users []store.User) {
	fc := graphql.GetFieldContext(ctx)
	fields := []graphql.CollectedField{fc.Field}
	products, orders := asked(ctx, fields, userTypes, "products"), asked(ctx, fields, userTypes, "orders")
	if len(products) == 0 && len(orders) == 0 {
		return
	}
	var all, visible []int64
	v := viewer(ctx)
	for _, u := range users {
		if u.ID == 0 { // not found: its own call reports it
			continue
		}
		all = append(all, u.ID)
		if store.CanSeePrivate(v, u.ID) {
			visible = append(visible, u.ID)
		}
	}
	// fc.Child parses a field's arguments as gqlgen does when it resolves the field, and
	// reports their errors: the field reports them itself, so none may reach the response
	// from here.
	quiet := graphql.WithFreshResponseContext(ctx)
	for _, f := range products {
		args, err := fc.Child(quiet, f)
		if err != nil || len(all) == 0 {
			continue
		}
		first, _ := args.Args["first"].(*int)
		after, _ := args.Args["after"].(*string)
		loaders.MerchantProductsOf(ctx, all, pageArgs(first, after), loaders.Whole)
		if len(asked(ctx, []graphql.CollectedField{f}, productPageTypes, "totalCount")) > 0 {
			loaders.MerchantProductCounts(ctx, all, loaders.Whole)
		}
	}
	for _, f := range orders {
		args, err := fc.Child(quiet, f)
		if err != nil || len(visible) == 0 {
			continue
		}
		first, _ := args.Args["first"].(*int)
		after, _ := args.Args["after"].(*string)
		status, _ := args.Args["status"].(*store.OrderStatus)
		loaders.CustomerOrdersAhead(ctx, visible, status, pageArgs(first, after), orderChildren(ctx, []graphql.CollectedField{f}))
		if len(asked(ctx, []graphql.CollectedField{f}, orderPageTypes, "totalCount")) > 0 {
			loaders.CustomerOrderCounts(ctx, visible, status, loaders.Whole)
		}
	}
}
