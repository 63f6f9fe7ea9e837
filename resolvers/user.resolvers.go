package resolvers

import (
	"context"
	"slices"

	"github.com/shop/api/graph"
	"github.com/shop/api/graph/model"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// SignUp is the resolver for the signUp field.
func (r *mutationResolver) SignUp(ctx context.Context, input model.SignUpInput) (*model.AuthPayload, error) {
	role := store.RoleCustomer
	if input.Role != nil {
		role = *input.Role
	}
	u, err := r.Store.CreateUser(ctx, store.NewUser{Email: input.Email, Name: input.Name, Password: input.Password, Role: role})
	return r.signedIn(ctx, u, err)
}

// LogIn is the resolver for the logIn field.
func (r *mutationResolver) LogIn(ctx context.Context, input model.LogInInput) (*model.AuthPayload, error) {
	refund, err := r.Logins.ReserveLogin(ctx, input.Email)
	if err != nil {
		return nil, err
	}
	u, err := r.Store.Authenticate(ctx, input.Email, input.Password)
	p, err := r.signedIn(ctx, u, err)
	if p != nil && !slices.ContainsFunc(p.UserErrors, func(e model.UserError) bool { return e.Code == model.UserErrorCodeInvalidCredentials }) {
		refund() // only a wrong password keeps the attempt spent
	}
	return p, err
}

// ChangePassword is the resolver for the changePassword field.
func (r *mutationResolver) ChangePassword(ctx context.Context, input model.ChangePasswordInput) (*model.AuthPayload, error) {
	u, err := r.Store.ChangePassword(ctx, viewer(ctx), input.CurrentPassword, input.NewPassword)
	if err == nil {
		r.Revocations.Revoke(u.ID, u.TokenVersion) // here at once; other processes follow
	}
	return r.signedIn(ctx, u, err)
}

// User is the resolver for the user field.
func (r *queryResolver) User(ctx context.Context, id string) (*store.User, error) {
	u, err := loaders.User(ctx, localID(kindUser, id), level(ctx))
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// Email is the resolver for the email field.
func (r *userResolver) Email(ctx context.Context, obj *store.User) (*string, error) {
	if !store.CanSeePrivate(viewer(ctx), obj.ID) {
		return nil, forbidden("only the user themself and admins see the email address")
	}
	return &obj.Email, nil
}

// Orders is the resolver for the orders field.
func (r *userResolver) Orders(ctx context.Context, obj *store.User, first *int, after *string, status *store.OrderStatus) (*store.OrderPage, error) {
	if !store.CanSeePrivate(viewer(ctx), obj.ID) {
		return nil, forbidden("only the user themself and admins see their orders")
	}
	lvl := level(ctx)
	if lvl == loaders.Whole {
		// The page's orders are the whole level below: their items and history, when asked
		// for, are read with the page.
		pages, errs := loaders.CustomerOrdersAhead(ctx, []int64{obj.ID}, status, pageArgs(first, after), orderChildren(ctx, here(ctx)))
		if errs != nil {
			return nil, errs[0]
		}
		return pages[0], nil
	}
	return loaders.CustomerOrders(ctx, obj.ID, status, pageArgs(first, after), lvl)
}

// Products is the resolver for the products field.
func (r *userResolver) Products(ctx context.Context, obj *store.User, first *int, after *string) (*store.ProductPage, error) {
	return loaders.MerchantProducts(ctx, obj.ID, pageArgs(first, after), level(ctx))
}

// User returns graph.UserResolver implementation.
func (r *Resolver) User() graph.UserResolver { return &userResolver{r} }

type userResolver struct{ *Resolver }
