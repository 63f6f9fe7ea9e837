package guard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/rs/cors"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/shop/api/auth"
)

// HTTPConfig configures the HTTP protections of the GraphQL endpoint.
type HTTPConfig struct {
	// RequestTimeout bounds every request but subscriptions; 0 means 15s.
	RequestTimeout time.Duration
	// MaxBodyBytes caps request bodies (413 beyond); 0 means 1 MiB.
	MaxBodyBytes int64
	// CORSOrigins are the browser origins allowed to call /graphql ("*" for any).
	CORSOrigins []string
	// TrustedProxies are the networks of the service's own reverse proxies. A request whose
	// peer is in one of them is attributed to the right-most X-Forwarded-For address outside
	// them; none (the default) means the peer is always the client.
	TrustedProxies []netip.Prefix
	// Production adds Strict-Transport-Security.
	Production bool
}

func (c HTTPConfig) withDefaults() HTTPConfig {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 15 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	return c
}

// HTTP holds the HTTP-level protections of the GraphQL endpoint, as middleware.
type HTTP struct{ cfg HTTPConfig }

// NewHTTP returns the protections configured by cfg.
func NewHTTP(cfg HTTPConfig) *HTTP { return &HTTP{cfg: cfg.withDefaults()} }

// Protect applies what every request to the endpoint gets, outermost first: security
// headers; CORS for the configured origins only; POST bodies must be JSON (a form or
// text/plain post is what a cross-site request forgery can send without a preflight), and
// at most MaxBodyBytes; and the client's address for rate limits.
func (p *HTTP) Protect(next http.Handler) http.Handler {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !jsonContentType(r.Header.Get("Content-Type")) {
			WriteError(w, http.StatusUnsupportedMediaType, CodeBadUserInput,
				"POST requests must have Content-Type: application/json")
			return
		}
		if !p.limitBody(w, r) {
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey{}, clientAddr(r, p.cfg.TrustedProxies))))
	})
	var handler http.Handler = h
	if len(p.cfg.CORSOrigins) > 0 {
		// Without configured origins no CORS header is sent at all: browsers then refuse
		// cross-origin reads, and preflights fail, as they should.
		handler = cors.New(cors.Options{
			AllowedOrigins: p.cfg.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost},
			AllowedHeaders: []string{"Authorization", "Content-Type", "Accept", "X-Request-Id"},
			ExposedHeaders: []string{"X-Request-Id", "Retry-After"},
			MaxAge:         600,
		}).Handler(h)
	}
	production := p.cfg.Production
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		for _, h := range securityHeaders {
			if h.production && !production {
				continue
			}
			hd[h.key] = h.value
		}
		handler.ServeHTTP(w, r)
	})
}

// securityHeaders are the headers Protect sets on every response, the last in production
// only.
var securityHeaders = []sharedHeader{
	shared("X-Content-Type-Options", "nosniff", false),
	shared("X-Frame-Options", "DENY", false),
	shared("Referrer-Policy", "no-referrer", false),
	shared("Cache-Control", "no-store", false),
	// The endpoint serves data, never a page: nothing may load or frame it as one.
	shared("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'", false),
	shared("Strict-Transport-Security", "max-age=63072000; includeSubDomains", true),
}

// sharedHeader is a header whose value every response shares (no allocation each), which
// is safe: net/http and every handler here replace a value (Set) or append to it (Add, which
// copies a slice at full capacity), never write into it.
type sharedHeader struct {
	key        string
	value      []string
	production bool
}

func shared(key, value string, production bool) sharedHeader {
	return sharedHeader{http.CanonicalHeaderKey(key), []string{value}[:1:1], production}
}

// jsonContentType reports whether a POST's Content-Type is JSON.
func jsonContentType(ct string) bool {
	if ct == "application/json" { // the usual one, without parsing it
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// Bounded applies what a request that is not a WebSocket gets: a deadline, unless it opens
// a stream of server-sent events (which lives as long as the client wants), and the status
// and Retry-After of a rate-limited operation. A stream's operations that are not
// subscriptions get their deadline from OperationDeadline: what is exempt is decided by
// the operation, not by the Accept header a caller chose.
func (p *HTTP) Bounded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			// The stream lives no longer than the token it was opened with.
			if exp := auth.ExpiresAt(r.Context()); !exp.IsZero() {
				ctx, cancel := context.WithDeadline(r.Context(), exp)
				defer cancel()
				r = r.WithContext(ctx)
			}
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), p.cfg.RequestTimeout)
		defer cancel()
		hw := &hintedWriter{ResponseWriter: w}
		ctx = context.WithValue(ctx, httpHintsKey{}, &hw.hints)
		next.ServeHTTP(hw, r.WithContext(ctx))
	})
}

// OperationDeadline gives every operation but a subscription RequestTimeout, whatever
// transport carries it: a query sent over a stream of server-sent events or a WebSocket,
// which have no deadline of their own.
func (p *HTTP) OperationDeadline() graphql.HandlerExtension {
	return operationDeadline{p.cfg.RequestTimeout}
}

type operationDeadline struct{ timeout time.Duration }

var _ graphql.ResponseInterceptor = operationDeadline{}

