package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/api"
)

// Trusted documents: a server started with PERSISTED_OPERATIONS runs only the operations of
// a manifest that @apollo/generate-persisted-query-manifest generated from the app's
// operations (tests/testdata/node/trusted/*.graphql).

// trustedOps is a generated manifest: its path, and its operations' ids and bodies by name.
type trustedOps struct {
	path         string
	ids, bodies  map[string]string
	nodeClients  string
	unlistedText string
}

// generateManifest runs Apollo's manifest generator on testdata/node/trusted.
func generateManifest(t *testing.T) trustedOps {
	t.Helper()
	dir := nodeClients(t, "@apollo/generate-persisted-query-manifest")
	tmp := t.TempDir()
	out := filepath.Join(tmp, "persisted-query-manifest.json")
	conf := filepath.Join(tmp, "persisted-query-manifest.config.json")
	// Document globs are relative to the working directory, testdata/node.
	if err := os.WriteFile(conf, []byte(mustJSON(map[string]any{"documents": []string{"trusted/*.graphql"}, "output": out})), 0o644); err != nil {
		t.Fatal(err)
	}
	runNode(t, dir, "node_modules/@apollo/generate-persisted-query-manifest/cli.js", "--config", conf)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Operations []struct{ ID, Name, Body string }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	ops := trustedOps{path: out, ids: map[string]string{}, bodies: map[string]string{}, nodeClients: dir,
		unlistedText: `query NotInTheManifest { products(first: 1) { totalCount } }`}
	for _, op := range m.Operations {
		ops.ids[op.Name], ops.bodies[op.Name] = op.ID, op.Body
	}
	if len(ops.ids) != 7 {
		t.Fatalf("want the 7 operations of testdata/node/trusted, got %v", ops.ids)
	}
	return ops
}

// byID sends the operation id alone, as a persisted query, as token (anonymous when empty).
func (e *testEnv) byID(token, id string, vars map[string]any) gqlResponse {
	e.t.Helper()
	body := mustJSON(map[string]any{"variables": vars,
		"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": id}}})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(req)
}

// mustByID sends an operation by id, failing the test on any error, and decodes its data.
func (e *testEnv) mustByID(token, id string, vars map[string]any, v any) {
	e.t.Helper()
	r := e.byID(token, id, vars)
	if len(r.Errors) > 0 || r.Status != http.StatusOK {
		e.t.Fatalf("operation %s: status %d, errors %+v", id, r.Status, r.Errors)
	}
	r.Decode(e.t, v)
}

// requireRefused fails unless r is a request error with code, HTTP 200 and no data.
func requireRefused(t *testing.T, what string, r gqlResponse, code string) {
	t.Helper()
	if r.Code() != code || r.Status != http.StatusOK || (len(r.Data) > 0 && string(r.Data) != "null") {
		t.Fatalf("%s: want %s (HTTP 200, no data), got status %d, data %s, errors %+v", what, code, r.Status, r.Data, r.Errors)
	}
}

// trustedAccount signs up with the manifest's TrustedSignUp.
func (e *testEnv) trustedAccount(ops trustedOps, role string) account {
	e.t.Helper()
	var out struct {
		SignUp struct {
			Token string
			User  struct{ ID string }
		}
	}
	e.mustByID("", ops.ids["TrustedSignUp"], map[string]any{"input": map[string]any{
		"email": uniqueEmail(), "name": "Trusted " + role, "password": "password123", "role": role}}, &out)
	if out.SignUp.Token == "" {
		e.t.Fatalf("signUp as %s gave no token", role)
	}
	return account{ID: out.SignUp.User.ID, Token: out.SignUp.Token}
}

// trustedLogIn signs in with the manifest's TrustedLogIn and returns the token.
func (e *testEnv) trustedLogIn(ops trustedOps, email, password string) string {
	e.t.Helper()
	var out struct{ LogIn struct{ Token string } }
	e.mustByID("", ops.ids["TrustedLogIn"], map[string]any{"input": map[string]any{"email": email, "password": password}}, &out)
	if out.LogIn.Token == "" {
		e.t.Fatalf("logIn as %s gave no token", email)
	}
	return out.LogIn.Token
}

