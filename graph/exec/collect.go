package exec

import (
	"sync"
	"sync/atomic"

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
//
// Every object of a list asks again for the entry its siblings asked for: the first
// entries are held inline and read without the lock, each written once before the count
// that publishes it (recent, n); an operation with more selection sets keeps the rest in
// a map under the lock.
type CollectedFields struct {
	mu     sync.Mutex
	recent [maxRecent]collectEntry
	n      atomic.Int32
	more   map[collectKey][]graphql.CollectedField
	// waited holds the collected fields of objects whose concurrent fields waited for the
	// loaders' batch window (see LaterFields), by the address of their first field;
	// anyWaited says it holds any, so that an operation that never waits takes no lock.
	waited    map[*graphql.CollectedField]bool
	anyWaited atomic.Bool
}

type collectEntry struct {
	key    collectKey
	fields []graphql.CollectedField
}

// maxRecent bounds the entries held inline, which are searched in turn: a storefront
// operation has a handful of selection sets.
const maxRecent = 12

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
	if fields, ok := c.lookup(key, false); ok {
		return fields
	}
	fields := graphql.CollectFields(oc, sel, satisfies)
	c.mu.Lock()
	defer c.mu.Unlock()
	if known, ok := c.lookup(key, true); ok {
		return known // a sibling collected it meanwhile
	}
	if n := c.n.Load(); n < maxRecent {
		c.recent[n] = collectEntry{key: key, fields: fields}
		c.n.Store(n + 1)
		return fields
	}
	if c.more == nil {
		c.more = make(map[collectKey][]graphql.CollectedField)
	}
	c.more[key] = fields
	return fields
}

// lookup returns key's fields if they were collected: from the published inline entries,
// then, once those are full, from the map under the lock, which locked says the caller holds.
func (c *CollectedFields) lookup(key collectKey, locked bool) ([]graphql.CollectedField, bool) {
	n := c.n.Load()
	for i := range n {
		if e := &c.recent[i]; e.key == key {
			return e.fields, true
		}
	}
	if n < maxRecent {
		return nil, false
	}
	if !locked {
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	fields, ok := c.more[key]
	return fields, ok
}

// hasWaited reports whether an object of these collected fields waited for the window.
func (c *CollectedFields) hasWaited(fields []graphql.CollectedField) bool {
	if !c.anyWaited.Load() {
		return false
	}
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
	c.anyWaited.Store(true)
}
