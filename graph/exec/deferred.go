package exec

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// DeferredGroup stands for graphql.NewDeferredGroup in the generated executor (see
// graph/internal/execgen): the group is built only when a field of the object is deferred. An
// empty group is what the executor's code for fields without @defer expects: it reads the
// group only for a deferred field, and processes it only when it has deferred labels.
func DeferredGroup(ctx context.Context, fields []graphql.CollectedField) graphql.DeferredGroup {
	for _, f := range fields {
		if f.IsDeferred() {
			return graphql.NewDeferredGroup(ctx)
		}
	}
	return graphql.DeferredGroup{Context: ctx}
}
