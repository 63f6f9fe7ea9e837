package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/auth"
	"github.com/shop/api/store"
)

// rawResponse is an HTTP response whose body may not be GraphQL.
type rawResponse struct {
	Status int
	Body   []byte
}

// gql decodes the body as a GraphQL response, failing the test when it is not one.
func (r rawResponse) gql(t *testing.T) gqlResponse {
	t.Helper()
	var out gqlResponse
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("status %d, body not JSON: %.300s", r.Status, r.Body)
	}
	out.Status = r.Status
	return out
}

// send sends req to the test server and reads the whole response.
func (e *testEnv) send(req *http.Request) rawResponse {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return rawResponse{Status: resp.StatusCode, Body: body}
}

// postBody POSTs body to /graphql with an optional Authorization header value.
func (e *testEnv) postBody(body io.Reader, authorization string) rawResponse {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", body)
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return e.send(req)
}

// productsNamed returns how many products have name in their name or description.
func (e *testEnv) productsNamed(name string) int {
	e.t.Helper()
	var out struct{ Products struct{ TotalCount int } }
	e.anon().must(`query($s: String) { products(filter: {search: $s}) { totalCount } }`, map[string]any{"s": name}, &out)
	return out.Products.TotalCount
}

// TestInvalidTokens checks that a malformed, forged or expired token is refused with HTTP
// 401 and UNAUTHENTICATED before anything runs: a mutation sent with it creates nothing,
// even though the token names a merchant who could create products.
func TestInvalidTokens(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant := env.signUp("MERCHANT")
		user, err := env.svc.Store.Authenticate(context.Background(), merchant.Email, "password123")
		if err != nil {
			t.Fatalf("authenticate: %v", err)
		}
		secret := []byte("test-secret-of-at-least-32-bytes!!") // the harness's
		forged, _ := auth.NewTokens([]byte("some-other-secret-of-32-bytes!!!!"), time.Hour).Issue(user)
		expired, _ := auth.NewTokens(secret, -time.Minute).Issue(user)
		asAdmin, _ := auth.NewTokens([]byte("x"), time.Hour).Issue(store.User{ID: user.ID, Role: store.RoleAdmin})
		parts := strings.Split(merchant.Token, ".")
		claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(claims, []byte("MERCHANT"), []byte("ADMIN"), 1)) + "." + parts[2]
		unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
		type tokenCase struct{ name, header string }
		cases := []tokenCase{
			{"garbage", "Bearer garbage"},
			{"three garbage parts", "Bearer a.b.c"},
			{"empty bearer", "Bearer "},
			{"bearer alone", "Bearer"},
			{"other scheme", "Basic " + merchant.Token},
			{"token without scheme", merchant.Token},
			{"forged", "Bearer " + forged},
			{"forged admin", "Bearer " + asAdmin},
			{"tampered claims", "Bearer " + tampered},
			{"alg none", "Bearer " + unsigned},
			{"expired", "Bearer " + expired},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				name := "Forbidden " + strings.ReplaceAll(c.name, " ", "-")
				body, _ := json.Marshal(map[string]any{"query": opCreateProduct,
					"variables": map[string]any{"in": map[string]any{"name": name, "price": 1, "stock": 1}}})
				r := env.postBody(bytes.NewReader(body), c.header)
				g := r.gql(t)
				if r.Status != http.StatusUnauthorized || g.Code() != "UNAUTHENTICATED" || len(g.Data) != 0 && string(g.Data) != "null" {
					t.Fatalf("status %d, body %s; want 401 UNAUTHENTICATED without data", r.Status, r.Body)
				}
				if n := env.productsNamed(name); n != 0 {
					t.Fatalf("the mutation ran: %d products named %q", n, name)
				}
				q := env.postBody(strings.NewReader(`{"query":"{ me { id } }"}`), c.header)
				if q.Status != http.StatusUnauthorized || q.gql(t).Code() != "UNAUTHENTICATED" {
					t.Fatalf("query: status %d, body %s", q.Status, q.Body)
				}
			})
		}
		t.Run("valid token", func(t *testing.T) {
			env.createProduct(merchant, "Allowed", 1, 1)
			if n := env.productsNamed("Allowed"); n != 1 {
				t.Fatalf("%d products named Allowed", n)
			}
		})
	})
}

