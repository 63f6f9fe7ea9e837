package resolvers

import (
	"context"

	"github.com/shop/api/auth"
	"github.com/shop/api/graph/model"
	"github.com/shop/api/store"
)

// signedIn returns the payload of a sign-up or log-in: a token for u, or the userErrors of err.
// The rest of the operation runs as u.
func (r *Resolver) signedIn(ctx context.Context, u store.User, err error) (*model.AuthPayload, error) {
	if err != nil {
		ue, err := userErrors(err)
		if err != nil {
			return nil, err
		}
		return &model.AuthPayload{UserErrors: ue}, nil
	}
	token, err := r.Tokens.Issue(u)
	if err != nil {
		return nil, err
	}
	auth.SignedIn(ctx, store.Viewer{UserID: u.ID, Role: u.Role})
	return &model.AuthPayload{Token: &token, User: &u, UserErrors: []model.UserError{}}, nil
}
