package loaders

import (
	"context"

	"github.com/shop/api/store"
)

// User returns the user with this ID, or NOT_FOUND.
func User(ctx context.Context, id int64) (store.User, error) {
	return For(ctx).users.Load(ctx, id)()
}

// Product returns the product with this ID, or NOT_FOUND.
func Product(ctx context.Context, id int64) (store.Product, error) {
	return For(ctx).products.Load(ctx, id)()
}

// Order returns the order with this ID, or NOT_FOUND. It does not check who may see it.
func Order(ctx context.Context, id int64) (store.Order, error) {
	return For(ctx).orders.Load(ctx, id)()
}

// Items returns an order's lines in placing order.
func Items(ctx context.Context, orderID int64) ([]store.OrderItem, error) {
	return For(ctx).items.Load(ctx, orderID)()
}

// History returns an order's status events, oldest first.
func History(ctx context.Context, orderID int64) ([]store.OrderStatusEvent, error) {
	return For(ctx).history.Load(ctx, orderID)()
}

// OrderMerchants returns the merchants with a product in an order, for visibility checks.
func OrderMerchants(ctx context.Context, orderID int64) ([]int64, error) {
	items, err := Items(ctx, orderID)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, it := range items {
		seen := false
		for _, id := range ids {
			seen = seen || id == it.MerchantID
		}
		if !seen {
			ids = append(ids, it.MerchantID)
		}
	}
	return ids, nil
}

// Forget drops cached products, so a mutation's payload shows the stock it changed.
func Forget(ctx context.Context, productIDs ...int64) {
	l := For(ctx)
	for _, id := range productIDs {
		l.products.Clear(ctx, id)
	}
}
