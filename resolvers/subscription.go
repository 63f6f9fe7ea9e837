package resolvers

import (
	"context"

	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// Events delivers committed order status events to live subscribers until ctx ends.
type Events interface {
	// OrderEvents streams the events of one order; with afterID > 0 it first replays the
	// order's events after that one, and returns INVALID on field "after" when afterID is not
	// an event of the order. The caller has checked visibility.
	OrderEvents(ctx context.Context, orderID, afterID int64) (<-chan *store.OrderStatusEvent, error)
	// ViewerEvents streams the events of every order v may see in `orders`.
	ViewerEvents(ctx context.Context, v store.Viewer) (<-chan *store.OrderStatusEvent, error)
	// Admit waits for a turn to set a subscription up, so that a reconnect storm queues
	// instead of exhausting the database; it returns the function that ends the turn.
	Admit(ctx context.Context) (func(), error)
}

// orderStatusChanged checks that the caller may see the order (UNAUTHENTICATED, NOT_FOUND)
// and that `after` is one of its events (BAD_USER_INPUT), then streams its events.
func (r *subscriptionResolver) orderStatusChanged(ctx context.Context, orderID string, after *string) (<-chan *store.OrderStatusEvent, error) {
	if viewer(ctx).Anonymous() {
		return nil, unauthenticated()
	}
	done, err := r.Events.Admit(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	order, err := visibleOrder(r.setUp(ctx), localID(kindOrder, orderID))
	if err != nil {
		return nil, err
	}
	var afterID int64
	if after != nil {
		if afterID = localID(kindEvent, *after); afterID == 0 {
			return nil, badAfter()
		}
	}
	return r.Events.OrderEvents(ctx, order.ID, afterID)
}

// myOrderEvents streams the events of every order the caller can see; UNAUTHENTICATED for
// anonymous callers.
func (r *subscriptionResolver) myOrderEvents(ctx context.Context) (<-chan *store.OrderStatusEvent, error) {
	v := viewer(ctx)
	if v.Anonymous() {
		return nil, unauthenticated()
	}
	return r.Events.ViewerEvents(ctx, v)
}

// setUp returns the context a subscription is set up in: with loaders of its own, which
// are dropped once it is set up. The subscription keeps ctx, without them: memory per
// subscriber is what bounds a process, and each event gets fresh loaders anyway.
func (r *subscriptionResolver) setUp(ctx context.Context) context.Context {
	return loaders.With(ctx, r.NewLoaders())
}

func badAfter() error {
	return &store.Error{Code: store.CodeInvalid, Message: "after is not an event of this order", Field: []string{"after"}}
}
