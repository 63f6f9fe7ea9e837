package exec

import (
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// CollectedFields stands for graphql.CollectFields in the generated executor's objects
// (see graph/internal/execgen), one per operation: gqlgen caches the fields it collects too, but
// keys them by a hash of the object's type names, an allocation for each object it
// resolves. Here the key is the selection set and the type's list of implementors, which
// is a variable of the generated code: their addresses say which they are. A subscription
// lives as long as its phone watches and is left to gqlgen's cache alone, so that it does
// not hold a second one.
type CollectedFields struct {
	mu     sync.Mutex
	fields map[collectKey][]graphql.CollectedField
	// waited holds the collected fields of objects whose concurrent fields waited for the
	// loaders' batch window (see LaterFields), by the address of their first field.
	waited map[*graphql.CollectedField]bool
}

type collectKey struct {
	sel       *ast.Selection
	n         int
	satisfies *string
}

func (c *CollectedFields) Of(oc *graphql.OperationContext, sel ast.SelectionSet, satisfies []string) []graphql.CollectedField {
	if len(sel) == 0 || len(satisfies) == 0 || oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
		return graphql.CollectFields(oc, sel, satisfies)
	}
	key := collectKey{sel: &sel[0], n: len(sel), satisfies: &satisfies[0]}
	c.mu.Lock()
	fields, ok := c.fields[key]
	c.mu.Unlock()
	if ok {
		return fields
	}
	fields = graphql.CollectFields(oc, sel, satisfies)
	c.mu.Lock()
	if c.fields == nil {
		c.fields = make(map[collectKey][]graphql.CollectedField)
	}
	c.fields[key] = fields
	c.mu.Unlock()
	return fields
}

// hasWaited reports whether an object of these collected fields waited for the window.
func (c *CollectedFields) hasWaited(fields []graphql.CollectedField) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waited[&fields[0]]
}

// markWaited records that an object of these collected fields waited for the window.
func (c *CollectedFields) markWaited(fields []graphql.CollectedField) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waited == nil {
		c.waited = map[*graphql.CollectedField]bool{}
	}
	c.waited[&fields[0]] = true
}
