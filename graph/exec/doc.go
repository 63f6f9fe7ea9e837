// Package exec is the runtime of the executor gqlgen generates into package graph
// (graph/generated.go). The executor is rendered from our copies of gqlgen's templates
// (graph/internal/execgen), which call these functions where gqlgen's own would cost a
// storefront read more: lists and an object's resolver fields resolved in turn until one
// waits for the loaders' batch window (lists.go, later.go), an object in one allocation
// (object.go), batch fields' results shared by a list and by the lists of one batch
// (batch.go), a field's context in one node and its Child made once an operation
// (field.go), fields collected once an operation (collect.go), plain leaves, times and enum
// names written without a field context and the response in a pooled buffer (data.go). Each file says what it stands for and why; docs/executor.md
// tells the whole.
//
// The runtime knows the loaders only as a Window in the context (window.go).
package exec
