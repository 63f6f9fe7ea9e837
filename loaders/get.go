package loaders

import (
	"context"
	"slices"

	"github.com/shop/api/store"
)

// User returns the user with this ID, or NOT_FOUND; level as for Users.
func User(ctx context.Context, id int64, level Level) (store.User, error) {
	return one(ctx, &For(ctx).users, id, level)
}

// Product returns the product with this ID, or NOT_FOUND; level as for Users.
func Product(ctx context.Context, id int64, level Level) (store.Product, error) {
	return one(ctx, &For(ctx).products, id, level)
}

// Order returns the order with this ID, or NOT_FOUND; level as for Users. It does not check
// who may see it.
func Order(ctx context.Context, id int64, level Level) (store.Order, error) {
	return one(ctx, &For(ctx).orders, id, level)
}

// Items returns an order's lines in placing order; level as for Users.
func Items(ctx context.Context, orderID int64, level Level) ([]store.OrderItem, error) {
	return one(ctx, &For(ctx).items, orderID, level)
}

// History returns an order's status events, oldest first; level as for Users.
func History(ctx context.Context, orderID int64, level Level) ([]store.OrderStatusEvent, error) {
	return one(ctx, &For(ctx).history, orderID, level)
}

// Users returns the users with these IDs in order; errs is nil unless one is missing
// (errs[i] NOT_FOUND). For batch resolvers: see Level.
func Users(ctx context.Context, ids []int64, level Level) ([]store.User, []error) {
	return many(ctx, &For(ctx).users, ids, level)
}

// Products returns the products with these IDs in order, as Users does.
func Products(ctx context.Context, ids []int64, level Level) ([]store.Product, []error) {
	return many(ctx, &For(ctx).products, ids, level)
}

// Orders returns the orders with these IDs in order, as Users does. It does not check who may
// see them.
func Orders(ctx context.Context, ids []int64, level Level) ([]store.Order, []error) {
	return many(ctx, &For(ctx).orders, ids, level)
}

// ItemsOf returns the lines of each of these orders, as Items does for one.
func ItemsOf(ctx context.Context, orderIDs []int64, level Level) ([][]store.OrderItem, []error) {
	return many(ctx, &For(ctx).items, orderIDs, level)
}

// HistoryOf returns the status events of each of these orders, as History does for one.
func HistoryOf(ctx context.Context, orderIDs []int64, level Level) ([][]store.OrderStatusEvent, []error) {
	return many(ctx, &For(ctx).history, orderIDs, level)
}

