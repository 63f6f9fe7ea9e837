// Package guard holds what protects the service from its callers: limits on an
// operation's shape and cost, rate limits kept in Redis, authentication, and the HTTP
// protections of the GraphQL endpoint.
package guard

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/shop/api/auth"
	"github.com/shop/api/graph"
	"github.com/shop/api/graph/model"
	"github.com/shop/api/live/delivery"
	"github.com/shop/api/store"
)

// Limits bound what one GraphQL operation may ask for. Each is checked before anything
// executes; a zero field means its default.
type Limits struct {
	// MaxDepth is the deepest nesting of fields (introspection fields not counted); default 15.
	MaxDepth int
	// MaxCost is the highest cost of an operation; default 10,000. See costModel.
	MaxCost int
	// MaxAliases is how many aliased fields an operation may have, counted through
	// fragments; default 30.
	MaxAliases int
	// MaxTokens is how many lexical tokens a document may have; default 10,000.
	MaxTokens int
	// MaxQueryBytes is the longest query text, at every transport; default 64 KiB. Comments
	// and whitespace are not tokens, so MaxTokens alone does not bound a text's size.
	MaxQueryBytes int
	// CachedDocumentBytes bounds the cache of parsed and validated documents by the bytes
	// their syntax trees hold (estimated from the text); default 32 MiB.
	CachedDocumentBytes int
}

// DefaultLimits are the limits used where Config.Limits leaves a field zero. A storefront's
// largest queries are a few KiB; 64 KiB is a sixteenth of the body limit.
var DefaultLimits = Limits{MaxDepth: 15, MaxCost: 10_000, MaxAliases: 30, MaxTokens: 10_000,
	MaxQueryBytes: 64 << 10, CachedDocumentBytes: 32 << 20}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxCost > 0 {
		d.MaxCost = l.MaxCost
	}
	if l.MaxAliases > 0 {
		d.MaxAliases = l.MaxAliases
	}
	if l.MaxTokens > 0 {
		d.MaxTokens = l.MaxTokens
	}
	if l.MaxQueryBytes > 0 {
		d.MaxQueryBytes = l.MaxQueryBytes
	}
	if l.CachedDocumentBytes > 0 {
		d.CachedDocumentBytes = l.CachedDocumentBytes
	}
	return d
}

// Costs of the model: every field costs 1 plus its children; a connection costs its page
// size (`first`, at most 100) times its children, per-order lists an estimate of their length,
// and mutations a fixed amount more for their writes.
const (
	costDefaultPage  = 20
	costMaxPage      = 100
	costOrderItems   = 10 // typical order lines (at most 50)
	costOrderHistory = 5  // typical status events of an order
	costMutation     = 10
	// bcrypt in signUp and logIn (~50 ms of a core): an anonymous address's 300,000 points a
	// minute buy ~590 of them, half a core, as 30,000 bought at 50 points before.
	costPasswordCheck = 500
	// A query registered as a persisted query (APQ) is stored for every process: it costs a
	// point per 16 bytes on top of running it, so that an address's budget buys
	// registrations at a bounded rate of bytes (300,000 points: under 5 MiB a minute), and
	// a client that registers once and then sends its hash pays this once.
	costRegisterBytesPerPoint = 16
	// __schema and __type answer from the whole schema (a full introspection, as GraphiQL
	// and code generators send it, writes ~100 KB): it costs as a full page of products,
	// where the complexity functions counted it nothing at all.
	costIntrospection = 1000
)

