// Package loaders batches the reads of one GraphQL operation: every relation the schema
// resolves goes through a per-request dataloader, so a page of N items costs one statement
// per level of nesting instead of N.
package loaders

import (
	"context"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graph-gophers/dataloader/v7"

	"github.com/shop/api/graph/exec"
	"github.com/shop/api/store"
)

// Store is what the loaders read from.
type Store interface {
	FindUsersByIDs(ctx context.Context, ids []int64) ([]store.User, error)
	FindProductsByIDs(ctx context.Context, ids []int64) ([]store.Product, error)
	FindOrdersByIDs(ctx context.Context, ids []int64) ([]store.Order, error)
	FindItemsByOrderIDs(ctx context.Context, orderIDs []int64) ([]store.OrderItem, error)
	FindEventsByOrderIDs(ctx context.Context, orderIDs []int64) ([]store.OrderStatusEvent, error)
	FindPaymentsByIDs(ctx context.Context, ids []int64) ([]store.Payment, error)
	FindPaymentsByOrderIDs(ctx context.Context, orderIDs []int64) ([]store.Payment, error)
	FindOrdersOfCustomers(ctx context.Context, customerIDs []int64, status *store.OrderStatus, page store.PageArgs) (map[int64]*store.OrderPage, error)
	FindOrdersOfCustomersWith(ctx context.Context, customerIDs []int64, status *store.OrderStatus, page store.PageArgs, with store.OrderChildren) (store.OrderPagesWith, error)
	FindProductsOfMerchants(ctx context.Context, merchantIDs []int64, page store.PageArgs) (map[int64]*store.ProductPage, error)
	CountOrdersOfCustomers(ctx context.Context, customerIDs []int64, status *store.OrderStatus) (map[int64]int, error)
	CountProductsOfMerchants(ctx context.Context, merchantIDs []int64) (map[int64]int, error)
	CountOrders(ctx context.Context, f store.OrderFilter) (int, error)
	CountProducts(ctx context.Context, f store.ProductFilter) (int, error)
	FindShipmentsByIDs(ctx context.Context, ids []int64) ([]store.Shipment, error)
	FindShipmentsByOrderIDs(ctx context.Context, orderIDs []int64) ([]store.Shipment, error)
	FindItemsByShipmentIDs(ctx context.Context, shipmentIDs []int64) ([]store.ShipmentItem, error)
	FindStockMovementsOfProducts(ctx context.Context, productIDs []int64, page store.PageArgs) (map[int64]*store.StockMovementPage, error)
	CountStockMovementsOfProducts(ctx context.Context, productIDs []int64) (map[int64]int, error)
}

var _ Store = (*store.Store)(nil)

// Config tunes batching.
type Config struct {
	// Wait is how long a loader collects keys before it queries. gqlgen resolves the
	// elements of a list in sibling goroutines that ask within microseconds of each other,
	// so a short window catches them; every batched request pays it once per level of
	// nesting, which is why we do not keep the library's 16 ms default (five levels of an
	// order history would wait 80 ms).
	Wait time.Duration
	// MaxWait, when above Wait, lets the window grow while goroutines queue for a CPU: by
	// QueuedCost for each runnable goroutine per CPU when the request starts, up to MaxWait.
	// Under load a level's goroutines wait their turn, and a window of Wait would split its
	// keys over several statements, spending CPU exactly when it is short; an idle process,
	// or one whose requests wait on the database rather than the CPU, keeps the short window.
	MaxWait time.Duration
	// QueuedCost is what one runnable goroutine ahead is assumed to delay a level (its
	// share of a CPU); 0 means 50µs.
	QueuedCost time.Duration
	// MaxBatch caps the keys of one query (0: no cap). It bounds the IN list, far below
	// the parameter limits of PostgreSQL (65,535) and SQLite (32,766), while a full page
	// (100 orders of up to 5 items) still fits in one batch.
	MaxBatch int
	// PerItem turns batching off: every key is its own query. It exists to measure what
	// batching saves, never for production.
	PerItem bool
	// Observe, when set, is called at the end of every request with what it cost.
	Observe func(r *http.Request, rep Report)
	// OnBatch, when set, is called with the size of every batch a loader sends.
	OnBatch func(loader string, keys int)
}

// DefaultConfig is the batching used in production: see Config for why.
var DefaultConfig = Config{Wait: time.Millisecond, MaxWait: 8 * time.Millisecond, MaxBatch: 1000}

// runnable returns how many goroutines wait for a CPU (80 ns to read).
func runnable() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Loaders holds one operation's loaders. Each caches what it loaded for the operation's life.
type Loaders struct {
	store            Store
	users            lazy[int64, store.User]
	products         lazy[int64, store.Product]
	orders           lazy[int64, store.Order]
	items            lazy[int64, []store.OrderItem]
	history          lazy[int64, []store.OrderStatusEvent]
	payments         lazy[int64, store.Payment]
	orderPayments    lazy[int64, []store.Payment]
	customerOrders   lazy[childKey, *store.OrderPage]
	merchantProducts lazy[childKey, *store.ProductPage]
	customerOrderN   lazy[childKey, int]
	merchantProductN lazy[childKey, int]
	// The shipments' and the ledger's loaders are built together on first use (see
	// shipment.go): W1 and W2 never ask, and their closures would cost each request 20
	// allocations.
	cfg       Config
	stockOnce sync.Once
	stockL    *stockLoaders
	// built is done once the eleven loaders above are set up, by the first For: an operation
	// the response cache answers never asks, and setting them up is most of what loaders
	// cost a request (their closures, some 40 allocations).
	built sync.Once

	stats    *store.RequestStats
	mu       sync.Mutex
	batches  map[string][]int
	windowed map[string][]int // made by the first such batch: most requests send none
	windows  atomic.Int64     // batches the window sent
}

