// Package api is the HTTP face of the service: the GraphQL handler with its transports and
// extensions, how errors are shown to clients, persisted queries, live subscriptions' wiring
// and the health endpoints. The concerns around it have rooms of their own: guard (limits,
// rate limits, HTTP protections), observe (metrics, tracing, logs), playground (GraphiQL)
// and redisconn (the Redis connection). server.go builds them all and mounts the routes.
package api

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"go.opentelemetry.io/otel/trace"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/api/observe"
	"github.com/shop/api/api/respcache"
	"github.com/shop/api/graph"
	"github.com/shop/api/resolvers"
)

// GraphQLConfig is what the GraphQL handler is built from.
type GraphQLConfig struct {
	Resolvers  *resolvers.Resolver
	Operations *guard.Operations
	// PersistedQueries is the APQ cache (NewPersistedQueries).
	PersistedQueries *PersistedQueries
	Live             *Live
	// OperationDeadline bounds the operations a transport leaves without a deadline
	// (guard.HTTP.OperationDeadline).
	OperationDeadline graphql.HandlerExtension
	Metrics           *observe.Metrics
	// Trusted, when set, is the allow-list of operations (NewTrustedDocuments); it replaces APQ.
	Trusted *TrustedDocuments
	// Tracer traces every operation; nil traces none.
	Tracer trace.Tracer
	Log    *slog.Logger
	// Introspection answers __schema and __type; Production hides field suggestions.
	Introspection, Production bool
	// ReplicaReads lets queries and mutations read the store's replicas for their caller
	// (DATABASE_REPLICA_URLS); without replicas nothing is wrapped around operations.
	ReplicaReads bool
	// ResponseCache, when set, answers public queries from cached responses (installed
	// last: the limits and extensions around it treat its answers as the executor's).
	ResponseCache *respcache.Cache
}

// NewGraphQL builds the GraphQL handler: its transports (the first that matches a request
// wins), caches and extensions.
func NewGraphQL(cfg GraphQLConfig) *handler.Server {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Schema: graph.Schema(), Resolvers: cfg.Resolvers, Complexity: guard.CostModel()}))
	srv.AddTransport(transport.Options{})
	// Live transports come before POST: an SSE request is a POST too.
	cfg.Live.install(srv)
	observer := cfg.Metrics.Operations(cfg.Log, cfg.Tracer)
	var cached *cachedAnswers
	if cfg.ResponseCache != nil && !cfg.ReplicaReads {
		cached = &cachedAnswers{cache: cfg.ResponseCache, ops: cfg.Operations, trusted: cfg.Trusted, metrics: cfg.Metrics,
			observer: observer.(cachedObserver), schema: graph.Schema()}
		if cfg.Trusted == nil {
			cached.apq = cfg.PersistedQueries
		}
	}
	srv.AddTransport(get{cache: cfg.ResponseCache, cached: cached})
	srv.AddTransport(post{cached: cached})
	srv.SetQueryCache(cfg.Operations.Documents())
	use := func(ext graphql.HandlerExtension) { useExtension(srv, ext) }
	if cfg.Introspection {
		use(extension.Introspection{})
	}
	if cfg.Trusted != nil {
		// First: it turns an id into its text before the shape limits look at the text.
		use(cfg.Trusted)
	}
	cfg.Operations.Install(srv, use)
	if cfg.Trusted == nil {
		// After the limits: the lookup runs once the text of a registration passed the size
		// limit, and the store once the operation was validated and charged.
		use(extension.AutomaticPersistedQuery{Cache: cfg.PersistedQueries.Lookup()})
		use(cfg.PersistedQueries)
	}
	if cfg.OperationDeadline != nil {
		use(cfg.OperationDeadline)
	}
	use(observer)
	if cfg.ReplicaReads {
		srv.AroundOperations(replicaReads)
	}
	if cfg.ResponseCache != nil {
		use(cfg.ResponseCache)
	}
	srv.SetDisableSuggestion(cfg.Production)
	srv.SetErrorPresenter(ErrorPresenter(cfg.Log))
	srv.SetRecoverFunc(Recover(cfg.Log))
	return srv
}

// useExtension installs ext on srv, refusing field middleware: the executor marshals plain
// leaf fields without running it (graph/internal/execgen), so it would see only some of
// the fields. Field-level concerns belong in the resolver or a root-field interceptor.
func useExtension(srv *handler.Server, ext graphql.HandlerExtension) {
	if _, ok := ext.(graphql.FieldInterceptor); ok {
		panic(fmt.Sprintf("api: extension %s intercepts fields, which plain leaf fields skip", ext.ExtensionName()))
	}
	srv.Use(ext)
}

// Chain wraps h in middleware, the first outermost.
func Chain(h http.Handler, mw ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Unless applies mw to the requests for which skip is false.
func Unless(skip func(*http.Request) bool, mw func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		wrapped := mw(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if skip(r) {
				next.ServeHTTP(w, r)
				return
			}
			wrapped.ServeHTTP(w, r)
		})
	}
}
