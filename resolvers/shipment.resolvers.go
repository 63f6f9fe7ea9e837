package resolvers

import (
	"context"

	"github.com/shop/api/graph"
	"github.com/shop/api/graph/model"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// ShipOrder is the resolver for the shipOrder field.
func (r *mutationResolver) ShipOrder(ctx context.Context, input model.ShipOrderInput) (*model.ShipmentPayload, error) {
	s, err := r.Store.ShipOrder(ctx, viewer(ctx), store.NewShipment{OrderID: localID(kindOrder, input.OrderID),
		Carrier: input.Carrier, TrackingNumber: input.TrackingNumber, TrackingURL: input.TrackingURL})
	return shipmentPayload(s, err, "orderId")
}

// MarkShipmentDelivered is the resolver for the markShipmentDelivered field.
func (r *mutationResolver) MarkShipmentDelivered(ctx context.Context, id string) (*model.ShipmentPayload, error) {
	s, err := r.Store.MarkShipmentDelivered(ctx, viewer(ctx), localID(kindShipment, id))
	return shipmentPayload(s, err, "id")
}

// AdjustStock is the resolver for the adjustStock field.
func (r *mutationResolver) AdjustStock(ctx context.Context, input model.AdjustStockInput) (*model.ProductPayload, error) {
	id := localID(kindProduct, input.ProductID)
	p, err := r.Store.AdjustStock(ctx, viewer(ctx), store.StockChange{ProductID: id, Delta: input.Delta, Reason: input.Reason})
	loaders.Forget(ctx, id)
	return productPayload(p, err, "productId")
}

// Shipments is the batch resolver for the shipments field.
func (r *orderResolver) Shipments(ctx context.Context, objs []*store.Order) ([][]store.Shipment, error) {
	lvl := level(ctx)
	shipments, errs := loaders.ShipmentsOf(ctx, keys(objs, func(o *store.Order) int64 { return o.ID }), lvl)
	if lvl == loaders.Whole {
		prefetchShipments(ctx, shipments, here(ctx))
	}
	return shipments, batchErrors(errs)
}

// StockMovements is the batch resolver for the stockMovements field.
func (r *productResolver) StockMovements(ctx context.Context, objs []*store.Product, first *int, after *string) ([]*store.StockMovementPage, error) {
	return r.stockMovements(ctx, objs, pageArgs(first, after))
}

// Order is the batch resolver for the order field.
func (r *shipmentResolver) Order(ctx context.Context, objs []*store.Shipment) ([]*store.Order, error) {
	return pointers(loaders.Orders(ctx, keys(objs, func(s *store.Shipment) int64 { return s.OrderID }), level(ctx)))
}

// Merchant is the batch resolver for the merchant field.
func (r *shipmentResolver) Merchant(ctx context.Context, objs []*store.Shipment) ([]*store.User, error) {
	return pointers(loaders.Users(ctx, keys(objs, func(s *store.Shipment) int64 { return s.MerchantID }), level(ctx)))
}

// Items is the batch resolver for the items field.
func (r *shipmentResolver) Items(ctx context.Context, objs []*store.Shipment) ([][]store.OrderItem, error) {
	lines, errs := loaders.ShipmentItemsOf(ctx, keys(objs, func(s *store.Shipment) int64 { return s.ID }), level(ctx))
	items := make([][]store.OrderItem, len(lines))
	for i, l := range lines {
		items[i] = make([]store.OrderItem, len(l))
		for j, it := range l {
			items[i][j] = it.OrderItem
		}
	}
	return items, batchErrors(errs)
}

// Order is the batch resolver for the order field.
func (r *stockMovementResolver) Order(ctx context.Context, objs []*store.StockMovement) ([]*store.Order, error) {
	var ids []int64
	for _, m := range objs {
		if m.OrderID != nil {
			ids = append(ids, *m.OrderID)
		}
	}
	orders, errs := loaders.Orders(ctx, ids, level(ctx))
	out := make([]*store.Order, len(objs))
	var outErrs []error
	j := 0
	for i, m := range objs {
		if m.OrderID == nil {
			continue
		}
		out[i] = &orders[j]
		if errs != nil && errs[j] != nil {
			if outErrs == nil {
				outErrs = make([]error, len(objs))
			}
			out[i], outErrs[i] = nil, errs[j]
		}
		j++
	}
	return out, batchErrors(outErrs)
}

// Edges is the resolver for the edges field.
func (r *stockMovementConnectionResolver) Edges(ctx context.Context, obj *store.StockMovementPage) ([]model.StockMovementEdge, error) {
	edges := make([]model.StockMovementEdge, len(obj.Movements))
	for i := range obj.Movements {
		edges[i] = model.StockMovementEdge{Cursor: obj.Cursor(i), Node: &obj.Movements[i]}
	}
	return edges, nil
}

// Nodes is the resolver for the nodes field.
func (r *stockMovementConnectionResolver) Nodes(ctx context.Context, obj *store.StockMovementPage) ([]store.StockMovement, error) {
	return obj.Movements, nil
}

// PageInfo is the resolver for the pageInfo field.
func (r *stockMovementConnectionResolver) PageInfo(ctx context.Context, obj *store.StockMovementPage) (*model.PageInfo, error) {
	return pageInfo(obj.PageInfo, obj.Cursors), nil
}

// TotalCount is the resolver for the totalCount field.
func (r *stockMovementConnectionResolver) TotalCount(ctx context.Context, obj *store.StockMovementPage) (int, error) {
	return loaders.StockMovementCount(ctx, obj.ProductID, level(ctx))
}

// LowStock is the resolver for the lowStock field.
func (r *subscriptionResolver) LowStock(ctx context.Context) (<-chan *store.Product, error) {
	return r.lowStock(ctx)
}

// Shipment returns graph.ShipmentResolver implementation.
func (r *Resolver) Shipment() graph.ShipmentResolver { return &shipmentResolver{r} }

// StockMovement returns graph.StockMovementResolver implementation.
func (r *Resolver) StockMovement() graph.StockMovementResolver { return &stockMovementResolver{r} }

// StockMovementConnection returns graph.StockMovementConnectionResolver implementation.
func (r *Resolver) StockMovementConnection() graph.StockMovementConnectionResolver {
	return &stockMovementConnectionResolver{r}
}

type (
	shipmentResolver                struct{ *Resolver }
	stockMovementResolver           struct{ *Resolver }
	stockMovementConnectionResolver struct{ *Resolver }
)
