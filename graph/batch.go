package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// batchParents stands for graphql.BatchParents in the generated executor (see
// internal/tuneexec), with the same fields and FieldResult.
type batchParents[P any] struct {
	Parents  []P
	Index    ast.PathIndex
	IndexMap map[int]int
	group    *graphql.BatchParentGroup
}

// FieldResult resolves the field once for the whole group, as graphql.BatchParents does.
func (b batchParents[P]) FieldResult(field graphql.CollectedField, resolve func() (any, error)) *graphql.BatchFieldResult {
	key := field.Alias
	if key == "" {
		key = field.Name
	}
	return b.group.GetFieldResult(key, resolve)
}

// batchParentsFor stands for graphql.BatchParentsFor, which finds the parent's index in the
// batch by building the field's whole response path, a slice grown element by element, for
// every parent of every batch resolver. The index is the nearest list element above the
// field, read here from the field contexts themselves.
func batchParentsFor[P any](ctx context.Context, typeName string) (batchParents[P], bool) {
	group := graphql.GetBatchParentGroup(ctx, typeName)
	if group == nil {
		return batchParents[P]{}, false
	}
	parents, ok := group.Parents.([]P)
	if !ok {
		return batchParents[P]{}, false
	}
	idx, ok := parentIndex(ctx)
	if !ok {
		return batchParents[P]{}, false
	}
	return batchParents[P]{Parents: parents, Index: idx, IndexMap: group.IndexMap, group: group}, true
}

// parentIndex is graphql.BatchParentIndex: the path's next-to-last element, when it is an
// index. The path skips field contexts that have neither an index nor a field.
func parentIndex(ctx context.Context) (ast.PathIndex, bool) {
	if graphql.GetPathContext(ctx) != nil {
		return graphql.BatchParentIndex(ctx) // a path of input arguments: gqlgen's way
	}
	seen := 0
	for fc := graphql.GetFieldContext(ctx); fc != nil; fc = fc.Parent {
		switch {
		case fc.Index != nil:
			if seen == 1 {
				return ast.PathIndex(*fc.Index), true
			}
		case fc.Field.Field != nil:
			if seen == 1 {
				return 0, false
			}
		default:
			continue
		}
		seen++
	}
	return 0, false
}
