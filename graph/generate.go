// Package graph holds the shop's GraphQL schema (*.graphqls) and the executor gqlgen
// generates from it; `go generate ./...` at the repository root regenerates it.
package graph