// trustedShop is a merchant's product and a customer's order of it, made through the manifest.
func (e *testEnv) trustedShop(ops trustedOps) liveShop {
	e.t.Helper()
	s := liveShop{merchant: e.trustedAccount(ops, "MERCHANT"), customer: e.trustedAccount(ops, "CUSTOMER")}
	var created struct {
		CreateProduct struct{ Product struct{ ID string } }
	}
	e.mustByID(s.merchant.Token, ops.ids["TrustedCreateProduct"], map[string]any{"input": map[string]any{
		"name": "Trusted kettle", "price": 2500, "stock": 10}}, &created)
	s.product = created.CreateProduct.Product.ID
	var placed struct {
		PlaceOrder struct{ Order struct{ ID string } }
	}
	e.mustByID(s.customer.Token, ops.ids["TrustedPlaceOrder"], map[string]any{"input": map[string]any{
		"items": []map[string]any{{"productId": s.product, "quantity": 1}}}}, &placed)
	s.order = placed.PlaceOrder.Order.ID
	if s.product == "" || s.order == "" {
		e.t.Fatalf("shop not set up: %+v", s)
	}
	return s
}

// subscribeByID starts operation opID on the socket with a persisted query id.
func (c *wsClient) subscribeByID(opID, id string, vars map[string]any) {
	c.T.Helper()
	c.Send(map[string]any{"type": "subscribe", "id": opID, "payload": map[string]any{"variables": vars,
		"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": id}}}})
}

