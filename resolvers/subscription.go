package resolvers

import (
	"context"
	"errors"

	"github.com/shop/api/store"
)

// Events delivers committed order status events to live subscribers.
type Events interface{}

func (r *subscriptionResolver) orderStatusChanged(ctx context.Context, orderID string, after *string) (<-chan *store.OrderStatusEvent, error) {
	return nil, errors.New("subscriptions are not wired yet")
}

func (r *subscriptionResolver) myOrderEvents(ctx context.Context) (<-chan *store.OrderStatusEvent, error) {
	return nil, errors.New("subscriptions are not wired yet")
}