// CostModel returns the complexity functions of the schema's list fields and mutations.
func CostModel() graph.ComplexityRoot {
	var c graph.ComplexityRoot
	page := func(child int, first *int) int {
		n := costDefaultPage
		if first != nil {
			// A larger page is refused by the resolver (BAD_USER_INPUT) before it costs anything.
			n = min(max(*first, 0), costMaxPage)
		}
		return 1 + n*child
	}
	c.Query.Products = func(child int, first *int, _ *string, _ *model.ProductFilter, _ *model.ProductOrder) int {
		return page(child, first)
	}
	c.Query.Orders = func(child int, first *int, _ *string, _ *store.OrderStatus) int { return page(child, first) }
	c.User.Orders = func(child int, first *int, _ *string, _ *store.OrderStatus) int { return page(child, first) }
	c.User.Products = func(child int, first *int, _ *string) int { return page(child, first) }
	c.Order.Items = func(child int) int { return 1 + costOrderItems*child }
	c.Order.History = func(child int) int { return 1 + costOrderHistory*child }

	write := func(child int) int { return costMutation + child }
	c.Mutation.SignUp = func(child int, _ model.SignUpInput) int { return costPasswordCheck + child }
	c.Mutation.LogIn = func(child int, _ model.LogInInput) int { return costPasswordCheck + child }
	c.Mutation.ChangePassword = func(child int, _ model.ChangePasswordInput) int { return 2*costPasswordCheck + child }
	c.Mutation.CreateProduct = func(child int, _ model.CreateProductInput) int { return write(child) }
	c.Mutation.UpdateProduct = func(child int, _ model.UpdateProductInput) int { return write(child) }
	c.Mutation.PlaceOrder = func(child int, _ model.PlaceOrderInput) int { return write(child) }
	c.Mutation.CancelOrder = func(child int, _ string) int { return write(child) }
	c.Mutation.UpdateOrderStatus = func(child int, _ model.UpdateOrderStatusInput) int { return write(child) }
	return c
}

// Operations are the checks every GraphQL operation passes before it executes.
type Operations struct {
	limits Limits
	docs   *ByteCache[*ast.QueryDocument]
	budget *Budget
}

// docBytesPerByte is how many bytes a parsed document holds per byte of its text, measured
// on storefront queries (about 31); a text of comments holds less, so the estimate is high.
const docBytesPerByte = 32

// NewOperations returns the checks of limits, charging each operation's cost to budget
// (nil: no rate limit).
func NewOperations(limits Limits, budget *Budget) *Operations {
	limits = limits.withDefaults()
	docs := NewByteCache(limits.CachedDocumentBytes, func(query string, _ *ast.QueryDocument) int {
		return len(query) * (1 + docBytesPerByte)
	})
	return &Operations{limits: limits, docs: docs, budget: budget}
}

// Documents returns the cache of parsed and validated documents, shared by every request.
func (o *Operations) Documents() *ByteCache[*ast.QueryDocument] { return o.docs }

// MaxQueryBytes is the longest query text the shape limit lets through.
func (o *Operations) MaxQueryBytes() int { return o.limits.MaxQueryBytes }

// OperationCost returns the cost the cost limit computed for rc's operation (without what
// registering it as a persisted query added), false when it computed none.
func OperationCost(rc *graphql.OperationContext) (int, bool) {
	stats, ok := rc.Stats.GetExtension(costExtension).(*costStats)
	if !ok {
		return 0, false
	}
	return stats.Requested, true
}

// ChargeKnown admits an anonymous caller's query whose cost is already known (a cached
// response's: what the cost limit computed when it ran) as the cost limit would, without
// gqlgen: it charges the caller's bucket (from this process's lease of it when it can, as
// always), and leaves on rc and returns what extensions.cost reports. refused is the
// RATE_LIMITED error of a caller over budget, answered as the cost limit's (the response
// is marked 429). ok is false, and nothing is charged, when the cost is over this process's
// limit: the operation then goes the whole way, which refuses it.
func (o *Operations) ChargeKnown(ctx context.Context, rc *graphql.OperationContext, cost int) (ext any, refused *gqlerror.Error, ok bool) {
	if cost > o.limits.MaxCost || !auth.ViewerFrom(ctx).Anonymous() {
		return nil, nil, false
	}
	stats := &costStats{Requested: cost, Maximum: o.limits.MaxCost}
	rc.Stats.SetExtension(costExtension, stats)
	if o.budget != nil {
		stats.Throttle, refused = o.budget.chargeCost(ctx, cost)
	}
	return stats, refused, true
}

