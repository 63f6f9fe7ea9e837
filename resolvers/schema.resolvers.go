package resolvers

import (
	"context"

	"github.com/shop/api/graph"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// Node is the resolver for the node field.
func (r *queryResolver) Node(ctx context.Context, id string) (store.Node, error) {
	kind, _, _ := parseGlobalID(id)
	switch kind {
	case kindUser:
		return r.Query().User(ctx, id)
	case kindProduct:
		return r.Query().Product(ctx, id)
	case kindOrder:
		return r.Query().Order(ctx, id)
	case kindShipment:
		return r.shipment(ctx, id)
	case kindPayment:
		p, err := visiblePayment(ctx, localID(kindPayment, id))
		if err != nil {
			return nil, err
		}
		return &p, nil
	}
	return nil, notFound()
}

// Me is the resolver for the me field.
func (r *queryResolver) Me(ctx context.Context) (*store.User, error) {
	v := viewer(ctx)
	if v.Anonymous() {
		return nil, nil
	}
	u, err := loaders.User(ctx, v.UserID, level(ctx))
	if store.ErrorCode(err) == store.CodeNotFound {
		return nil, nil // a valid token of a deleted account
	}
	return &u, err
}

// Mutation returns graph.MutationResolver implementation.
func (r *Resolver) Mutation() graph.MutationResolver { return &mutationResolver{r} }

// Query returns graph.QueryResolver implementation.
func (r *Resolver) Query() graph.QueryResolver { return &queryResolver{r} }

// Subscription returns graph.SubscriptionResolver implementation.
func (r *Resolver) Subscription() graph.SubscriptionResolver { return &subscriptionResolver{r} }

type (
	mutationResolver     struct{ *Resolver }
	queryResolver        struct{ *Resolver }
	subscriptionResolver struct{ *Resolver }
)
