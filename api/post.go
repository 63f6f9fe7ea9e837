package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/api/respcache"
)

// post is gqlgen's POST transport (transport.POST with its defaults: the same content types,
// status codes and errors) writing each response without encoding its data again. gqlgen
// writes a response with json.Marshal, which validates and compacts the data its executor
// has just written as compact JSON: 4% of a storefront read's CPU, and a copy of the body.
type post struct {
	transport.POST
	cached *cachedAnswers // nil: no response cache
}

func (p post) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	contentType := responseContentType(r.Header.Get("Accept"))
	w.Header()["Content-Type"] = contentTypes[contentType]
	start := graphql.Now()
	body, ok := guard.Body(r)
	var err error
	if !ok {
		body, err = io.ReadAll(r.Body)
	}
	if err != nil {
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf("could not read request body: %+v", err)}))
		return
	}
	params, err := decodeParams(body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{undecodable(err)}))
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	var answered bool
	if answered, ctx = p.cached.answer(ctx, exec, &params, func(resp *graphql.Response, _ bool) { writeSized(w, resp) }); answered {
		return
	}
	rc, opErr := exec.CreateOperationContext(ctx, &params)
	if opErr != nil {
		status := http.StatusOK
		if errcode.GetErrorKind(opErr) == errcode.KindProtocol {
			status = http.StatusUnprocessableEntity
			if contentType == graphQLResponseJSON {
				status = http.StatusBadRequest
			}
		}
		w.WriteHeader(status)
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), opErr))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeSized(w, orEnded(ctx, exec, responses(ctx)))
}

// orEnded is resp, or when gqlgen answered nil, its end of a stream, an error response:
// gqlgen answers nil when the request's context ended before the operation ran (the client
// left, or the request's deadline passed while it waited), and its own transports then
// send a body of null, which is no GraphQL response.
func orEnded(ctx context.Context, exec graphql.GraphExecutor, resp *graphql.Response) *graphql.Response {
	if resp != nil {
		return resp
	}
	return exec.DispatchError(ctx, gqlerror.List{{Message: "the request ended before its operation ran", Err: context.Cause(ctx)}})
}

// get is gqlgen's GET transport answering a request that ended before its operation ran
// with an error, as post does. A persisted query (sent without its text) whose answer the
// response cache found public as a whole carries Cache-Control, so a CDN may serve it, and
// Vary: Authorization, so a shared cache never gives it to a signed-in caller.
type get struct {
	transport.GET
	cache  *respcache.Cache
	cached *cachedAnswers // nil: no response cache
}

func (g get) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	e := ended{GraphExecutor: exec}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if g.cache != nil && err == nil && !query.Has("query") {
		e.w, e.cache = w, g.cache
	}
	if err == nil && g.cached != nil {
		if answered, ctx := g.answer(w, r, exec, query, e.cache != nil); answered {
			return
		} else if ctx != r.Context() {
			r = r.WithContext(ctx)
		}
	}
	g.GET.Do(w, r, e)
}

// answer answers a GET from the response cache as the transport would answer it (see
// cachedAnswers), with the Cache-Control of a persisted query when public is set.
func (g get) answer(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, query url.Values, public bool) (bool, context.Context) {
	start := graphql.Now()
	params := graphql.RawParams{Query: query.Get("query"), OperationName: query.Get("operationName"), Headers: r.Header}
	for name, v := range map[string]*map[string]any{"variables": &params.Variables, "extensions": &params.Extensions} {
		if s := query.Get(name); s != "" {
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber()
			if dec.Decode(v) != nil {
				return false, r.Context() // the transport refuses it
			}
		}
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	return g.cached.answer(r.Context(), exec, &params, func(resp *graphql.Response, refused bool) {
		// The transport writes what json.Marshal writes (which escapes <, > and & in data).
		b, err := json.Marshal(resp)
		if err != nil {
			writeInternalError(w)
			return
		}
		h := w.Header()
		h.Set("Content-Type", responseContentType(r.Header.Get("Accept")))
		if refused {
			w.WriteHeader(http.StatusOK) // guard's writer makes it 429
			_, _ = w.Write(b)
			return
		}
		if public {
			h.Set("Cache-Control", g.cache.PublicCacheControl())
			h.Add("Vary", "Authorization")
		}
		h.Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	})
}

// ended is an executor whose single response is never nil (see orEnded); with w, it sets
// the response cache's headers on w before the response is written.
type ended struct {
	graphql.GraphExecutor
	w     http.ResponseWriter
	cache *respcache.Cache
}

func (e ended) DispatchOperation(ctx context.Context, rc *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	responses, ctx := e.GraphExecutor.DispatchOperation(ctx, rc)
	return func(ctx context.Context) *graphql.Response {
		resp := orEnded(ctx, e.GraphExecutor, responses(ctx))
		if cc, ok := e.cache.CacheControl(rc, resp); ok && e.w != nil {
			e.w.Header().Set("Cache-Control", cc)
			e.w.Header().Add("Vary", "Authorization")
		}
		return resp
	}, ctx
}

const graphQLResponseJSON = "application/graphql-response+json"

// contentTypes are the values of Content-Type responseContentType returns, shared by every
// response as guard's security headers are (a value is replaced or copied, never written).
var contentTypes = map[string][]string{"application/json": {"application/json"}, graphQLResponseJSON: {graphQLResponseJSON}}

// responseContentType is what the client's Accept header asks for, as gqlgen decides it:
// application/json unless it names application/graphql-response+json first, or names
// neither nor a wildcard.
func responseContentType(accept string) string {
	if accept == "" {
		return "application/json"
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", "application/json":
			return "application/json"
		case graphQLResponseJSON:
			return graphQLResponseJSON
		}
	}
	return graphQLResponseJSON
}

