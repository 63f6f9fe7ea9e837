package resolvers

import (
	"context"

	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// visibleOrder returns order id when the caller may see it: UNAUTHENTICATED for anonymous
// callers, NOT_FOUND when it does not exist or belongs to someone else.
func visibleOrder(ctx context.Context, id int64) (store.Order, error) {
	v := viewer(ctx)
	if v.Anonymous() {
		return store.Order{}, unauthenticated()
	}
	lvl := level(ctx)
	o, err := loaders.Order(ctx, id, lvl)
	if err != nil {
		return store.Order{}, err
	}
	var merchants []int64
	if v.Role == store.RoleMerchant && v.UserID != o.CustomerID {
		// Only a merchant's access depends on the order's merchants: its customer and admins
		// see it without them (a statement fewer to set up each watching phone).
		if merchants, err = loaders.OrderMerchants(ctx, id, lvl); err != nil {
			return store.Order{}, err
		}
	}
	if !store.CanSeeOrder(v, o.CustomerID, merchants) {
		return store.Order{}, notFound()
	}
	return o, nil
}

// forgetProducts drops the operation's cached copies of the products an order named, so its
// payload shows their new stock.
func forgetProducts(ctx context.Context, lines []store.OrderLine) {
	for _, l := range lines {
		loaders.Forget(ctx, l.ProductID)
	}
}

// forgetOrderProducts does the same for an order whose status changed (cancelling restocks).
func forgetOrderProducts(ctx context.Context, o store.Order) {
	if o.ID == 0 {
		return
	}
	items, err := loaders.Items(ctx, o.ID, level(ctx))
	if err != nil {
		return
	}
	for _, it := range items {
		loaders.Forget(ctx, it.ProductID)
	}
}
