// Command tuneexec rewrites gqlgen's executor (the file named by its argument) where the
// generated code is costlier than a storefront read can afford; the functions it calls
// instead are in package graph, each with its reasons:
//
//   - an object builds its @defer group only when one of its fields is deferred
//     (deferredGroup, graph/deferred.go);
//   - a list resolves its elements one after another until one waits for the loaders'
//     batch window, instead of a goroutine per element (marshalList, graph/lists.go).
//
// `go generate` runs it after gqlgen. It fails when gqlgen's code no longer has a line it
// rewrites, so that a gqlgen upgrade cannot drop a change unnoticed.
package main

import (
	"bytes"
	"fmt"
	"os"
)

var rewrites = []struct{ from, to string }{
	{"deferred := graphql.NewDeferredGroup(ctx)", "deferred := deferredGroup(ctx, fields)"},
	{"graphql.MarshalSliceConcurrently(", "marshalList("},
}

func main() {
	if err := rewrite(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "tuneexec:", err)
		os.Exit(1)
	}
}

func rewrite(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, r := range rewrites {
		if !bytes.Contains(src, []byte(r.from)) {
			return fmt.Errorf("%s has no %q: gqlgen changed, see package graph", path, r.from)
		}
		src = bytes.ReplaceAll(src, []byte(r.from), []byte(r.to))
	}
	return os.WriteFile(path, src, 0o644)
}
