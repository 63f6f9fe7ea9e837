package loaders

import (
	"context"

	"github.com/shop/api/store"
)

// Shipment returns the shipment with this ID, or NOT_FOUND; level as for Users. It does not
// check who may see it.
func Shipment(ctx context.Context, id int64, level Level) (store.Shipment, error) {
	return one(ctx, &For(ctx).shipments, id, level)
}

// ShipmentsOf returns the shipments of each of these orders, oldest first, as Users does.
func ShipmentsOf(ctx context.Context, orderIDs []int64, level Level) ([][]store.Shipment, []error) {
	return many(ctx, &For(ctx).orderShipments, orderIDs, level)
}

// ShipmentItemsOf returns the order lines of each of these shipments, as Users does.
func ShipmentItemsOf(ctx context.Context, shipmentIDs []int64, level Level) ([][]store.ShipmentItem, []error) {
	return many(ctx, &For(ctx).shipmentItems, shipmentIDs, level)
}

// StockMovements returns a page of a product's ledger, newest first. Pages of many products
// asked for with the same arguments are read in one statement (level Partial). A bad page
// size or cursor is INVALID. It does not check who may see them.
func StockMovements(ctx context.Context, productID int64, page store.PageArgs, level Level) (*store.StockMovementPage, error) {
	return one(ctx, &For(ctx).movements, childKey{parent: productID, first: page.First, after: page.After}, level)
}

// StockMovementCount returns how many movements a product's ledger holds; the counts of the
// products of a level are read in one statement (level Partial).
func StockMovementCount(ctx context.Context, productID int64, level Level) (int, error) {
	return one(ctx, &For(ctx).movementN, childKey{parent: productID}, level)
}

// StockMovementsOf returns the page of each of these products' ledgers, as StockMovements
// does for one.
func StockMovementsOf(ctx context.Context, productIDs []int64, page store.PageArgs, level Level) ([]*store.StockMovementPage, []error) {
	ks := make([]childKey, len(productIDs))
	for i, id := range productIDs {
		ks[i] = childKey{parent: id, first: page.First, after: page.After}
	}
	return many(ctx, &For(ctx).movements, ks, level)
}

// StockMovementCounts returns how many movements each of these products' ledgers holds.
func StockMovementCounts(ctx context.Context, productIDs []int64, level Level) ([]int, []error) {
	ks := make([]childKey, len(productIDs))
	for i, id := range productIDs {
		ks[i] = childKey{parent: id}
	}
	return many(ctx, &For(ctx).movementN, ks, level)
}
