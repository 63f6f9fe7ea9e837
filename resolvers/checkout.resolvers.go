package resolvers

import (
	"context"

	"github.com/shop/api/graph"
	"github.com/shop/api/graph/model"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// PayOrder is the resolver for the payOrder field.
func (r *mutationResolver) PayOrder(ctx context.Context, input model.PayOrderInput) (*model.PaymentPayload, error) {
	if !r.Payments.Enabled() {
		return nil, paymentsDisabled()
	}
	p, err := r.Payments.PayOrder(ctx, viewer(ctx), localID(kindOrder, input.OrderID), input.IdempotencyKey)
	return paymentPayload(p, err, "orderId")
}

// ConfirmTestPayment is the resolver for the confirmTestPayment field.
func (r *mutationResolver) ConfirmTestPayment(ctx context.Context, input model.ConfirmTestPaymentInput) (*model.PaymentPayload, error) {
	p, err := r.Payments.ConfirmTestPayment(ctx, viewer(ctx), localID(kindPayment, input.PaymentID),
		input.Outcome == model.TestPaymentOutcomeSucceed)
	return paymentPayload(p, err, "paymentId")
}

// Payments is the batch resolver for the payments field.
func (r *orderResolver) Payments(ctx context.Context, objs []*store.Order) ([][]store.Payment, error) {
	payments, errs := loaders.PaymentsOf(ctx, keys(objs, func(o *store.Order) int64 { return o.ID }), level(ctx))
	return payments, batchErrors(errs)
}

// Order is the batch resolver for the order field.
func (r *paymentResolver) Order(ctx context.Context, objs []*store.Payment) ([]*store.Order, error) {
	return pointers(loaders.Orders(ctx, keys(objs, func(p *store.Payment) int64 { return p.OrderID }), level(ctx)))
}

// ClientSecret is the resolver for the clientSecret field.
func (r *paymentResolver) ClientSecret(ctx context.Context, obj *store.Payment) (*string, error) {
	return clientSecret(viewer(ctx), obj), nil
}

// Payment returns graph.PaymentResolver implementation.
func (r *Resolver) Payment() graph.PaymentResolver { return &paymentResolver{r} }

type paymentResolver struct{ *Resolver }
