// Command lazydefer rewrites gqlgen's executor (the file named by its argument) so that an
// object builds its @defer group only when one of its fields is deferred: gqlgen builds one
// for every object it resolves (the object's response path, a field set and a map), which
// was an eighth of a storefront read's allocations, and a query without @defer never uses
// it. `go generate` runs it after gqlgen; it fails when gqlgen's code no longer has the line
// it rewrites, so that a gqlgen upgrade cannot drop the change unnoticed.
package main

import (
	"bytes"
	"fmt"
	"os"
)

var (
	from = []byte("deferred := graphql.NewDeferredGroup(ctx)")
	to   = []byte("deferred := deferredGroup(ctx, fields)")
)

func main() {
	if err := rewrite(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "lazydefer:", err)
		os.Exit(1)
	}
}

func rewrite(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Contains(src, from) {
		return fmt.Errorf("%s has no %q: gqlgen changed, see graph/deferred.go", path, from)
	}
	return os.WriteFile(path, bytes.ReplaceAll(src, from, to), 0o644)
}
