package store

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The store is the domain: Redis and the replicas' routing wrap it through its ports
// (store/cache, store/replicas) and none of its files imports them or a Redis client.
func TestStoreImportsNoRooms(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(path, "redis") || strings.HasPrefix(path, "github.com/shop/api/store/cache") ||
				strings.HasPrefix(path, "github.com/shop/api/store/replicas") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