// New returns fresh loaders reading from s. They are set up when first asked for (For).
func New(s Store, cfg Config) *Loaders {
	return &Loaders{store: s, cfg: cfg, stats: &store.RequestStats{}}
}

// build sets up the loaders; each is still built on its first use (lazy).
func (l *Loaders) build() {
	l.built.Do(l.setUp)
}

func (l *Loaders) setUp() {
	s, cfg := l.store, l.cfg
	l.mu.Lock()
	if l.batches == nil {
		l.batches = map[string][]int{}
	}
	l.mu.Unlock()
	lazily(&l.users, l, cfg, "user", byID(s.FindUsersByIDs, func(u store.User) int64 { return u.ID }))
	lazily(&l.products, l, cfg, "product", byID(s.FindProductsByIDs, func(p store.Product) int64 { return p.ID }))
	lazily(&l.orders, l, cfg, "order", byID(s.FindOrdersByIDs, func(o store.Order) int64 { return o.ID }))
	lazily(&l.items, l, cfg, "items", groupedBy(s.FindItemsByOrderIDs, func(i store.OrderItem) int64 { return i.OrderID }))
	lazily(&l.history, l, cfg, "history", groupedBy(s.FindEventsByOrderIDs, func(e store.OrderStatusEvent) int64 { return e.OrderID }))
	lazily(&l.payments, l, cfg, "payment", byID(s.FindPaymentsByIDs, func(p store.Payment) int64 { return p.ID }))
	lazily(&l.orderPayments, l, cfg, "payments", groupedBy(s.FindPaymentsByOrderIDs, func(p store.Payment) int64 { return p.OrderID }))
	lazily(&l.customerOrders, l, cfg, "customer_orders", pagesOf(func(ctx context.Context, ids []int64, k childKey) (map[int64]*store.OrderPage, error) {
		return s.FindOrdersOfCustomers(ctx, ids, k.statusFilter(), k.page())
	}))
	lazily(&l.merchantProducts, l, cfg, "merchant_products", pagesOf(func(ctx context.Context, ids []int64, k childKey) (map[int64]*store.ProductPage, error) {
		return s.FindProductsOfMerchants(ctx, ids, k.page())
	}))
	lazily(&l.customerOrderN, l, cfg, "customer_order_count", countsOf(func(ctx context.Context, ids []int64, k childKey) (map[int64]int, error) {
		return s.CountOrdersOfCustomers(ctx, ids, k.statusFilter())
	}))
	lazily(&l.merchantProductN, l, cfg, "merchant_product_count", countsOf(func(ctx context.Context, ids []int64, _ childKey) (map[int64]int, error) {
		return s.CountProductsOfMerchants(ctx, ids)
	}))
}

// lazy is a loader built on first use: an operation uses a few of the eleven, and building
// one (its cache, its batch state) is most of what a loader costs a request that never asks.
type lazy[K comparable, V any] struct {
	once     sync.Once
	loader   *dataloader.Loader[K, V]
	cache    *cache[K, V] // the loader's, which many reads and primes too
	fetch    dataloader.BatchFunc[K, V]
	maxBatch int
	build    func() *dataloader.Loader[K, V]
}

func (z *lazy[K, V]) get() *dataloader.Loader[K, V] {
	z.once.Do(func() {
		z.cache = new(cache[K, V])
		z.loader = z.build()
	})
	return z.loader
}

// put caches v under key for the operation where nothing is cached yet, as the loader's
// Prime does, without a thunk for it.
func (z *lazy[K, V]) put(key K, v V) {
	z.get()
	z.cache.put(key, v)
}

// lazily makes z build its loader with newLoader when it is first used.
func lazily[K comparable, V any](z *lazy[K, V], l *Loaders, cfg Config, name string, fetch dataloader.BatchFunc[K, V]) {
	z.fetch = counted(l, cfg, name, fetch)
	z.maxBatch = cfg.MaxBatch
	if cfg.PerItem {
		z.maxBatch = 1
	}
	z.build = func() *dataloader.Loader[K, V] { return newLoader(cfg, fromWindow(l, name, z.fetch), z.cache) }
}

// fromWindow wraps fetch, the loader's own batch function, to record the size of every
// batch the loader's window sends (Whole reads call fetch directly).
func fromWindow[K comparable, V any](l *Loaders, name string, fetch dataloader.BatchFunc[K, V]) dataloader.BatchFunc[K, V] {
	return func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		l.windows.Add(1)
		l.mu.Lock()
		if l.windowed == nil {
			l.windowed = map[string][]int{}
		}
		l.windowed[name] = append(l.windowed[name], len(keys))
		l.mu.Unlock()
		return fetch(ctx, keys)
	}
}

