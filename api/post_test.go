package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// writeResponse writes what json.Marshal of the response would, without re-encoding data.
func TestWriteResponseIsJSONMarshal(t *testing.T) {
	yes := true
	for name, resp := range map[string]*graphql.Response{
		"data":        {Data: json.RawMessage(`{"products":{"nodes":[{"name":"<Kettle> & \u2028"}]}}`)},
		"errors only": {Errors: gqlerror.List{{Message: "boom", Extensions: map[string]any{"code": "INTERNAL_SERVER_ERROR", "data": nil}}}},
		"data, errors and extensions": {Data: json.RawMessage(`{"me":null}`),
			Errors:     gqlerror.List{{Message: "no", Path: ast.Path{ast.PathName("me")}}},
			Extensions: map[string]any{"cost": map[string]any{"requested": 3}}},
		"extensions appended": {Data: json.RawMessage(`{"a":1}`), Extensions: map[string]any{"cost": appended(`{"requested":3}`)}},
		"incremental":         {Data: json.RawMessage(`{"a":1}`), Label: "l", Path: ast.Path{ast.PathName("x"), ast.PathIndex(2)}, HasNext: &yes},
		"nothing":             {},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			writeResponse(&buf, resp)
			want, err := json.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			var got, exp any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("not JSON: %s: %v", buf.Bytes(), err)
			}
			_ = json.Unmarshal(want, &exp)
			if !reflect.DeepEqual(got, exp) {
				t.Fatalf("wrote %s\nwant  %s", buf.Bytes(), want)
			}
		})
	}
}

// appended is a jsonAppender, as the cost limit's extension is.
type appended string

func (a appended) AppendJSON(b []byte) []byte   { return append(b, a...) }
func (a appended) MarshalJSON() ([]byte, error) { return []byte(a), nil }

func TestResponseContentType(t *testing.T) {
	for accept, want := range map[string]string{
		"":                                  "application/json",
		"*/*":                               "application/json",
		"application/json":                  "application/json",
		"application/graphql-response+json": graphQLResponseJSON,
		"application/graphql-response+json, application/json;q=0.9": graphQLResponseJSON,
		"text/html":            graphQLResponseJSON,
		"bad;;, application/*": "application/json",
	} {
		if got := responseContentType(accept); got != want {
			t.Errorf("Accept %q: %s, want %s", accept, got, want)
		}
	}
}
