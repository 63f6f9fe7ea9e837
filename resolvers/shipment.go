package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

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

// stockMovements returns a page of each product's ledger: FORBIDDEN for the products the
// caller may not read the ledger of (anyone but their merchant and ADMINs).
func (r *productResolver) stockMovements(ctx context.Context, objs []*store.Product, page store.PageArgs) ([]*store.StockMovementPage, error) {
	v := viewer(ctx)
	var ids []int64
	var at []int
	errs := make([]error, len(objs))
	failed := false
	for i, p := range objs {
		if !store.CanEditProduct(v, p.MerchantID) {
			errs[i], failed = forbidden("only the product's merchant or an admin may read its stock ledger"), true
			continue
		}
		ids, at = append(ids, p.ID), append(at, i)
	}
	pages := make([]*store.StockMovementPage, len(objs))
	if len(ids) > 0 {
		lvl := level(ctx)
		found, ferrs := loaders.StockMovementsOf(ctx, ids, page, lvl)
		for j, i := range at {
			pages[i] = found[j]
			if ferrs != nil && ferrs[j] != nil {
				pages[i], errs[i], failed = nil, ferrs[j], true
			}
		}
		if lvl == loaders.Whole {
			prefetchMovements(ctx, ids, pages, here(ctx))
		}
	}
	if !failed {
		errs = nil
	}
	return pages, batchErrors(errs)
}

var (
	shipmentTypes     = []string{"Shipment", "Node"}
	movementPageTypes = []string{"StockMovementConnection"}
	movementEdgeTypes = []string{"StockMovementEdge"}
	movementTypes     = []string{"StockMovement"}
)

// prefetchShipments reads what fields (lists of shipments) ask for below them: the lines
// and their products (with their merchants), and who shipped them.
func prefetchShipments(ctx context.Context, shipments [][]store.Shipment, fields []graphql.CollectedField) {
	var ids, merchants []int64
	for _, list := range shipments {
		for _, s := range list {
			ids, merchants = append(ids, s.ID), append(merchants, s.MerchantID)
		}
	}
	if len(ids) == 0 {
		return
	}
	if len(asked(ctx, fields, shipmentTypes, "merchant")) > 0 {
		loaders.Users(ctx, merchants, loaders.Whole)
	}
	items := asked(ctx, fields, shipmentTypes, "items")
	if len(items) == 0 {
		return
	}
	lines, _ := loaders.ShipmentItemsOf(ctx, ids, loaders.Whole)
	asItems := make([][]store.OrderItem, len(lines))
	for i, l := range lines {
		for _, it := range l {
			asItems[i] = append(asItems[i], it.OrderItem)
		}
	}
	prefetchItems(ctx, asItems, items)
}

// prefetchMovements reads the counts and the orders that fields (ledger pages of the
// products ids) ask for.
func prefetchMovements(ctx context.Context, ids []int64, pages []*store.StockMovementPage, fields []graphql.CollectedField) {
	if len(asked(ctx, fields, movementPageTypes, "totalCount")) > 0 {
		loaders.StockMovementCounts(ctx, ids, loaders.Whole)
	}
	order := asked(ctx, asked(ctx, fields, movementPageTypes, "nodes"), movementTypes, "order")
	order = append(order, asked(ctx, asked(ctx, asked(ctx, fields, movementPageTypes, "edges"), movementEdgeTypes, "node"),
		movementTypes, "order")...)
	if len(order) == 0 {
		return
	}
	var orders []int64
	for _, p := range pages {
		if p == nil {
			continue
		}
		for _, m := range p.Movements {
			if m.OrderID != nil {
				orders = append(orders, *m.OrderID)
			}
		}
	}
	if len(orders) > 0 {
		loaders.Orders(ctx, orders, loaders.Whole)
	}
}
