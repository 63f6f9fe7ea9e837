package store_test

import (
	"context"
	"testing"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// The pool cap is what keeps several processes under PostgreSQL's max_connections.
func TestPostgresPoolSize(t *testing.T) {
	url := storetest.PostgresURL(t)
	for _, tc := range []struct{ maxConns, want int }{{0, 20}, {3, 3}} {
		s, err := store.Open(context.Background(), store.Config{DatabaseURL: url, MaxConns: tc.maxConns})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.PoolStats().MaxOpenConnections; got != tc.want {
			t.Errorf("MaxConns %d: pool of %d, want %d", tc.maxConns, got, tc.want)
		}
		_ = s.Close()
	}
}

// Every store on one database reports the same namespace, and another database another.
func TestNamespaceBelongsToTheDatabase(t *testing.T) {
	urlA, urlB := storetest.PostgresURL(t), storetest.PostgresURL(t)
	open := func(url string) *store.Store {
		s, err := store.Open(context.Background(), store.Config{DatabaseURL: url, MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a1, a2, b := open(urlA), open(urlA), open(urlB)
	if a1.Namespace() == "" || a1.Namespace() != a2.Namespace() || a1.Namespace() == b.Namespace() {
		t.Fatalf("namespaces: %q, %q on one database, %q on another", a1.Namespace(), a2.Namespace(), b.Namespace())
	}
}