func TestTrustedDocuments(t *testing.T) {
	t.Parallel()
	ops := generateManifest(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			liveConfig(&cfg)
			cfg.AdminEmail, cfg.AdminPassword = testAdminEmail, testAdminPassword
			cfg.Trusted = api.TrustedConfig{Manifest: ops.path, AdminBypass: true}
			env := newTestEnv(t, cfg)
			s := env.trustedShop(ops)
			products := ops.ids["TrustedProducts"]
			vars := map[string]any{"first": 5}
			var want struct {
				Products struct{ TotalCount int }
			}
			env.mustByID("", products, vars, &want)
			if want.Products.TotalCount != 1 {
				t.Fatalf("want the one product, got %+v", want)
			}

			// A listed operation runs by id over GET, and by its text: exactly as listed, or
			// laid out differently (whitespace, commas, comments).
			ext := mustJSON(map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": products}})
			get, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/graphql?variables="+url.QueryEscape(mustJSON(vars))+"&extensions="+url.QueryEscape(ext), nil)
			body := ops.bodies["TrustedProducts"]
			relaid := "# the same operation, laid out differently\n" + strings.Join(strings.Fields(body), " ,\n\t")
			for what, r := range map[string]gqlResponse{
				"GET by id":      env.do(get),
				"exact text":     env.anon().post(body, vars),
				"relaid text":    env.anon().post(relaid, vars),
				"text and hash":  env.postRaw("", map[string]any{"query": body, "variables": vars, "extensions": json.RawMessage(ext)}),
				"admin's by id":  env.byID(env.trustedLogIn(ops, testAdminEmail, testAdminPassword), products, vars),
				"customer by id": env.byID(s.customer.Token, products, vars),
			} {
				var got struct{ Products struct{ TotalCount int } }
				if len(r.Errors) > 0 {
					t.Fatalf("%s: %+v", what, r.Errors)
				}
				if r.Decode(t, &got); got != want {
					t.Fatalf("%s: got %+v, want %+v", what, got, want)
				}
			}
			// Cached now, each anonymous form of it is answered from the response cache
			// before gqlgen sets it up, its id or text resolved as the allow-list does.
			for what, send := range map[string]func() gqlResponse{
				"GET by id":   func() gqlResponse { return env.do(get) },
				"POST by id":  func() gqlResponse { return env.byID("", products, vars) },
				"exact text":  func() gqlResponse { return env.anon().post(body, vars) },
				"relaid text": func() gqlResponse { return env.anon().post(relaid, vars) },
			} {
				before := env.svc.Responses.Stats()
				var got struct{ Products struct{ TotalCount int } }
				r := send()
				if len(r.Errors) > 0 {
					t.Fatalf("%s from the cache: %+v", what, r.Errors)
				}
				if r.Decode(t, &got); got != want {
					t.Fatalf("%s from the cache: got %+v, want %+v", what, got, want)
				}
				if after := env.svc.Responses.Stats(); after.Early != before.Early+1 {
					t.Fatalf("%s: no hit answered before gqlgen: %+v then %+v", what, before, after)
				}
			}

			// Anything else is refused, also a listed operation's source without the
			// __typename fields the generator added (another document), and a registration
			// through APQ registers nothing.
			source, err := os.ReadFile(filepath.Join(ops.nodeClients, "trusted", "Products.graphql"))
			if err != nil {
				t.Fatal(err)
			}
			requireRefused(t, "unlisted text", env.anon().post(ops.unlistedText, nil), "FORBIDDEN")
			requireRefused(t, "unlisted text by a customer", env.as(s.customer.Token).post(ops.unlistedText, nil), "FORBIDDEN")
			requireRefused(t, "the source without __typename", env.anon().post(string(source), vars), "FORBIDDEN")
			requireRefused(t, "unknown id", env.postAPQ(ops.unlistedText, false), "PERSISTED_QUERY_NOT_FOUND")
			requireRefused(t, "APQ registration", env.postAPQ(ops.unlistedText, true), "FORBIDDEN")
			requireRefused(t, "unknown id after a registration", env.postAPQ(ops.unlistedText, false), "PERSISTED_QUERY_NOT_FOUND")
			requireRefused(t, "a listed id with another text",
				env.postRaw("", map[string]any{"query": ops.unlistedText, "extensions": json.RawMessage(ext)}), "BAD_USER_INPUT")

			// A listed mutation still never runs over GET.
			place := mustJSON(map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": ops.ids["TrustedPlaceOrder"]}})
			get, _ = http.NewRequest(http.MethodGet, env.srv.URL+"/graphql?extensions="+url.QueryEscape(place)+"&variables="+
				url.QueryEscape(mustJSON(map[string]any{"input": map[string]any{"items": []map[string]any{{"productId": s.product, "quantity": 1}}}})), nil)
			get.Header.Set("Authorization", "Bearer "+s.customer.Token)
			if r := env.do(get); r.Status < 400 {
				t.Fatalf("a persisted mutation over GET: status %d", r.Status)
			}

			// ADMIN (GraphiQL) runs anything, introspection included.
			admin := account{Token: env.trustedLogIn(ops, testAdminEmail, testAdminPassword)}
			var intro struct {
				Schema struct{ QueryType struct{ Name string } } `json:"__schema"`
			}
			env.as(admin.Token).must(`{ __schema { queryType { name } } }`, nil, &intro)
			var free struct{ Products struct{ TotalCount int } }
			if env.as(admin.Token).must(ops.unlistedText, nil, &free); free.Products.TotalCount != 1 {
				t.Fatalf("admin's free-form query: %+v", free)
			}

			// Over WebSocket: an unlisted subscription is refused, the listed one runs by id,
			// and the admin's unlisted one runs too.
			customer := env.connectSocket(s.customer.Token)
			customer.Subscribe("unlisted", `subscription { myOrderEvents { id status } }`, nil)
			if code := customer.ErrorCode("unlisted"); code != "FORBIDDEN" {
				t.Fatalf("unlisted subscription over WebSocket: %s, want FORBIDDEN", code)
			}
			customer.subscribeByID("listed", ops.ids["TrustedOrderStatus"], map[string]any{"orderId": s.order})
			adminSocket := env.connectSocket(admin.Token)
			adminSocket.Subscribe("free", `subscription($id: ID!) { orderStatusChanged(orderId: $id) { `+eventFields+` } }`, map[string]any{"id": s.order})
			env.waitSubscribers(2)
			var moved struct {
				UpdateOrderStatus struct{ Order struct{ Status string } }
			}
			env.mustByID(s.merchant.Token, ops.ids["TrustedUpdateOrderStatus"], map[string]any{"input": map[string]any{"id": s.order, "status": "PAID"}}, &moved)
			for _, got := range []liveEvent{customer.event("listed"), adminSocket.event("free")} {
				if got.Status != "PAID" || got.Order.ID != s.order {
					t.Fatalf("want the PAID event of %s, got %+v", s.order, got)
				}
			}

			// Over SSE too.
			if out := sseBody(t, env, s.customer.Token, `subscription { myOrderEvents { id } }`); !strings.Contains(out, `"FORBIDDEN"`) {
				t.Fatalf("unlisted subscription over SSE answered %q", out)
			}
		})
	}
}

