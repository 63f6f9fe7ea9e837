package loaders

import (
	"context"

	"github.com/shop/api/store"
)

// stockLoaders are the loaders of shipments and of the stock ledger.
type stockLoaders struct {
	shipments      lazy[int64, store.Shipment]
	orderShipments lazy[int64, []store.Shipment]
	shipmentItems  lazy[int64, []store.ShipmentItem]
	movements      lazy[childKey, *store.StockMovementPage]
	movementN      lazy[childKey, int]
}

// stock returns the shipments' and ledger's loaders, built on first use.
func (l *Loaders) stock() *stockLoaders {
	l.stockOnce.Do(func() {
		s, cfg, k := l.store, l.cfg, &stockLoaders{}
		lazily(&k.shipments, l, cfg, "shipment", byID(s.FindShipmentsByIDs, func(sh store.Shipment) int64 { return sh.ID }))
		lazily(&k.orderShipments, l, cfg, "order_shipments", groupedBy(s.FindShipmentsByOrderIDs, func(sh store.Shipment) int64 { return sh.OrderID }))
		lazily(&k.shipmentItems, l, cfg, "shipment_items", groupedBy(s.FindItemsByShipmentIDs, func(i store.ShipmentItem) int64 { return i.ShipmentID }))
		lazily(&k.movements, l, cfg, "stock_movements", pagesOf(func(ctx context.Context, ids []int64, k childKey) (map[int64]*store.StockMovementPage, error) {
			return s.FindStockMovementsOfProducts(ctx, ids, k.page())
		}))
		lazily(&k.movementN, l, cfg, "stock_movement_count", countsOf(func(ctx context.Context, ids []int64, _ childKey) (map[int64]int, error) {
			return s.CountStockMovementsOfProducts(ctx, ids)
		}))
		l.stockL = k
	})
	return l.stockL
}

// Shipment returns the shipment with this ID, or NOT_FOUND; level as for Users. It does not
// check who may see it.
func Shipment(ctx context.Context, id int64, level Level) (store.Shipment, error) {
	return one(ctx, &For(ctx).stock().shipments, id, level)
}

// ShipmentsOf returns the shipments of each of these orders, oldest first, as Users does.
func ShipmentsOf(ctx context.Context, orderIDs []int64, level Level) ([][]store.Shipment, []error) {
	return many(ctx, &For(ctx).stock().orderShipments, orderIDs, level)
}

// ShipmentItemsOf returns the order lines of each of these shipments, as Users does.
func ShipmentItemsOf(ctx context.Context, shipmentIDs []int64, level Level) ([][]store.ShipmentItem, []error) {
	return many(ctx, &For(ctx).stock().shipmentItems, shipmentIDs, level)
}

// StockMovements returns a page of a product's ledger, newest first. Pages of many products
// asked for with the same arguments are read in one statement (level Partial). A bad page
// size or cursor is INVALID. It does not check who may see them.
func StockMovements(ctx context.Context, productID int64, page store.PageArgs, level Level) (*store.StockMovementPage, error) {
	return one(ctx, &For(ctx).stock().movements, childKey{parent: productID, first: page.First, after: page.After}, level)
}

// StockMovementCount returns how many movements a product's ledger holds; the counts of the
// products of a level are read in one statement (level Partial).
func StockMovementCount(ctx context.Context, productID int64, level Level) (int, error) {
	return one(ctx, &For(ctx).stock().movementN, childKey{parent: productID}, level)
}

// StockMovementsOf returns the page of each of these products' ledgers, as StockMovements
// does for one.
func StockMovementsOf(ctx context.Context, productIDs []int64, page store.PageArgs, level Level) ([]*store.StockMovementPage, []error) {
	ks := make([]childKey, len(productIDs))
	for i, id := range productIDs {
		ks[i] = childKey{parent: id, first: page.First, after: page.After}
	}
	return many(ctx, &For(ctx).stock().movements, ks, level)
}

// StockMovementCounts returns how many movements each of these products' ledgers holds.
func StockMovementCounts(ctx context.Context, productIDs []int64, level Level) ([]int, []error) {
	ks := make([]childKey, len(productIDs))
	for i, id := range productIDs {
		ks[i] = childKey{parent: id}
	}
	return many(ctx, &For(ctx).stock().movementN, ks, level)
}
