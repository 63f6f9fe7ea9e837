package resolvers

import (
	"context"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/graph/model"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// Payments is what the resolvers need of checkout (see checkout.Checkout).
type Payments interface {
	// Enabled reports whether payments are taken (PAYMENT_PROVIDER is not none).
	Enabled() bool
	PayOrder(ctx context.Context, v store.Viewer, orderID int64, key string) (store.Payment, error)
	ConfirmTestPayment(ctx context.Context, v store.Viewer, paymentID int64, succeed bool) (store.Payment, error)
}

// visiblePayment returns payment id when the caller may see its order, else as visibleOrder.
func visiblePayment(ctx context.Context, id int64) (store.Payment, error) {
	if viewer(ctx).Anonymous() {
		return store.Payment{}, unauthenticated()
	}
	p, err := loaders.Payment(ctx, id, level(ctx))
	if err != nil {
		return store.Payment{}, err
	}
	if _, err := visibleOrder(ctx, p.OrderID); err != nil {
		return store.Payment{}, err
	}
	return p, nil
}

// clientSecret is a payment's client secret as v may see it: the order's customer alone,
// while the payment is PENDING.
func clientSecret(v store.Viewer, p *store.Payment) *string {
	if v.Anonymous() || v.UserID != p.CustomerID || p.Status != store.PaymentPending {
		return nil
	}
	return p.Secret
}

// paymentPayload returns the payload of a payment mutation: the payment, or the userErrors of err.
func paymentPayload(p store.Payment, err error, notFoundField ...string) (*model.PaymentPayload, error) {
	if err != nil {
		ue, err := userErrors(err, notFoundField...)
		if err != nil {
			return nil, err
		}
		return &model.PaymentPayload{UserErrors: ue}, nil
	}
	return &model.PaymentPayload{Payment: &p, UserErrors: []model.UserError{}}, nil
}

// paymentsDisabled answers payOrder when PAYMENT_PROVIDER=none: a request the shop does not
// serve, reported as BAD_USER_INPUT.
func paymentsDisabled() error {
	return gqlerror.Errorf("this shop takes no payments (PAYMENT_PROVIDER=none); orders are marked paid with updateOrderStatus")
}
