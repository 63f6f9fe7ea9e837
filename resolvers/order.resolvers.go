package resolvers

import (
	"context"

	"github.com/shop/api/graph"
	"github.com/shop/api/graph/model"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// PlaceOrder is the resolver for the placeOrder field.
func (r *mutationResolver) PlaceOrder(ctx context.Context, input model.PlaceOrderInput) (*model.OrderPayload, error) {
	in := store.NewOrder{Lines: make([]store.OrderLine, len(input.Items))}
	for i, it := range input.Items {
		in.Lines[i] = store.OrderLine{ProductID: localID(kindProduct, it.ProductID), Quantity: it.Quantity}
	}
	if input.IdempotencyKey != nil {
		in.IdempotencyKey = *input.IdempotencyKey
	}
	placed, err := r.Store.Place(ctx, viewer(ctx), in)
	if placed.Products != nil {
		loaders.PrimePlaced(ctx, placed)
	} else {
		forgetProducts(ctx, in.Lines)
	}
	return orderPayload(placed.Order, err)
}

// CancelOrder is the resolver for the cancelOrder field.
func (r *mutationResolver) CancelOrder(ctx context.Context, id string) (*model.OrderPayload, error) {
	o, err := r.Store.CancelOrder(ctx, viewer(ctx), localID(kindOrder, id))
	forgetOrderProducts(ctx, o)
	return orderPayload(o, err, "id")
}

// UpdateOrderStatus is the resolver for the updateOrderStatus field.
func (r *mutationResolver) UpdateOrderStatus(ctx context.Context, input model.UpdateOrderStatusInput) (*model.OrderPayload, error) {
	o, err := r.Store.UpdateOrderStatus(ctx, viewer(ctx), localID(kindOrder, input.ID), input.Status, input.Note)
	forgetOrderProducts(ctx, o)
	return orderPayload(o, err, "id")
}

// Customer is the batch resolver for the customer field.
func (r *orderResolver) Customer(ctx context.Context, objs []*store.Order) ([]*store.User, error) {
	lvl := level(ctx)
	customers, errs := loaders.Users(ctx, keys(objs, func(o *store.Order) int64 { return o.CustomerID }), lvl)
	if lvl == loaders.Whole {
		prefetchPages(ctx, customers)
	}
	return pointers(customers, errs)
}

// Items is the batch resolver for the items field.
func (r *orderResolver) Items(ctx context.Context, objs []*store.Order) ([][]store.OrderItem, error) {
	lvl := level(ctx)
	items, errs := loaders.ItemsOf(ctx, keys(objs, func(o *store.Order) int64 { return o.ID }), lvl)
	if lvl == loaders.Whole {
		prefetchItems(ctx, items, here(ctx))
	}
	return items, batchErrors(errs)
}

// History is the batch resolver for the history field.
func (r *orderResolver) History(ctx context.Context, objs []*store.Order) ([][]store.OrderStatusEvent, error) {
	lvl := level(ctx)
	events, errs := loaders.HistoryOf(ctx, keys(objs, func(o *store.Order) int64 { return o.ID }), lvl)
	if lvl == loaders.Whole {
		prefetchHistory(ctx, objs, here(ctx))
	}
	return events, batchErrors(errs)
}

// Edges is the resolver for the edges field.
func (r *orderConnectionResolver) Edges(ctx context.Context, obj *store.OrderPage) ([]model.OrderEdge, error) {
	edges := make([]model.OrderEdge, len(obj.Orders))
	for i := range obj.Orders {
		edges[i] = model.OrderEdge{Cursor: obj.Cursor(i), Node: &obj.Orders[i]}
	}
	return edges, nil
}

// Nodes is the resolver for the nodes field.
func (r *orderConnectionResolver) Nodes(ctx context.Context, obj *store.OrderPage) ([]store.Order, error) {
	return obj.Orders, nil
}

// PageInfo is the resolver for the pageInfo field.
func (r *orderConnectionResolver) PageInfo(ctx context.Context, obj *store.OrderPage) (*model.PageInfo, error) {
	return pageInfo(obj.PageInfo, obj.Cursors), nil
}

// TotalCount is the resolver for the totalCount field.
func (r *orderConnectionResolver) TotalCount(ctx context.Context, obj *store.OrderPage) (int, error) {
	return loaders.OrderCount(ctx, obj.Filter, level(ctx))
}

// Product is the batch resolver for the product field.
func (r *orderItemResolver) Product(ctx context.Context, objs []*store.OrderItem) ([]*store.Product, error) {
	lvl := level(ctx)
	products, errs := loaders.Products(ctx, keys(objs, func(i *store.OrderItem) int64 { return i.ProductID }), lvl)
	if lvl == loaders.Whole {
		prefetchProducts(ctx, products, here(ctx))
	}
	return pointers(products, errs)
}

// Order is the batch resolver for the order field.
func (r *orderStatusEventResolver) Order(ctx context.Context, objs []*store.OrderStatusEvent) ([]*store.Order, error) {
	return pointers(loaders.Orders(ctx, keys(objs, func(e *store.OrderStatusEvent) int64 { return e.OrderID }), level(ctx)))
}

// Order is the resolver for the order field.
func (r *queryResolver) Order(ctx context.Context, id string) (*store.Order, error) {
	o, err := visibleOrder(ctx, localID(kindOrder, id))
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// Orders is the resolver for the orders field.
func (r *queryResolver) Orders(ctx context.Context, first *int, after *string, status *store.OrderStatus) (*store.OrderPage, error) {
	v := viewer(ctx)
	return r.Store.FindOrders(ctx, store.OrderFilter{VisibleTo: &v, Status: status}, pageArgs(first, after))
}

// OrderStatusChanged is the resolver for the orderStatusChanged field.
func (r *subscriptionResolver) OrderStatusChanged(ctx context.Context, orderID string, after *string) (<-chan *store.OrderStatusEvent, error) {
	return r.orderStatusChanged(ctx, orderID, after)
}

// MyOrderEvents is the resolver for the myOrderEvents field.
func (r *subscriptionResolver) MyOrderEvents(ctx context.Context) (<-chan *store.OrderStatusEvent, error) {
	return r.myOrderEvents(ctx)
}

// Order returns graph.OrderResolver implementation.
func (r *Resolver) Order() graph.OrderResolver { return &orderResolver{r} }

// OrderConnection returns graph.OrderConnectionResolver implementation.
func (r *Resolver) OrderConnection() graph.OrderConnectionResolver {
	return &orderConnectionResolver{r}
}

// OrderItem returns graph.OrderItemResolver implementation.
func (r *Resolver) OrderItem() graph.OrderItemResolver { return &orderItemResolver{r} }

// OrderStatusEvent returns graph.OrderStatusEventResolver implementation.
func (r *Resolver) OrderStatusEvent() graph.OrderStatusEventResolver {
	return &orderStatusEventResolver{r}
}

type (
	orderResolver            struct{ *Resolver }
	orderConnectionResolver  struct{ *Resolver }
	orderItemResolver        struct{ *Resolver }
	orderStatusEventResolver struct{ *Resolver }
)