// TestGETRunsQueriesOnly checks that GET /graphql runs queries (with variables) and never a
// mutation, even one the caller may run.
func TestGETRunsQueriesOnly(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant := env.signUp("MERCHANT")
		product := env.createProduct(merchant, "Gettable", 1200, 3)
		get := func(params url.Values, token string) rawResponse {
			req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/graphql?"+params.Encode(), nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			return env.send(req)
		}
		r := get(url.Values{"query": {`query($id: ID!) { product(id: $id) { name stock } }`}, "variables": {`{"id":"` + product + `"}`}}, "")
		var out struct{ Product struct{ Name string } }
		if g := r.gql(t); r.Status != http.StatusOK || len(g.Errors) > 0 {
			t.Fatalf("GET query: status %d, body %s", r.Status, r.Body)
		} else if g.Decode(t, &out); out.Product.Name != "Gettable" {
			t.Fatalf("GET query: %s", r.Body)
		}
		type getMutation struct{ name, query string }
		for _, c := range []getMutation{
			{"mutation", `mutation { createProduct(input: {name: "Via GET", price: 1, stock: 1}) { product { id } } }`},
			{"mutation among queries", `query Q { me { id } } mutation M { createProduct(input: {name: "Via GET", price: 1, stock: 1}) { product { id } } }`},
		} {
			t.Run(c.name, func(t *testing.T) {
				params := url.Values{"query": {c.query}}
				if strings.Contains(c.query, "query Q") {
					params.Set("operationName", "M")
				}
				r := get(params, merchant.Token)
				if r.Status == http.StatusOK && !bytes.Contains(r.Body, []byte(`"errors"`)) {
					t.Fatalf("GET mutation answered %d %s", r.Status, r.Body)
				}
				if r.Status >= 500 {
					t.Fatalf("GET mutation answered %d", r.Status)
				}
				if n := env.productsNamed("Via GET"); n != 0 {
					t.Fatalf("GET ran a mutation: %d products created", n)
				}
			})
		}
	})
}

// TestBodyLimit checks that a request body over 1 MiB is refused with HTTP 413, whether or
// not the client declares its length, and that a body of exactly 1 MiB is served.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		// padded returns a valid request of exactly n bytes (whitespace inside the JSON).
		padded := func(n int) []byte {
			head, tail := `{"query":"{ products(first: 1) { totalCount } }"`, `}`
			return []byte(head + strings.Repeat(" ", n-len(head)-len(tail)) + tail)
		}
		const mib = 1 << 20
		type bodyCase struct {
			name    string
			size    int
			chunked bool
			want    int
		}
		for _, c := range []bodyCase{
			{"exactly 1 MiB", mib, false, http.StatusOK},
			{"1 MiB and a byte", mib + 1, false, http.StatusRequestEntityTooLarge},
			{"1 MiB and a byte, chunked", mib + 1, true, http.StatusRequestEntityTooLarge},
			{"2 MiB, chunked", 2 * mib, true, http.StatusRequestEntityTooLarge},
		} {
			t.Run(c.name, func(t *testing.T) {
				var body io.Reader = bytes.NewReader(padded(c.size))
				if c.chunked {
					body = io.MultiReader(body) // hides the length: sent chunked
				}
				req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/graphql", body)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					// The server may close the connection before reading a too-large body.
					if c.want == http.StatusRequestEntityTooLarge {
						return
					}
					t.Fatalf("request: %v", err)
				}
				defer resp.Body.Close()
				raw, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != c.want {
					t.Fatalf("status %d (%.200s), want %d", resp.StatusCode, raw, c.want)
				}
			})
		}
	})
}

// TestRequestErrors checks the codes of requests that never execute: a syntax error is
// GRAPHQL_PARSE_FAILED, an operation the schema does not allow (or variables that do not fit
// it) GRAPHQL_VALIDATION_FAILED.
func TestRequestErrors(t *testing.T) {
	t.Parallel()
	type requestCase struct {
		name, query string
		vars        map[string]any
		want        string
	}
	cases := []requestCase{
		{"unclosed selection", `{ products { totalCount `, nil, "GRAPHQL_PARSE_FAILED"},
		{"stray token", `{ products { totalCount } } }`, nil, "GRAPHQL_PARSE_FAILED"},
		{"not GraphQL", `SELECT * FROM users`, nil, "GRAPHQL_PARSE_FAILED"},
		// An empty query parses (to no operation); gqlgen reports it as a validation failure.
		{"empty document", ``, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown field", `{ nope }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown argument", `{ products(size: 3) { totalCount } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"missing selection", `{ products }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"wrong literal type", `{ products(first: "ten") { totalCount } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"missing required argument", `{ order { id } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"missing variable", `query($id: ID!) { order(id: $id) { id } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"variable of wrong type", `query($n: Int) { products(first: $n) { totalCount } }`, map[string]any{"n": "ten"}, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown enum value", `{ orders(status: LOST) { totalCount } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"mutation input missing a field", `mutation { createProduct(input: {name: "x", price: 1}) { product { id } } }`, nil, "GRAPHQL_VALIDATION_FAILED"},
	}
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := env.anon().post(c.query, c.vars)
				if r.Code() != c.want || (len(r.Data) != 0 && string(r.Data) != "null") {
					t.Fatalf("status %d, data %s, errors %+v; want %s", r.Status, r.Data, r.Errors, c.want)
				}
				if r.Status >= 500 {
					t.Fatalf("status %d", r.Status)
				}
			})
		}
	})
}