func (operationDeadline) ExtensionName() string                   { return "OperationDeadline" }
func (operationDeadline) Validate(graphql.ExecutableSchema) error { return nil }

func (d operationDeadline) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if _, ok := ctx.Deadline(); ok || !graphql.HasOperationContext(ctx) {
		return next(ctx)
	}
	if op := graphql.GetOperationContext(ctx).Operation; op == nil || op.Operation == ast.Subscription {
		return next(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return next(ctx)
}

// IsWebSocket reports whether r asks to upgrade to a WebSocket.
func IsWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// WriteError writes a GraphQL response with one error of code, for requests refused before
// GraphQL runs.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"errors":[{"message":` + strconv.Quote(msg) + `,"extensions":{"code":"` + code + `"}}]}`))
}

// limitBody refuses a body over MaxBodyBytes with 413, before anything parses it, and
// reports whether the request may go on.
func (p *HTTP) limitBody(w http.ResponseWriter, r *http.Request) bool {
	limit := p.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		tooLarge(w)
		return false
	}
	if r.Body != nil && r.Body != http.NoBody {
		// Bodies without a length (chunked) are read up to the limit here, within the
		// request's time: a body sent a byte a minute would hold its goroutine and buffer
		// for ever. The deadline goes once the body is in (net/http's read of a closed
		// connection would otherwise end a long stream when it passes).
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(p.cfg.RequestTimeout))
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			// Closed, not drained: the rest of a slow body is not waited for.
			w.Header().Set("Connection", "close")
			http.Error(w, "could not read the request body", http.StatusBadRequest)
			return false
		}
		_ = rc.SetReadDeadline(time.Time{})
		if int64(len(body)) > limit {
			tooLarge(w)
			return false
		}
		wb := &wholeBody{whole: body}
		wb.Reset(body)
		r.Body = wb
	}
	return true
}

// wholeBody is a request body limitBody read whole.
type wholeBody struct {
	bytes.Reader
	whole []byte
}

func (*wholeBody) Close() error { return nil }

// Body returns r's body when Protect read it whole and nothing has read it since, so that
// a transport need not copy it again (read only); false otherwise.
func Body(r *http.Request) ([]byte, bool) {
	if b, ok := r.Body.(*wholeBody); ok && b.Len() == len(b.whole) {
		return b.whole, true
	}
	return nil, false
}

func tooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	WriteError(w, http.StatusRequestEntityTooLarge, CodeBadUserInput, "request body too large")
}

type clientIPKey struct{}

// ClientIP returns the caller's IP address as Protect determined it (see clientAddr), ""
// outside a request.
func ClientIP(ctx context.Context) string {
	ip, _ := ctx.Value(clientIPKey{}).(string)
	return ip
}

// CarryClientIP returns dst carrying the caller's IP address of src.
func CarryClientIP(dst, src context.Context) context.Context {
	if ip := ClientIP(src); ip != "" {
		return context.WithValue(dst, clientIPKey{}, ip)
	}
	return dst
}

// httpHints carry what the GraphQL layer wants of the HTTP response, which it cannot write
// itself: gqlgen's transports own the ResponseWriter.
type httpHints struct {
	mu         sync.Mutex
	status     int
	retryAfter int
}

type httpHintsKey struct{}

// markRateLimited makes the request's response 429 with Retry-After: secs.
func markRateLimited(ctx context.Context, secs int) {
	if h, ok := ctx.Value(httpHintsKey{}).(*httpHints); ok {
		h.mu.Lock()
		h.status, h.retryAfter = http.StatusTooManyRequests, secs
		h.mu.Unlock()
	}
}

// hintedWriter applies httpHints when the response's header is written, and makes request
// errors follow the GraphQL over HTTP spec where gqlgen does not.
type hintedWriter struct {
	http.ResponseWriter
	hints   httpHints
	written bool
	// dropNullData removes "data": null from a request error's body: with
	// application/graphql-response+json a request error has no data entry at all.
	dropNullData bool
}

func (w *hintedWriter) WriteHeader(code int) {
	if !w.written {
		w.written = true
		w.hints.mu.Lock()
		status, retry := w.hints.status, w.hints.retryAfter
		w.hints.mu.Unlock()
		switch {
		case status != 0:
			code = status
			w.Header().Set("Retry-After", strconv.Itoa(retry))
		case code == http.StatusUnprocessableEntity && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json"):
			// GraphQL over HTTP: a client that accepts only application/json gets request
			// errors (parse, validation, variables) with 200; gqlgen answers 422.
			code = http.StatusOK
		case code >= 400 && code < 500 && strings.HasPrefix(w.Header().Get("Content-Type"), "application/graphql-response+json"):
			w.dropNullData = true
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hintedWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	if w.dropNullData {
		// gqlgen writes the whole response in one call.
		var resp map[string]json.RawMessage
		if json.Unmarshal(b, &resp) == nil && string(resp["data"]) == "null" {
			delete(resp, "data")
			if out, err := json.Marshal(resp); err == nil {
				if _, err := w.ResponseWriter.Write(out); err != nil {
					return 0, err
				}
				return len(b), nil
			}
		}
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes, deadlines).
func (w *hintedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *hintedWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *hintedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hj, ok := w.ResponseWriter.(http.Hijacker); ok {
		return hj.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}
