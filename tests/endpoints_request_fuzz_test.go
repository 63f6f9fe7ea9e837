package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// fuzzContentTypes are the Content-Type headers the decoder fuzz target sends.
var fuzzContentTypes = []string{"application/json", "application/json; charset=utf-8", "application/graphql-response+json", "text/plain", ""}

// FuzzGraphQLRequest POSTs arbitrary bytes to the real /graphql handler of an embedded
// service: whatever the body, the answer is never a 5xx or a panic, and it is always JSON.
// The seeds cover the shapes clients send (queries, variables, operation names, batches,
// persisted-query extensions) and typical malformations.
func FuzzGraphQLRequest(f *testing.F) {
	seeds := []string{
		`{"query":"{ products(first: 2) { totalCount nodes { id name price { amount currency } } } }"}`,
		`{"query":"query($id: ID!) { node(id: $id) { id } }","variables":{"id":"UHJvZHVjdDox"}}`,
		`{"query":"query A { me { id } } query B { orders { totalCount } }","operationName":"B"}`,
		`{"query":"mutation($in: SignUpInput!) { signUp(input: $in) { token userErrors { code field } } }","variables":{"in":{"email":"f@example.com","name":"F","password":"password1"}}}`,
		`{"query":"mutation { placeOrder(input: {items: [{productId: \"x\", quantity: 1}]}) { userErrors { code } } }"}`,
		`{"query":"{ products(first: 101) { totalCount } }"}`,
		`{"query":"{ products(after: \"eyJvIjoiUFJJQ0U6QVNDIiwiaSI6MSwicyI6IngifQ\", orderBy: {field: PRICE, direction: ASC}) { totalCount } }"}`,
		`{"query":"{ products(filter: {minPrice: 99999999999}) { totalCount } }"}`,
		`{"query":"query($n: Int) { products(first: $n) { totalCount } }","variables":{"n":1e100}}`,
		`{"query":"{ __schema { types { name } } }"}`,
		`{"query":"subscription { myOrderEvents { id } }"}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`,
		`[{"query":"{ me { id } }"},{"query":"{ me { id } }"}]`,
		`{"query":"{ products { totalCount `,
		`{"query":123}`,
		`{"query":"{ me { id } }","variables":"not an object"}`,
		`{"query":"{ me { id } }","variables":{"a":{"b":{"c":[[[[[]]]]]}}}}`,
		`null`,
		``,
		`{`,
		"\x00\xff\xfe",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i%len(fuzzContentTypes)))
	}
	dir := f.TempDir()
	svc, err := startService(context.Background(), config{
		SQLitePath: filepath.Join(dir, "shop.db"), JWTSecret: []byte("fuzz-secret-of-at-least-32-bytes!!"),
		PasswordCost: 4, Playground: true, Introspection: true,
	}, nil)
	if err != nil {
		f.Fatalf("start service: %v", err)
	}
	f.Cleanup(svc.Close)
	handler := svc.Handler()
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %.300s", rec.Code, body, rec.Body.Bytes())
		}
		if rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("status %d, body not JSON for request %q: %.300s", rec.Code, body, rec.Body.Bytes())
		}
	})
}
