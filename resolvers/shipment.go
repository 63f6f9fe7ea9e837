package resolvers

import (
	"context"

	"github.com/shop/api/graph/model"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

const kindShipment = store.KindShipment

// Stock is what the shipment and ledger mutations need of the store.
type Stock interface {
	ShipOrder(ctx context.Context, v store.Viewer, in store.NewShipment) (store.Shipment, error)
	MarkShipmentDelivered(ctx context.Context, v store.Viewer, id int64) (store.Shipment, error)
	AdjustStock(ctx context.Context, v store.Viewer, ch store.StockChange) (store.Product, error)
}

var _ Stock = (*store.Store)(nil)

// StockAlerts streams low-stock alerts; the live broker implements it beside Events.
type StockAlerts interface {
	// LowStock streams the products whose stock falls to their threshold that v may hear
	// of (their MERCHANT's, every one for an ADMIN).
	LowStock(ctx context.Context, v store.Viewer) (<-chan *store.Product, error)
}

// shipment returns shipment id when the caller may see its order (node(id:)): NOT_FOUND
// otherwise, like an unknown ID.
func (r *queryResolver) shipment(ctx context.Context, id string) (*store.Shipment, error) {
	if viewer(ctx).Anonymous() {
		return nil, unauthenticated()
	}
	s, err := loaders.Shipment(ctx, localID(kindShipment, id), level(ctx))
	if err != nil {
		return nil, err
	}
	if _, err := visibleOrder(ctx, s.OrderID); err != nil {
		return nil, err
	}
	return &s, nil
}

// lowStock streams low-stock alerts to MERCHANTs (their products) and ADMINs; CUSTOMERs get
// FORBIDDEN, anonymous callers UNAUTHENTICATED.
func (r *subscriptionResolver) lowStock(ctx context.Context) (<-chan *store.Product, error) {
	v := viewer(ctx)
	switch {
	case v.Anonymous():
		return nil, unauthenticated()
	case v.Role != store.RoleMerchant && v.Role != store.RoleAdmin:
		return nil, forbidden("only merchants and admins hear of low stock")
	}
	alerts, ok := r.Events.(StockAlerts)
	if !ok {
		return nil, &store.Error{Code: store.CodeInternal, Message: "low-stock alerts are not wired"}
	}
	return alerts.LowStock(ctx, v)
}

// shipmentPayload returns the payload of a shipment mutation: the shipment, or the
// userErrors of err.
func shipmentPayload(s store.Shipment, err error, notFoundField ...string) (*model.ShipmentPayload, error) {
	if err != nil {
		ue, err := userErrors(err, notFoundField...)
		if err != nil {
			return nil, err
		}
		return &model.ShipmentPayload{UserErrors: ue}, nil
	}
	return &model.ShipmentPayload{Shipment: &s, UserErrors: []model.UserError{}}, nil
}
