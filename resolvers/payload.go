package resolvers

import (
	"github.com/shop/api/graph/model"
	"github.com/shop/api/store"
)

// productPayload returns the payload of a product mutation: the product, or the userErrors of err.
func productPayload(p store.Product, err error, notFoundField ...string) (*model.ProductPayload, error) {
	if err != nil {
		ue, err := userErrors(err, notFoundField...)
		if err != nil {
			return nil, err
		}
		return &model.ProductPayload{UserErrors: ue}, nil
	}
	return &model.ProductPayload{Product: &p, UserErrors: []model.UserError{}}, nil
}

// orderPayload returns the payload of an order mutation: the order, or the userErrors of err.
func orderPayload(o store.Order, err error, notFoundField ...string) (*model.OrderPayload, error) {
	if err != nil {
		ue, err := userErrors(err, notFoundField...)
		if err != nil {
			return nil, err
		}
		return &model.OrderPayload{UserErrors: ue}, nil
	}
	return &model.OrderPayload{Order: &o, UserErrors: []model.UserError{}}, nil
}
