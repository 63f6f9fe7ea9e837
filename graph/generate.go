// Package graph holds the shop's GraphQL schema (*.graphqls) and the executor generated
// from it (generated.go). `go generate ./...` at the repository root regenerates it with
// graph/internal/execgen, from our copies of gqlgen's templates; the runtime the executor
// calls is package graph/exec. See docs/executor.md.
package graph
