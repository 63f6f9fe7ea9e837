package resolvers

import "github.com/shop/api/graph/model"

func (r *Resolver) money(amount int) *model.Money {
	return &model.Money{Amount: amount, Currency: r.Currency}
}
