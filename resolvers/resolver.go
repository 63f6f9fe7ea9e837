// Package resolvers implements the shop's GraphQL schema. Field resolvers ask a loader;
// mutations call one store method and turn its coded errors into userErrors.
package resolvers

import (
	"context"

	"github.com/shop/api/auth"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// Store is what the resolvers need of the store beyond the loaders' batch reads.
type Store interface {
	CreateUser(ctx context.Context, in store.NewUser) (store.User, error)
	Authenticate(ctx context.Context, email, password string) (store.User, error)
	ChangePassword(ctx context.Context, viewer store.Viewer, current, next string) (store.User, error)
	CreateProduct(ctx context.Context, v store.Viewer, in store.NewProduct) (store.Product, error)
	UpdateProduct(ctx context.Context, v store.Viewer, id int64, ch store.ProductChanges) (store.Product, error)
	FindProductsWith(ctx context.Context, f store.ProductFilter, sort store.ProductSort, page store.PageArgs, merchants bool) (store.ProductPageWith, error)
	CountProducts(ctx context.Context, f store.ProductFilter) (int, error)
	Place(ctx context.Context, v store.Viewer, in store.NewOrder) (store.Placed, error)
	CancelOrder(ctx context.Context, v store.Viewer, id int64) (store.Order, error)
	UpdateOrderStatus(ctx context.Context, v store.Viewer, id int64, status store.OrderStatus, note *string) (store.Order, error)
	FindOrders(ctx context.Context, f store.OrderFilter, page store.PageArgs) (*store.OrderPage, error)
	CountOrders(ctx context.Context, f store.OrderFilter) (int, error)
	Stock
}

var _ Store = (*store.Store)(nil)

// Logins throttles failed sign-ins.
type Logins interface {
	// ReserveLogin spends a sign-in attempt as email, from the caller's address, before
	// the password is checked: an error (RATE_LIMITED) when too many were spent; refund
	// gives it back once the sign-in succeeded.
	ReserveLogin(ctx context.Context, email string) (refund func(), err error)
}

// Resolver is the root of every resolver; it holds the service's dependencies.
type Resolver struct {
	Store  Store
	Tokens *auth.Tokens
	Events Events
	Logins Logins
	// Revocations ends the tokens a password change replaced.
	Revocations *auth.Revocations
	// Payments takes payments (payOrder, confirmTestPayment).
	Payments Payments
	// NewLoaders returns fresh loaders, for work outside a request's (subscriptions).
	NewLoaders func() *loaders.Loaders
}

func viewer(ctx context.Context) store.Viewer { return auth.ViewerFrom(ctx) }