// Install refuses abusive operations before they execute: a document with too many
// tokens, aliases or too deep is refused before gqlgen validates it (validation itself is
// what such documents attack), one that costs too much right after validation. Every
// refusal is COMPLEXITY_LIMIT_EXCEEDED. The token limit is also set on gqlgen's parser
// (CVE-2023-49559) as a second line. use installs each extension on srv.
func (o *Operations) Install(srv *handler.Server, use func(graphql.HandlerExtension)) {
	srv.SetParserTokenLimit(o.limits.MaxTokens + 1)
	use(&shapeLimit{limits: o.limits, known: o.docs})
	use(&costLimit{budget: o.budget, max: o.limits.MaxCost})
}

// shapeLimit checks a document's tokens, depth and aliases before it is validated.
type shapeLimit struct {
	limits Limits
	known  *ByteCache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = &shapeLimit{}

func (*shapeLimit) ExtensionName() string                   { return "ShapeLimit" }
func (*shapeLimit) Validate(graphql.ExecutableSchema) error { return nil }
func (l *shapeLimit) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query == "" {
		return nil
	}
	if len(p.Query) > l.limits.MaxQueryBytes {
		return limitError("the document is %d bytes long, more than the limit of %d", len(p.Query), l.limits.MaxQueryBytes)
	}
	if _, ok := l.known.Get(ctx, p.Query); ok {
		return nil // parsed, validated and checked before
	}
	if n := countTokens(p.Query, l.limits.MaxTokens+1); n > l.limits.MaxTokens {
		return limitError("the document has more than %d tokens", l.limits.MaxTokens)
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: p.Query})
	if err != nil {
		return nil // gqlgen reports the syntax error with its own code
	}
	shape := measure(doc)
	if shape.depth > l.limits.MaxDepth {
		return limitError("the operation is %d fields deep, more than the limit of %d", shape.depth, l.limits.MaxDepth)
	}
	if shape.aliases > l.limits.MaxAliases {
		return limitError("the operation has %d aliases, more than the limit of %d", shape.aliases, l.limits.MaxAliases)
	}
	return nil
}

// countTokens returns the number of tokens in query, counting no further than stop.
// A lexical error ends the count: the parser will report it.
func countTokens(query string, stop int) int {
	lex := lexer.New(&ast.Source{Input: query})
	n := 0
	for n < stop {
		tok, err := lex.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			break
		}
		n++
	}
	return n
}

// shape is the depth and alias count of a document, fragments expanded where spread.
type shape struct{ depth, aliases int }

func measure(doc *ast.QueryDocument) shape {
	m := measurer{frags: map[string]*ast.FragmentDefinition{}, memo: map[string]shape{}, active: map[string]bool{}}
	for _, f := range doc.Fragments {
		m.frags[f.Name] = f
	}
	var out shape
	for _, op := range doc.Operations {
		sh := m.selections(op.SelectionSet)
		out.depth = max(out.depth, sh.depth)
		out.aliases = satAdd(out.aliases, sh.aliases)
	}
	return out
}

// measurer memoises each fragment's shape, so a fragment spread many times (or a chain of
// fragments spreading each other twice, which doubles at every step) is measured once.
type measurer struct {
	frags  map[string]*ast.FragmentDefinition
	memo   map[string]shape
	active map[string]bool
}

func (m *measurer) selections(set ast.SelectionSet) shape {
	var out shape
	for _, sel := range set {
		var sh shape
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Alias != "" && sel.Alias != sel.Name {
				sh.aliases = 1
			}
			if len(sel.Name) > 1 && sel.Name[:2] == "__" {
				// Introspection has its own depth rule (gqlparser's MaxIntrospectionDepth).
				sh.depth = 1
				break
			}
			child := m.selections(sel.SelectionSet)
			sh.depth = 1 + child.depth
			sh.aliases = satAdd(sh.aliases, child.aliases)
		case *ast.InlineFragment:
			sh = m.selections(sel.SelectionSet)
		case *ast.FragmentSpread:
			sh = m.fragment(sel.Name)
		}
		out.depth = max(out.depth, sh.depth)
		out.aliases = satAdd(out.aliases, sh.aliases)
	}
	return out
}