// OrderMerchants returns the merchants with a product in an order, for visibility checks,
// reading the order's items as level says.
func OrderMerchants(ctx context.Context, orderID int64, level Level) ([]int64, error) {
	items, err := Items(ctx, orderID, level)
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

// PrimeOrders caches orders the operation already holds, so that loading them reads nothing.
func PrimeOrders(ctx context.Context, orders []*store.Order) {
	z := &For(ctx).orders
	for _, o := range orders {
		z.put(o.ID, *o)
	}
}

// PrimeUsers caches users read along with their parents (a page's merchants), as the batch
// of the user loader would, so that loading them reads nothing.
func PrimeUsers(ctx context.Context, users []store.User) {
	l := For(ctx)
	primeByID(l, &l.users, "user", users, func(u store.User) int64 { return u.ID })
}

// PrimePlaced caches what placing an order wrote (its items, its products with their new
// stock), so that the order's payload reads none of it back.
func PrimePlaced(ctx context.Context, p store.Placed) {
	l := For(ctx)
	if p.Items != nil {
		l.items.get().Clear(ctx, p.Order.ID).Prime(ctx, p.Order.ID, p.Items)
	}
	products := l.products.get()
	for _, pr := range p.Products {
		products.Clear(ctx, pr.ID).Prime(ctx, pr.ID, pr)
	}
}

// Forget drops cached products, so a mutation's payload shows the stock it changed.
func Forget(ctx context.Context, productIDs ...int64) {
	products := For(ctx).products.get()
	for _, id := range productIDs {
		products.Clear(ctx, id)
	}
}

// CustomerOrders returns a page of the orders a customer placed, newest first, only those in
// status when it is set. Pages of many customers asked for with the same arguments are read
// in one statement (level Partial: the customer is one of several parents of its level). A
// bad page size or cursor is INVALID. It does not check who may see them.
func CustomerOrders(ctx context.Context, customerID int64, status *store.OrderStatus, page store.PageArgs, level Level) (*store.OrderPage, error) {
	return one(ctx, &For(ctx).customerOrders, orderPage(customerID, status, page), level)
}

// CustomerOrdersOf returns the page of each of these customers, as CustomerOrders does for one.
func CustomerOrdersOf(ctx context.Context, customerIDs []int64, status *store.OrderStatus, page store.PageArgs, level Level) ([]*store.OrderPage, []error) {
	ks := make([]childKey, len(customerIDs))
	for i, id := range customerIDs {
		ks[i] = orderPage(id, status, page)
	}
	return many(ctx, &For(ctx).customerOrders, ks, level)
}

// CustomerOrdersAhead returns the page of each of these customers, as CustomerOrdersOf does
// for a Whole level, and reads with the pages not yet cached the children with asks for of
// their orders, where the store can read them in the same round trip (store.
// FindOrdersOfCustomersWith): Items and History then find them cached. It does not check who
// may see them.
func CustomerOrdersAhead(ctx context.Context, customerIDs []int64, status *store.OrderStatus, page store.PageArgs,
	with store.OrderChildren) ([]*store.OrderPage, []error) {
	l := For(ctx)
	z := &l.customerOrders
	z.get()
	var missing []int64
	for _, id := range customerIDs {
		if !z.cache.has(orderPage(id, status, page)) && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 && with != (store.OrderChildren{}) {
		l.count("customer_orders", len(missing))
		read, err := l.store.FindOrdersOfCustomersWith(ctx, missing, status, page, with)
		if err != nil {
			// Each key reports it, as a batch of the loader would.
			pages, errs := make([]*store.OrderPage, len(customerIDs)), make([]error, len(customerIDs))
			for i := range errs {
				errs[i] = err
			}
			return pages, errs
		}
		var orders []int64
		for _, id := range missing {
			p := read.Pages[id]
			z.put(orderPage(id, status, page), p)
			for _, o := range p.Orders {
				orders = append(orders, o.ID)
			}
		}
		if read.Items != nil {
			primeChildren(l, &l.items, "items", orders, read.Items)
		}
		if read.History != nil {
			primeChildren(l, &l.history, "history", orders, read.History)
		}
		if read.Products != nil {
			primeByID(l, &l.products, "product", read.Products, func(p store.Product) int64 { return p.ID })
		}
		if read.Merchants != nil {
			primeByID(l, &l.users, "user", read.Merchants, func(u store.User) int64 { return u.ID })
		}
	}
	return CustomerOrdersOf(ctx, customerIDs, status, page, Whole)
}

// primeChildren caches the children of orders read ahead, an empty list for an order without
// any, as the batch of loader name.
func primeChildren[V any](l *Loaders, z *lazy[int64, []V], name string, orders []int64, children map[int64][]V) {
	if len(orders) == 0 {
		return
	}
	l.count(name, len(orders))
	for _, id := range orders {
		z.put(id, children[id])
	}
}

// primeByID caches values read ahead, as the batch of loader name.
func primeByID[V any](l *Loaders, z *lazy[int64, V], name string, vals []V, id func(V) int64) {
	if len(vals) == 0 {
		return
	}
	l.count(name, len(vals))
	z.get()
	z.cache.prime(vals, id)
}

// MerchantProducts returns a page of a merchant's products, newest first. Pages of many
// merchants asked for with the same arguments are read in one statement (level Partial). A
// bad page size or cursor is INVALID.
func MerchantProducts(ctx context.Context, merchantID int64, page store.PageArgs, level Level) (*store.ProductPage, error) {
	return one(ctx, &For(ctx).merchantProducts, productPage(merchantID, page), level)
}

// MerchantProductsOf returns the page of each of these merchants, as MerchantProducts does
// for one.
func MerchantProductsOf(ctx context.Context, merchantIDs []int64, page store.PageArgs, level Level) ([]*store.ProductPage, []error) {
	ks := make([]childKey, len(merchantIDs))
	for i, id := range merchantIDs {
		ks[i] = productPage(id, page)
	}
	return many(ctx, &For(ctx).merchantProducts, ks, level)
}

// OrderCount returns how many orders match f. When f selects one customer's orders (the
// totalCount of User.orders) the count is read as level says (Partial: the counts of every
// customer of the level in one statement); any other filter is a statement of its own.
func OrderCount(ctx context.Context, f store.OrderFilter, level Level) (int, error) {
	l := For(ctx)
	if f.CustomerID == nil || f.VisibleTo != nil {
		return l.store.CountOrders(ctx, f)
	}
	return one(ctx, &l.customerOrderN, orderCount(*f.CustomerID, f.Status), level)
}

// CustomerOrderCounts returns how many orders each of these customers placed (only those in
// status when it is set), as OrderCount does for one customer's.
func CustomerOrderCounts(ctx context.Context, customerIDs []int64, status *store.OrderStatus, level Level) ([]int, []error) {
	ks := make([]childKey, len(customerIDs))
	for i, id := range customerIDs {
		ks[i] = orderCount(id, status)
	}
	return many(ctx, &For(ctx).customerOrderN, ks, level)
}

// ProductCount returns how many products match f. When f selects one merchant's products
// and nothing else (the totalCount of User.products) the count is read as level says, as
// OrderCount does; any other filter is a statement of its own.
func ProductCount(ctx context.Context, f store.ProductFilter, level Level) (int, error) {
	l := For(ctx)
	if f.MerchantID == nil || f.Search != nil || f.MinPrice != nil || f.MaxPrice != nil || f.InStock != nil {
		return l.store.CountProducts(ctx, f)
	}
	return one(ctx, &l.merchantProductN, childKey{parent: *f.MerchantID}, level)
}

// MerchantProductCounts returns how many products each of these merchants sells, as
// ProductCount does for one merchant's.
func MerchantProductCounts(ctx context.Context, merchantIDs []int64, level Level) ([]int, []error) {
	ks := make([]childKey, len(merchantIDs))
	for i, id := range merchantIDs {
		ks[i] = childKey{parent: id}
	}
	return many(ctx, &For(ctx).merchantProductN, ks, level)
}

// Payment returns the payment with this ID, or NOT_FOUND; level as for Users. It does not
// check who may see it.
func Payment(ctx context.Context, id int64, level Level) (store.Payment, error) {
	return one(ctx, &For(ctx).payments, id, level)
}

// PaymentsOf returns the payments of each of these orders, oldest first; level as for Users.
func PaymentsOf(ctx context.Context, orderIDs []int64, level Level) ([][]store.Payment, []error) {
	return many(ctx, &For(ctx).orderPayments, orderIDs, level)
}