// writeResponse writes resp as json.Marshal would, with its data as the executor wrote it.
func writeResponse(w io.Writer, resp *graphql.Response) {
	buf, pooled, ok := encodeResponse(resp)
	if !ok {
		writeInternalError(w)
		return
	}
	_, _ = w.Write(buf)
	releaseResponse(pooled, buf)
}

// writeSized writes resp with its Content-Length, before anything else is written: one
// write of the body, where a body without a length (over net/http's 2 KiB buffer) is sent
// chunked, whose last chunk costs a system call of its own. guard's writer may change the
// status (429), never the body, of a response whose status was not written before.
func writeSized(w http.ResponseWriter, resp *graphql.Response) {
	buf, pooled, ok := encodeResponse(resp)
	if !ok {
		writeInternalError(w)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	_, _ = w.Write(buf)
	releaseResponse(pooled, buf)
}

// encodeResponse returns resp as json.Marshal would write it, with its data as the executor
// wrote it, in a pooled buffer (releaseResponse gives it back); false when resp's errors
// or extensions do not marshal.
func encodeResponse(resp *graphql.Response) (buf []byte, pooled *[]byte, ok bool) {
	var head, tail []byte
	var err error
	if len(resp.Errors) > 0 {
		if head, err = json.Marshal(resp.Errors); err != nil {
			return nil, nil, false
		}
	}
	key, ext := soleExtension(resp)
	if ext == nil && (resp.Label != "" || resp.Path != nil || resp.HasNext != nil || len(resp.Extensions) > 0) {
		rest := struct {
			Label      string         `json:"label,omitempty"`
			Path       ast.Path       `json:"path,omitempty"`
			HasNext    *bool          `json:"hasNext,omitempty"`
			Extensions map[string]any `json:"extensions,omitempty"`
		}{resp.Label, resp.Path, resp.HasNext, resp.Extensions}
		if tail, err = json.Marshal(rest); err != nil {
			return nil, nil, false
		}
	}
	// {"errors":…,"data":…,…}: the data goes in as it is, the rest around it, and out in one
	// write (guard's response writer reworks a request error's body as a whole), from a
	// pooled buffer: a Writer keeps nothing of what it is given.
	pooled = responseBuffers.Get().(*[]byte)
	buf = slices.Grow((*pooled)[:0], len(head)+len(resp.Data)+len(tail)+16)
	buf = append(buf, '{')
	if head != nil {
		buf = append(append(append(buf, `"errors":`...), head...), ',')
	}
	buf = append(buf, `"data":`...)
	if len(resp.Data) == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, resp.Data...)
	}
	if ext != nil {
		buf = append(append(append(buf, `,"extensions":{"`...), key...), `":`...)
		buf = append(ext.AppendJSON(buf), '}')
	} else if len(tail) > 2 { // not {}
		buf = append(append(buf, ','), tail[1:len(tail)-1]...)
	}
	return append(buf, '}'), pooled, true
}

// jsonAppender appends itself as json.Marshal writes it (the cost extension).
type jsonAppender interface{ AppendJSON([]byte) []byte }

// soleExtension returns resp's one extension when nothing but extensions follows the data,
// its value appends itself and its key is a plain name (as every response's extensions.cost):
// encodeResponse appends it without json's reflection. ext is nil otherwise.
func soleExtension(resp *graphql.Response) (key string, ext jsonAppender) {
	if resp.Label != "" || resp.Path != nil || resp.HasNext != nil || len(resp.Extensions) != 1 {
		return "", nil
	}
	for k, v := range resp.Extensions {
		if a, ok := v.(jsonAppender); ok && plainName(k) {
			return k, a
		}
	}
	return "", nil
}

// plainName reports whether json writes s as it is between quotes: letters, digits, _.
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_') {
			return false
		}
	}
	return true
}

// releaseResponse gives encodeResponse's buffer back.
func releaseResponse(pooled *[]byte, buf []byte) {
	if cap(buf) <= maxPooledResponse {
		*pooled = buf[:0]
		responseBuffers.Put(pooled)
	}
}

// maxPooledResponse bounds the buffers kept for responses: a rare huge one is left to the GC.
const maxPooledResponse = 1 << 20

var responseBuffers = sync.Pool{New: func() any { return new([]byte) }}

func writeInternalError(w io.Writer) {
	_, _ = io.WriteString(w, `{"errors":[{"message":"internal system error"}],"data":null}`)
}

// decodeParams decodes a request body as gqlgen's transports do (numbers kept as written).
func decodeParams(body []byte) (graphql.RawParams, error) {
	var params graphql.RawParams
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := dec.Decode(&params)
	return params, err
}

// undecodable is the error of a request body that is not a GraphQL request. It never
// quotes the body, which gqlgen's transports do (in the response and, for SSE, the log):
// a malformed logIn carries a password.
func undecodable(err error) *gqlerror.Error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return gqlerror.Errorf("json request body could not be decoded: invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return gqlerror.Errorf("json request body could not be decoded: %s must be %s", cmp.Or(typ.Field, "the body"), typ.Type)
	}
	return gqlerror.Errorf("json request body could not be decoded")
}
