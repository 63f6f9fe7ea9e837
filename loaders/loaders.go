// Package loaders batches the reads of one GraphQL operation: every relation the schema
// resolves goes through a per-request dataloader, so a page of N items costs one statement
// per level of nesting instead of N.
package loaders

import (
	"context"
	"net/http"
	"time"

	"github.com/graph-gophers/dataloader/v7"

	"github.com/shop/api/store"
)

// Store is what the loaders read from.
type Store interface {
	FindUsersByIDs(ctx context.Context, ids []int64) ([]store.User, error)
	FindProductsByIDs(ctx context.Context, ids []int64) ([]store.Product, error)
	FindOrdersByIDs(ctx context.Context, ids []int64) ([]store.Order, error)
	FindItemsByOrderIDs(ctx context.Context, orderIDs []int64) ([]store.OrderItem, error)
	FindEventsByOrderIDs(ctx context.Context, orderIDs []int64) ([]store.OrderStatusEvent, error)
}

var _ Store = (*store.Store)(nil)

// Config tunes batching.
type Config struct {
	// Wait is how long a loader collects keys before it queries. gqlgen resolves the
	// elements of a list in sibling goroutines that all ask within microseconds of each
	// other, so a short window catches them; every batched request pays it once per level,
	// which is why we do not keep the library's 16 ms default.
	Wait time.Duration
	// MaxBatch caps the keys of one query (0: no cap). Pages are at most 100 items, so a
	// level rarely holds more than a few hundred keys; the cap keeps IN lists bounded.
	MaxBatch int
	// PerItem turns batching off: every key is its own query. It exists to measure what
	// batching saves, never for production.
	PerItem bool
}

// DefaultConfig is the batching used in production.
var DefaultConfig = Config{Wait: 2 * time.Millisecond, MaxBatch: 500}

// Loaders holds one operation's loaders. Each caches what it loaded for the operation's life.
type Loaders struct {
	users    *dataloader.Loader[int64, store.User]
	products *dataloader.Loader[int64, store.Product]
	orders   *dataloader.Loader[int64, store.Order]
	items    *dataloader.Loader[int64, []store.OrderItem]
	history  *dataloader.Loader[int64, []store.OrderStatusEvent]
}

// New returns fresh loaders reading from s.
func New(s Store, cfg Config) *Loaders {
	return &Loaders{
		users:    newLoader(cfg, byID(s.FindUsersByIDs, func(u store.User) int64 { return u.ID })),
		products: newLoader(cfg, byID(s.FindProductsByIDs, func(p store.Product) int64 { return p.ID })),
		orders:   newLoader(cfg, byID(s.FindOrdersByIDs, func(o store.Order) int64 { return o.ID })),
		items:    newLoader(cfg, groupedBy(s.FindItemsByOrderIDs, func(i store.OrderItem) int64 { return i.OrderID })),
		history:  newLoader(cfg, groupedBy(s.FindEventsByOrderIDs, func(e store.OrderStatusEvent) int64 { return e.OrderID })),
	}
}

func newLoader[V any](cfg Config, fetch dataloader.BatchFunc[int64, V]) *dataloader.Loader[int64, V] {
	if cfg.PerItem {
		return dataloader.NewBatchedLoader(fetch, dataloader.WithBatchCapacity[int64, V](1))
	}
	return dataloader.NewBatchedLoader(fetch,
		dataloader.WithWait[int64, V](cfg.Wait),
		dataloader.WithBatchCapacity[int64, V](cfg.MaxBatch),
	)
}

type ctxKey struct{}

// With returns ctx carrying l.
func With(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// For returns the loaders in ctx. It panics when there are none: every request path must
// install them (Middleware, or per operation for subscriptions).
func For(ctx context.Context) *Loaders {
	l, ok := ctx.Value(ctxKey{}).(*Loaders)
	if !ok {
		panic("loaders: none in context")
	}
	return l
}

// Middleware gives every HTTP request fresh loaders.
func Middleware(s Store, cfg Config) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(With(r.Context(), New(s, cfg))))
		})
	}
}