// sseBody posts query as an SSE subscription and returns what the server sent before it
// ended the stream.
func sseBody(t *testing.T, env *testEnv, token, query string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/graphql", strings.NewReader(mustJSON(map[string]any{"query": query})))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

// postRaw posts body as JSON, as token.
func (e *testEnv) postRaw(token string, body map[string]any) gqlResponse {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", strings.NewReader(mustJSON(body)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(req)
}

func TestTrustedDocumentsWithoutAdminBypass(t *testing.T) {
	t.Parallel()
	ops := generateManifest(t)
	env := embedded(t, config{AdminEmail: testAdminEmail, AdminPassword: testAdminPassword,
		Trusted: api.TrustedConfig{Manifest: ops.path}})
	admin := env.trustedLogIn(ops, testAdminEmail, testAdminPassword)
	requireRefused(t, "admin's unlisted text", env.as(admin).post(ops.unlistedText, nil), "FORBIDDEN")
}

// Apollo Client with the persisted-query link of @apollo/persisted-query-lists sends the
// manifest's ids; with a plain HttpLink it sends the text, which matches the manifest exactly.
func TestTrustedDocumentsApolloClient(t *testing.T) {
	t.Parallel()
	ops := generateManifest(t)
	env := embedded(t, config{Trusted: api.TrustedConfig{Manifest: ops.path}})
	env.trustedShop(ops)
	var want json.RawMessage
	env.mustByID("", ops.ids["TrustedProducts"], map[string]any{"first": 2}, &want)

	type run struct {
		Mode     string
		Data     json.RawMessage
		Code     *string
		Requests []struct {
			Hash  *string
			Query bool
		}
	}
	runs := decodeLines[run](t, runNode(t, ops.nodeClients, "apollo-trusted.mjs", env.srv.URL+"/graphql", ops.path))
	if len(runs) != 3 {
		t.Fatalf("want 3 runs, got %+v", runs)
	}
	for _, r := range runs[:2] {
		if r.Code != nil {
			t.Fatalf("%s: Apollo reported %s", r.Mode, *r.Code)
		}
		requireSameJSON(t, r.Mode+": the data Apollo returned", r.Data, want)
	}
	if r := runs[0].Requests; len(r) != 1 || r[0].Query || r[0].Hash == nil || *r[0].Hash != ops.ids["TrustedProducts"] {
		t.Fatalf("by id: want one request with the manifest's id and no text, got %+v", r)
	}
	if r := runs[1].Requests; len(r) != 1 || !r[0].Query || r[0].Hash != nil {
		t.Fatalf("by text: want one request with the text alone, got %+v", r)
	}
	if r := runs[2]; r.Code == nil || *r.Code != "FORBIDDEN" {
		t.Fatalf("unlisted: want FORBIDDEN, got %+v", r)
	}
}

func TestTrustedDocumentsManifestMustBeValid(t *testing.T) {
	t.Parallel()
	const body = "query Listed { products(first: 1) { totalCount } }"
	op := func(id, body string) map[string]any {
		return map[string]any{"id": id, "name": "Listed", "type": "query", "body": body}
	}
	manifest := func(ops ...map[string]any) string {
		return mustJSON(map[string]any{"format": "apollo-persisted-query-manifest", "version": 1, "operations": ops})
	}
	hash := func(s string) string {
		return apqExtensions(s)["persistedQuery"].(map[string]any)["sha256Hash"].(string)
	}
	for _, c := range []struct {
		name, file, want string
	}{
		{"not JSON", `{"format":`, "not JSON"},
		{"another format", `{"format":"relay","version":1,"operations":[]}`, `want format "apollo-persisted-query-manifest" version 1`},
		{"another version", `{"format":"apollo-persisted-query-manifest","version":2,"operations":[]}`, "version 1"},
		{"no operations", manifest(), "no operations"},
		{"id not the body's hash", manifest(op(hash("{ me { id } }"), body)), "is not the SHA-256 of its body"},
		{"body does not parse", manifest(op(hash("query {"), "query {")), "operation 0 (Listed)"},
		{"body not of this schema", manifest(op(hash("{ nothing }"), "{ nothing }")), "does not validate against the schema"},
	} {
		path := filepath.Join(t.TempDir(), "manifest.json")
		if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := api.NewTrustedDocuments(api.TrustedConfig{Manifest: path})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "PERSISTED_OPERATIONS") {
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
		}
	}
	if _, err := api.NewTrustedDocuments(api.TrustedConfig{Manifest: filepath.Join(t.TempDir(), "missing.json")}); err == nil {
		t.Error("a missing manifest loaded")
	}
	path := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(path, []byte(manifest(op(hash(body), body))), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err := api.NewTrustedDocuments(api.TrustedConfig{Manifest: path}); err != nil || d.Operations() != 1 {
		t.Fatalf("a valid manifest: %v", err)
	}
}
