package tests

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// rawServer starts the service with cfg exactly as given (newTestEnv forces the playground
// and introspection on).
func rawServer(t *testing.T, cfg config) *httptest.Server {
	t.Helper()
	cfg.SQLitePath = backends[0].config(t).SQLitePath
	cfg.JWTSecret = []byte("test-secret-of-at-least-32-bytes!!")
	cfg.PasswordCost = 4
	svc, err := startService(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return srv
}

func send(t *testing.T, method, url, contentType, body string, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp
}

func TestPostMustBeJSON(t *testing.T) {
	t.Parallel()
	env := embedded(t, config{})
	u := env.srv.URL + "/graphql"
	const q = `{"query":"{ __typename }"}`
	for _, ct := range []string{"", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		if resp := send(t, http.MethodPost, u, ct, q); resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q: status %d, want 415", ct, resp.StatusCode)
		}
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8"} {
		if resp := send(t, http.MethodPost, u, ct, q); resp.StatusCode != http.StatusOK {
			t.Errorf("Content-Type %q: status %d, want 200", ct, resp.StatusCode)
		}
	}
}

func TestGetNeverMutates(t *testing.T) {
	t.Parallel()
	env := embedded(t, config{})
	email := "get-" + strings.ToLower(t.Name()) + "@example.com"
	m := `mutation { signUp(input: {email: "` + email + `", name: "G", password: "password123"}) { token } }`
	resp := send(t, http.MethodGet, env.srv.URL+"/graphql?query="+url.QueryEscape(m), "", "")
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		t.Errorf("mutation over GET: status %d, want 4xx", resp.StatusCode)
	}
	// Had it run, the address would now be taken.
	var out struct {
		SignUp struct{ UserErrors []struct{ Code string } }
	}
	env.anon().must(`mutation($e: String!) { signUp(input: {email: $e, name: "G", password: "password123"}) { userErrors { code } } }`,
		map[string]any{"e": email}, &out)
	if len(out.SignUp.UserErrors) > 0 {
		t.Errorf("the GET mutation ran: %v", out.SignUp.UserErrors)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	srv := rawServer(t, config{Production: true})
	resp := send(t, http.MethodPost, srv.URL+"/graphql", "application/json", `{"query":"{ __typename }"}`)
	for h, want := range map[string]string{
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "DENY",
		"Referrer-Policy":           "no-referrer",
		"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
}

func TestCORSAllowList(t *testing.T) {
	t.Parallel()
	srv := rawServer(t, config{CORSOrigins: []string{"https://shop.example"}})
	u := srv.URL + "/graphql"
	q := `{"query":"{ __typename }"}`
	if got := send(t, http.MethodPost, u, "application/json", q, "Origin", "https://shop.example").Header.Get("Access-Control-Allow-Origin"); got != "https://shop.example" {
		t.Errorf("allowed origin: Access-Control-Allow-Origin %q", got)
	}
	if got := send(t, http.MethodPost, u, "application/json", q, "Origin", "https://evil.example").Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("other origin: Access-Control-Allow-Origin %q, want none", got)
	}
	pre := send(t, http.MethodOptions, u, "", "", "Origin", "https://shop.example",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	if pre.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" || !strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight: status %d headers %v", pre.StatusCode, pre.Header)
	}
	// Without an allow-list no CORS header is ever sent.
	plain := rawServer(t, config{})
	if got := send(t, http.MethodPost, plain.URL+"/graphql", "application/json", q, "Origin", "https://shop.example").Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("no allow-list: Access-Control-Allow-Origin %q", got)
	}
}