// counted wraps fetch to record the size of every batch it is sent.
func counted[K comparable, V any](l *Loaders, cfg Config, name string, fetch dataloader.BatchFunc[K, V]) dataloader.BatchFunc[K, V] {
	return func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		l.count(name, len(keys))
		return fetch(ctx, keys)
	}
}

// count records a batch of n keys that loader name read.
func (l *Loaders) count(name string, n int) {
	l.mu.Lock()
	l.batches[name] = append(l.batches[name], n)
	l.mu.Unlock()
	if l.cfg.OnBatch != nil {
		l.cfg.OnBatch(name, n)
	}
}

func newLoader[K comparable, V any](cfg Config, fetch dataloader.BatchFunc[K, V], cache dataloader.Cache[K, V]) *dataloader.Loader[K, V] {
	if cfg.PerItem {
		// A batch of one is sent at once, without waiting.
		return dataloader.NewBatchedLoader(fetch, dataloader.WithBatchCapacity[K, V](1), dataloader.WithCache(cache))
	}
	return dataloader.NewBatchedLoader(fetch,
		dataloader.WithWait[K, V](cfg.Wait),
		dataloader.WithBatchCapacity[K, V](cfg.MaxBatch),
		dataloader.WithCache(cache),
	)
}

// Report is what one request cost.
type Report struct {
	// Statements is the number of SQL statements the request issued, SQL their text.
	Statements int
	SQL        []string
	// RoundTrips is how many times those statements waited for the database: once each,
	// once for all the statements of a batch (a page of orders read with its children).
	RoundTrips int
	// CacheHits and CacheMisses count the keys Redis answered and missed.
	CacheHits, CacheMisses int
	// Batches lists, per loader, the size of each batch it sent.
	Batches map[string][]int
	// Windowed lists, per loader, the size of each of those batches that its batch window
	// sent (when the window closed or filled up); the others were Whole reads, sent at once.
	// It is nil when no batch waited for a window.
	Windowed map[string][]int
}

// Report returns what the operation of these loaders cost so far.
func (l *Loaders) Report() Report {
	r := Report{Statements: l.stats.Statements(), SQL: l.stats.SQL(), RoundTrips: l.stats.RoundTrips(), Batches: map[string][]int{}}
	r.CacheHits, r.CacheMisses = l.stats.Cache()
	l.mu.Lock()
	for k, v := range l.batches {
		r.Batches[k] = append([]int(nil), v...)
	}
	for k, v := range l.windowed {
		if r.Windowed == nil {
			r.Windowed = map[string][]int{}
		}
		r.Windowed[k] = append([]int(nil), v...)
	}
	l.mu.Unlock()
	return r
}

// forLoad returns the configuration for a request that finds queued goroutines waiting for
// the CPUs.
func (c Config) forLoad(queued uint64) Config {
	if c.MaxWait > c.Wait {
		cost := c.QueuedCost
		if cost <= 0 {
			cost = 50 * time.Microsecond
		}
		perCPU := time.Duration(queued) / time.Duration(runtime.GOMAXPROCS(0))
		c.Wait = min(c.Wait+perCPU*cost, c.MaxWait)
	}
	return c
}

// With returns ctx carrying l; the store counts the statements issued under it into l's
// report. l is kept as the executor's batch window (exec.Window), one context value for
// both: the executor's lists and objects watch its windows (graph/exec).
func With(ctx context.Context, l *Loaders) context.Context {
	return store.WithRequestStats(exec.WithWindow(ctx, l), l.stats)
}

// For returns the loaders in ctx. It panics when there are none: every request path must
// install them (Middleware, or per operation for subscriptions).
func For(ctx context.Context) *Loaders {
	l, ok := exec.WindowIn(ctx).(*Loaders)
	if !ok {
		panic("loaders: none in context")
	}
	l.build()
	return l
}

// Lookup returns the loaders in ctx, nil when there are none.
func Lookup(ctx context.Context) *Loaders {
	l, _ := exec.WindowIn(ctx).(*Loaders)
	return l
}

// Windows is how many batches the loaders' batch window has sent so far: each one was
// waited for.
func (l *Loaders) Windows() int64 { return l.windows.Load() }

// Has reports whether ctx carries loaders.
func Has(ctx context.Context) bool { return Lookup(ctx) != nil }

// Middleware gives every HTTP request fresh loaders, and reports what the request cost to
// cfg.Observe. Keep it off WebSocket upgrades: a connection outlives any cache, so each
// operation on it gets loaders of its own (see the api package's live transports).
func Middleware(s Store, cfg Config) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lc := cfg
			if cfg.MaxWait > cfg.Wait {
				lc = cfg.forLoad(runnable())
			}
			l := New(s, lc)
			next.ServeHTTP(w, r.WithContext(With(r.Context(), l)))
			if cfg.Observe != nil {
				cfg.Observe(r, l.Report())
			}
		})
	}
}
