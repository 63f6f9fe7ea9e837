package api

import (
	"context"
	"encoding/json"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/api/observe"
	"github.com/shop/api/api/respcache"
	"github.com/shop/api/auth"
)

// cachedAnswers answers an anonymous caller's public query from the response cache before
// gqlgen sets the operation up (its extensions' parameter and context mutators, the cost's
// walk of the document, its interceptors), which a hit would otherwise pay for nothing. It
// does what that set-up owes a hit: it resolves a persisted query's or trusted document's
// text as they would, checks the text's size, finds the document gqlgen parsed and
// validated, coerces the variables, charges the cost the response's first execution was
// charged (from this process's lease of the caller's budget), and records the operation
// as the observer does (metrics, log line, span); a caller over budget gets the cost
// limit's refusal, through gqlgen's DispatchError as the transport would send it. Anything
// it is not sure of (a text it has not seen, a persisted query to register, a cost over the
// limit, a miss) goes the whole way through gqlgen, which answers or refuses it as always.
type cachedAnswers struct {
	cache    *respcache.Cache
	ops      *guard.Operations
	trusted  *TrustedDocuments
	apq      *PersistedQueries // nil with trusted documents
	metrics  *observe.Metrics
	observer cachedObserver // the extension that records every operation
	schema   *ast.Schema
}

// cachedObserver is what cachedAnswers runs of observe's extension.
type cachedObserver interface {
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
}

// answer answers params from the cache when it can, and reports whether it did; write
// writes the response (its headers first): a hit, or refused, the rate limit's refusal
// (gqlgen's answer to an operation its cost limit refused, from exec). Otherwise ctx,
// returned, carries what the cache read.
func (a *cachedAnswers) answer(ctx context.Context, exec graphql.GraphExecutor, params *graphql.RawParams,
	write func(resp *graphql.Response, refused bool)) (bool, context.Context) {
	if a == nil || !auth.ViewerFrom(ctx).Anonymous() {
		return false, ctx
	}
	p := *params
	persisted := false
	if a.trusted != nil {
		if a.trusted.MutateOperationParameters(ctx, &p) != nil {
			return false, ctx
		}
	} else if q, ok := a.persistedQuery(ctx, &p); !ok {
		return false, ctx
	} else if q != "" {
		p.Query, persisted = q, true
	}
	if p.Query == "" || len(p.Query) > a.ops.MaxQueryBytes() {
		return false, ctx
	}
	doc, ok := a.ops.Documents().Get(ctx, p.Query)
	if !ok {
		return false, ctx
	}
	op := doc.Operations.ForName(p.OperationName)
	if op == nil || op.Operation != ast.Query {
		return false, ctx
	}
	vars, err := validator.VariableValues(a.schema, op, p.Variables)
	if err != nil {
		return false, ctx
	}
	data, cost, ok, ctx := a.cache.Lookup(ctx, p.Query, p.OperationName, vars)
	if !ok {
		return false, ctx
	}
	rc := &graphql.OperationContext{RawQuery: p.Query, OperationName: p.OperationName, Variables: vars,
		Extensions: p.Extensions, Headers: params.Headers, Doc: doc, Operation: op,
		Stats: graphql.Stats{Read: params.ReadTime, OperationStart: graphql.GetStartTime(ctx)}}
	costs, refused, ok := a.ops.ChargeKnown(ctx, rc, cost)
	if !ok {
		return false, ctx
	}
	if refused != nil {
		// As the transport answers an operation whose set-up failed (no span, no hit).
		write(exec.DispatchError(graphql.WithOperationContext(ctx, rc), gqlerror.List{refused}), true)
		return true, ctx
	}
	a.cache.Hit()
	if persisted {
		a.metrics.PersistedQuery("hit_local")
	}
	resp := &graphql.Response{Data: data, Extensions: map[string]any{"cost": costs}}
	// The observer's own code, as gqlgen would run it around the response.
	ctx = graphql.WithOperationContext(ctx, rc)
	a.observer.InterceptOperation(ctx, func(ctx context.Context) graphql.ResponseHandler {
		return func(ctx context.Context) *graphql.Response {
			return a.observer.InterceptResponse(ctx, func(context.Context) *graphql.Response { return resp })
		}
	})(ctx)
	write(resp, false)
	return true, ctx
}

// persistedQuery returns the text of an automatic persisted query sent by its hash alone,
// as gqlgen's extension would find it, from this process's memory only; "" when p is no
// persisted query. false when the extension would do more (register a text sent with its
// hash), refuse it, or ask Redis.
func (a *cachedAnswers) persistedQuery(ctx context.Context, p *graphql.RawParams) (string, bool) {
	pq, ok := p.Extensions["persistedQuery"].(map[string]any)
	if !ok {
		return "", p.Extensions["persistedQuery"] == nil
	}
	hash, _ := pq["sha256Hash"].(string)
	if p.Query != "" || hash == "" || !versionOne(pq["version"]) {
		return "", false
	}
	return a.apq.local.Get(ctx, hash)
}

// versionOne reports whether v is the number 1 as a transport decodes it (a JSON number, or
// a float from a WebSocket message): what gqlgen's extension accepts, and no more.
func versionOne(v any) bool {
	switch v := v.(type) {
	case json.Number:
		return v == "1"
	case float64:
		return v == 1
	}
	return false
}