func (m *measurer) fragment(name string) shape {
	if sh, ok := m.memo[name]; ok {
		return sh
	}
	f, ok := m.frags[name]
	if !ok || m.active[name] {
		return shape{} // unknown or cyclic: validation refuses the document
	}
	m.active[name] = true
	sh := m.selections(f.SelectionSet)
	delete(m.active, name)
	m.memo[name] = sh
	return sh
}

func satAdd(a, b int) int {
	if c := a + b; c >= a {
		return c
	}
	return int(^uint(0) >> 1)
}

func limitError(format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	errcode.Set(err, CodeComplexityLimit)
	return err
}

// costLimit computes the cost of each validated operation with the schema's complexity
// functions, refuses it above the limit, and charges it to the caller's rate limit.
type costLimit struct {
	budget *Budget
	max    int
	es     graphql.ExecutableSchema

	mu    sync.Mutex
	costs map[*ast.OperationDefinition]int // see operationCost
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
	graphql.ResponseInterceptor
} = &costLimit{}

func (*costLimit) ExtensionName() string { return "CostLimit" }

func (c *costLimit) Validate(es graphql.ExecutableSchema) error {
	c.es = es
	return nil
}

// costStats is what extensions.cost reports.
type costStats struct {
	// Requested is the operation's cost.
	Requested int `json:"requested"`
	// Maximum is the cost limit of one operation.
	Maximum int `json:"maximum"`
	// Throttle is the caller's rate-limit budget after this operation; absent when rate
	// limiting is off or could not be checked.
	Throttle *throttleStatus `json:"throttle,omitempty"`
}

// Cost returns the operation's cost, for its trace span.
func (s *costStats) Cost() int { return s.Requested }

// AppendJSON appends s as json.Marshal writes it (MarshalJSON), without its reflection: a
// response's extensions are written around its data on every request (api's encodeResponse).
func (s *costStats) AppendJSON(b []byte) []byte {
	b = strconv.AppendInt(append(b, `{"requested":`...), int64(s.Requested), 10)
	b = strconv.AppendInt(append(b, `,"maximum":`...), int64(s.Maximum), 10)
	if t := s.Throttle; t != nil {
		b = strconv.AppendInt(append(b, `,"throttle":{"maximumAvailable":`...), int64(t.MaximumAvailable), 10)
		b = strconv.AppendInt(append(b, `,"currentlyAvailable":`...), int64(t.CurrentlyAvailable), 10)
		b = appendJSONFloat(append(b, `,"restoreRate":`...), t.RestoreRate)
		b = append(b, '}')
	}
	return append(b, '}')
}

func (s *costStats) MarshalJSON() ([]byte, error) { return s.AppendJSON(nil), nil }

// appendJSONFloat appends f as json.Marshal writes it: without an exponent but for the
// tiny and the huge, which it leaves to json.Marshal.
func appendJSONFloat(b []byte, f float64) []byte {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) || math.IsNaN(f) || math.IsInf(f, 0) {
		out, err := json.Marshal(f)
		if err != nil {
			return append(b, "null"...) // NaN or ±Inf: never a restore rate
		}
		return append(b, out...)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

const costExtension = "cost"

func (c *costLimit) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if opCtx.DisableIntrospection && introspects(opCtx.Operation.SelectionSet) {
		// Otherwise the executor fails the field with an uncoded error, shown as internal.
		err := gqlerror.Errorf("introspection is disabled")
		errcode.Set(err, errcode.ValidationFailed)
		return err
	}
	cost := c.operationCost(ctx, opCtx)
	if introspects(opCtx.Operation.SelectionSet) {
		cost += costIntrospection
	}
	stats := &costStats{Requested: cost, Maximum: c.max}
	opCtx.Stats.SetExtension(costExtension, stats)
	if cost > c.max {
		return limitError("the operation costs %d, more than the limit of %d", cost, c.max)
	}
	if c.budget == nil {
		return nil
	}
	if apq := extension.GetApqStats(ctx); apq != nil && apq.SentQuery {
		cost += len(opCtx.RawQuery) / costRegisterBytesPerPoint
	}
	var err *gqlerror.Error
	stats.Throttle, err = c.budget.chargeCost(ctx, cost)
	return err
}

