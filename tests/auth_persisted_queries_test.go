package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// apqExtensions is Apollo's persisted-query extension for query.
func apqExtensions(query string) map[string]any {
	sum := sha256.Sum256([]byte(query))
	return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
}

// postAPQ sends a persisted query by hash, with the query text when withQuery.
func (e *testEnv) postAPQ(query string, withQuery bool) gqlResponse {
	e.t.Helper()
	body := map[string]any{"extensions": apqExtensions(query)}
	if withQuery {
		body["query"] = query
	}
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	return e.do(req)
}

// getAPQ sends a persisted query by hash alone over GET, as Apollo clients do.
func (e *testEnv) getAPQ(query string) gqlResponse {
	e.t.Helper()
	ext, _ := json.Marshal(apqExtensions(query))
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/graphql?extensions="+url.QueryEscape(string(ext)), nil)
	return e.do(req)
}

func TestPersistedQueriesAcrossProcesses(t *testing.T) {
	t.Parallel()
	const query = `query PersistedProducts { products(first: 2) { totalCount } }`
	forEachBackendPair(t, config{}, func(t *testing.T, a, b *testEnv) {
		if r := a.postAPQ(query, false); r.Code() != "PERSISTED_QUERY_NOT_FOUND" {
			t.Fatalf("unknown hash: %v, want PERSISTED_QUERY_NOT_FOUND", r.Errors)
		}
		if r := a.postAPQ(query, true); len(r.Errors) > 0 {
			t.Fatalf("registering: %v", r.Errors)
		}
		// The other process knows the hash, over POST and GET.
		for name, r := range map[string]gqlResponse{"POST": b.postAPQ(query, false), "GET": b.getAPQ(query)} {
			var out struct{ Products struct{ TotalCount int } }
			if len(r.Errors) > 0 {
				t.Fatalf("%s on the other process: %v", name, r.Errors)
			}
			r.Decode(t, &out)
		}
		// A hash that does not match its query is refused.
		body := `{"query":"{ __typename }","extensions":` + mustJSON(apqExtensions(query)) + `}`
		req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if r := a.do(req); len(r.Errors) == 0 {
			t.Errorf("mismatched hash accepted")
		}
	})
}

func TestPersistedMutationIsRefusedOverGET(t *testing.T) {
	t.Parallel()
	env := embedded(t, config{})
	const m = `mutation { signUp(input: {email: "apq-get@example.com", name: "A", password: "password123"}) { token } }`
	if r := env.postAPQ(m, false); r.Code() != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("%v", r.Errors)
	}
	ext, _ := json.Marshal(apqExtensions(m))
	req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/graphql?query="+url.QueryEscape(m)+"&extensions="+url.QueryEscape(string(ext)), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("persisted mutation over GET: status %d", resp.StatusCode)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
