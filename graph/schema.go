package graph

import (
	"maps"
	"sync"

	"github.com/vektah/gqlparser/v2/ast"
)

// Schema is the schema the service serves, introspects, checks trusted documents against
// and prints (`go run . schema`, graph/schema.graphql): gqlgen's, without @defer.
// gqlparser's prelude declares @defer and gqlgen would run a deferred fragment, but its
// fields travel in later payloads that only incremental delivery (multipart/mixed) sends,
// which the service does not serve: over POST a deferred field came back null without an
// error. Without the directive, a query using it fails validation instead.
var Schema = sync.OnceValue(func() *ast.Schema {
	s := *NewExecutableSchema(Config{}).Schema()
	s.Directives = maps.Clone(s.Directives)
	delete(s.Directives, "defer")
	return &s
})