// InterceptResponse adds extensions.cost to every response of an operation that was costed,
// and charges each event of a subscription its cost.
func (c *costLimit) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if graphql.HasOperationContext(ctx) {
		opCtx := graphql.GetOperationContext(ctx)
		if opCtx.Operation != nil && opCtx.Operation.Operation == ast.Subscription {
			return c.chargeEvent(ctx, opCtx, next)
		}
		if stats, ok := opCtx.Stats.GetExtension(costExtension).(*costStats); ok {
			graphql.RegisterExtension(ctx, costExtension, stats)
		}
	}
	return next(ctx)
}

// chargeEvent resolves a subscription's next event and charges it the operation's cost (its
// selection is resolved again for each event; the set-up was charged once, in
// MutateOperationContext): a subscription costs what its events cost, not only its start.
// When the caller's budget is spent the subscription ends with RATE_LIMITED: over a
// WebSocket with the operation's error message, over SSE with a last event carrying the
// error; no event is dropped silently. Most events are paid from the process's lease of
// the bucket, without a Redis round trip.
func (c *costLimit) chargeEvent(ctx context.Context, opCtx *graphql.OperationContext, next graphql.ResponseHandler) *graphql.Response {
	if refusedEvents(ctx) {
		return nil // the refusal was the stream's last response
	}
	resp := next(ctx)
	if resp == nil || c.budget == nil {
		return resp
	}
	if _, err := c.budget.chargeCost(ctx, c.operationCost(ctx, opCtx)); err != nil {
		if delivery.Fail(ctx, err) {
			return nil
		}
		markRefused(ctx)
		return &graphql.Response{Errors: gqlerror.List{err}}
	}
	return resp
}

// operationCost is an operation's cost, computed once per document and operation when it
// has no variables, else each time: for a subscription each event (it keeps none of its
// set-up's statistics, see observe.operationObserver: memory per watching phone), and for a
// query without variables, such as a storefront's, each request (walking the selection was
// 3% of its CPU).
func (c *costLimit) operationCost(ctx context.Context, opCtx *graphql.OperationContext) int {
	if len(opCtx.Variables) > 0 {
		return complexity.Calculate(ctx, c.es, opCtx.Operation, opCtx.Variables)
	}
	c.mu.Lock()
	cost, ok := c.costs[opCtx.Operation]
	c.mu.Unlock()
	if ok {
		return cost
	}
	cost = complexity.Calculate(ctx, c.es, opCtx.Operation, nil)
	c.mu.Lock()
	if c.costs == nil || len(c.costs) >= maxCostMemo {
		c.costs = map[*ast.OperationDefinition]int{} // bounded: most operations share a few documents
	}
	c.costs[opCtx.Operation] = cost
	c.mu.Unlock()
	return cost
}

const maxCostMemo = 1024

// A subscription refused over a transport that cannot be told to end it (SSE) answers once
// with the refusal and then ends: the mark is kept in the context WithEventRefusal made for
// the stream.
type refusedKey struct{}

// WithEventRefusal returns ctx with room to mark its subscription refused (see chargeEvent):
// the SSE transport's request context.
func WithEventRefusal(ctx context.Context) context.Context {
	return context.WithValue(ctx, refusedKey{}, new(atomic.Bool))
}

func markRefused(ctx context.Context) {
	if b, ok := ctx.Value(refusedKey{}).(*atomic.Bool); ok {
		b.Store(true)
	}
}

func refusedEvents(ctx context.Context) bool {
	b, ok := ctx.Value(refusedKey{}).(*atomic.Bool)
	return ok && b.Load()
}

// introspects reports whether a root selection asks for __schema or __type.
func introspects(set ast.SelectionSet) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Name == "__schema" || sel.Name == "__type" {
				return true
			}
		case *ast.InlineFragment:
			if introspects(sel.SelectionSet) {
				return true
			}
		case *ast.FragmentSpread:
			if sel.Definition != nil && introspects(sel.Definition.SelectionSet) {
				return true
			}
		}
	}
	return false
}
