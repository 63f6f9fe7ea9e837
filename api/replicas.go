package api

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/shop/api/auth"
	"github.com/shop/api/store/replicas"
)

// replicaReads lets the loaders and lists of queries and mutations read a replica on behalf
// of their caller, asked at each read since a mutation may sign them in. Subscriptions read
// the primary: an event's fields must show the change it announces, which a replica may not
// have replayed yet.
func replicaReads(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if oc := graphql.GetOperationContext(ctx); oc.Operation != nil && oc.Operation.Operation != ast.Subscription {
		opCtx := ctx
		ctx = replicas.WithReads(ctx, func() int64 { return auth.ViewerFrom(opCtx).UserID })
	}
	return next(ctx)
}
