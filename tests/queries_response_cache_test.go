package tests

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/store"
)

const (
	respcacheList = `{ products(first: 50) { nodes { id name price { amount currency } stock merchant { id name } } } }`
	respcacheOne  = `query($id: ID!) { product(id: $id) { id name stock merchant { id name } } }`
)

// cached sends an anonymous query three times (a miss that learns its tags, a miss stored
// with the versions read before it ran, a hit) and fails unless the last was a hit with the
// same data as the first.
func cached(t *testing.T, env *testEnv, query string, vars map[string]any) json.RawMessage {
	t.Helper()
	first := env.anon().post(query, vars)
	if len(first.Errors) > 0 {
		t.Fatalf("errors: %v", first.Errors)
	}
	env.anon().post(query, vars)
	before := env.svc.Responses.Stats()
	last := env.anon().post(query, vars)
	if after := env.svc.Responses.Stats(); after.Hits != before.Hits+1 {
		t.Fatalf("third read was no hit: %+v then %+v", before, after)
	}
	if string(last.Data) != string(first.Data) {
		t.Fatalf("hit answered %s, the executor %s", last.Data, first.Data)
	}
	return last.Data
}

// TestResponseCacheSeesWritesOfOtherProcesses: a response cached by one process is never
// served once a write on another process has returned: a rename, an order taking stock, a
// new product in the list.
func TestResponseCacheSeesWritesOfOtherProcesses(t *testing.T) {
	t.Parallel()
	forEachBackendPair(t, config{}, func(t *testing.T, a, b *testEnv) {
		merchant := a.signUp("MERCHANT")
		customer := a.signUp("CUSTOMER")
		lamp := a.createProduct(merchant, "Lamp", 1200, 10)
		one := map[string]any{"id": lamp}

		if data := cached(t, b, respcacheList, nil); !strings.Contains(string(data), `"name":"Lamp"`) {
			t.Fatalf("list without the lamp: %s", data)
		}
		cached(t, b, respcacheOne, one)

		a.as(merchant.Token).must(`mutation($id: ID!) { updateProduct(input: {id: $id, name: "Desk lamp"}) { userErrors { code } } }`, one, nil)
		for _, q := range []string{respcacheList, respcacheOne} {
			if r := b.anon().post(q, one); !strings.Contains(string(r.Data), `"name":"Desk lamp"`) {
				t.Fatalf("read on the other process after the rename: %s", r.Data)
			}
		}

		cached(t, b, respcacheOne, one)
		a.placeOrder(customer, line{lamp, 3})
		var got struct{ Product struct{ Stock int } }
		b.anon().post(respcacheOne, one).Decode(t, &got)
		if got.Product.Stock != 7 {
			t.Fatalf("stock read on the other process after an order of 3 of 10: %d", got.Product.Stock)
		}

		// A list's response carries the list key, not each product's: an order taking stock
		// of one of its products (a product write) still leaves it stale.
		cached(t, b, respcacheList, nil)
		if tags := responseTags(t, b, respcacheList); !slices.ContainsFunc(tags, func(s string) bool { return strings.HasSuffix(s, "rv:product:list") }) ||
			slices.ContainsFunc(tags, func(s string) bool { return strings.Contains(s, "rv:product:") && !strings.HasSuffix(s, ":list") }) {
			t.Fatalf("the list's response is tagged %v: want the product list key and no product's", tags)
		}
		a.placeOrder(customer, line{lamp, 2})
		if r := b.anon().post(respcacheList, nil); !strings.Contains(string(r.Data), `"name":"Desk lamp","price":{"amount":1200,"currency":"USD"},"stock":5`) {
			t.Fatalf("list on the other process after an order of 2 of 7: %s", r.Data)
		}

		cached(t, b, respcacheList, nil)
		a.createProduct(merchant, "Shade", 300, 5)
		if r := b.anon().post(respcacheList, nil); !strings.Contains(string(r.Data), `"name":"Shade"`) {
			t.Fatalf("list on the other process after a new product: %s", r.Data)
		}
	})
}

// TestResponseCacheKeepsPrivateDataPrivate: signed-in callers and private fields never read
// nor fill the cache, and what one caller sees never reaches another.
func TestResponseCacheKeepsPrivateDataPrivate(t *testing.T) {
	t.Parallel()
	forEachBackendPair(t, config{}, func(t *testing.T, a, b *testEnv) {
		merchant := a.signUp("MERCHANT")
		customer := a.signUp("CUSTOMER")
		lamp := a.createProduct(merchant, "Lamp", 1200, 10)
		a.as(merchant.Token).must(`mutation($id: ID!) { updateProduct(input: {id: $id, lowStockThreshold: 7}) { userErrors { code } } }`,
			map[string]any{"id": lamp}, nil)
		a.placeOrder(customer, line{lamp, 1})

		private := []struct {
			name, token, query string
		}{
			{"a customer's orders", customer.Token, `{ me { id name email orders { nodes { id total { amount } } } } }`},
			{"a customer asking public fields", customer.Token, respcacheList},
			{"a merchant's own threshold", merchant.Token, `{ products(first: 50) { nodes { id name lowStockThreshold } } }`},
			{"a merchant asking public fields", merchant.Token, respcacheList},
			{"an anonymous caller asking a private field", "", `{ products(first: 50) { nodes { id name lowStockThreshold } } }`},
			{"an anonymous caller asking a user", "", `query($id: ID!) { user(id: $id) { id name } }`},
			{"an anonymous caller asking for emails", "", `{ products(first: 50) { nodes { merchant { email } } } }`},
		}
		for _, env := range []*testEnv{a, b} {
			for _, p := range private {
				before := env.svc.Responses.Stats()
				for range 3 {
					r := env.as(p.token).post(p.query, map[string]any{"id": customer.ID})
					if p.token == "" && strings.Contains(string(r.Data), customer.Email) {
						t.Fatalf("%s: an anonymous caller read %s", p.name, r.Data)
					}
				}
				if after := env.svc.Responses.Stats(); after != before {
					t.Errorf("%s: the response cache was asked: %+v then %+v", p.name, before, after)
				}
			}
		}
		// The anonymous list, cached, holds nothing private.
		if data := cached(t, b, respcacheList, nil); strings.Contains(string(data), merchant.Email) || strings.Contains(string(data), "lowStockThreshold") {
			t.Fatalf("cached list: %s", data)
		}
	})
}

// TestResponseCacheHitsPayTheRateLimit: an answer from the cache costs what the executor's
// would, and a caller over budget gets RATE_LIMITED, not the cached answer, also when the
// hit is found before gqlgen (the budget's lease here is too small to pay an operation:
// every charge asks Redis).
func TestResponseCacheHitsPayTheRateLimit(t *testing.T) {
	t.Parallel()
	// 1 + 100 × (1 + 2) = 301 points a request: three fit in 1,000, the fourth does not.
	const query = `{ products(first: 100) { nodes { id name } } }`
	forEachBackendPair(t, config{RateLimit: guard.RateLimit{PointsPerMinute: 1000}}, func(t *testing.T, a, b *testEnv) {
		for i, env := range []*testEnv{a, a, a} {
			r := env.anon().post(query, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("request %d: %v", i+1, r.Errors)
			}
			if c, _ := r.Extensions["cost"].(map[string]any); c["requested"] != float64(301) {
				t.Errorf("request %d: extensions.cost %v", i+1, r.Extensions["cost"])
			}
		}
		if s := a.svc.Responses.Stats(); s.Hits != 1 || s.Early != 1 {
			t.Fatalf("the third request was no hit answered before gqlgen: %+v", s)
		}
		for _, env := range []*testEnv{a, b} {
			r := env.anon().post(query, nil)
			if r.Status != http.StatusTooManyRequests || r.Code() != guard.CodeRateLimited || (len(r.Data) > 0 && string(r.Data) != "null") {
				t.Fatalf("over budget: status %d, errors %v, data %s", r.Status, r.Errors, r.Data)
			}
		}
	})
}

// responseTags returns the tags of the response cache's entry for query (no operation name,
// no variables) as env's process stored it in Redis (api/respcache's encoding: a flag byte,
// the cost when flag 2 is set, the number of tags, each tag and its version).
func responseTags(t *testing.T, env *testEnv, query string) []string {
	t.Helper()
	sum := sha256.Sum256([]byte(query + "\x00\x00{}"))
	key := env.svc.RedisPrefix() + "resp2:" + store.CacheSchema + ":" + hex.EncodeToString(sum[:20])
	b, err := env.svc.Redis.Get(context.Background(), key).Bytes()
	if err != nil || len(b) == 0 {
		t.Fatalf("entry %s: %v", key, err)
	}
	flags, b := b[0], b[1:]
	uvarint := func() uint64 {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			t.Fatalf("entry %s does not decode", key)
		}
		b = b[k:]
		return n
	}
	if flags&2 != 0 {
		uvarint()
	}
	tags := make([]string, uvarint())
	for i := range tags {
		n := uvarint()
		tags[i], b = string(b[:n]), b[n:]
		b = b[uvarint():]
	}
	return tags
}

// getPersisted sends query over GET as a persisted query (its hash alone) or with its text,
// and returns the status, headers and body.
func getPersisted(t *testing.T, env *testEnv, token, query string, withText bool) (int, http.Header, string) {
	t.Helper()
	ext, _ := json.Marshal(apqExtensions(query))
	u := env.srv.URL + "/graphql?extensions=" + url.QueryEscape(string(ext))
	if withText {
		u += "&query=" + url.QueryEscape(query)
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// TestResponseCacheControlHeaders: a persisted query over GET whose answer is public as a
// whole may be kept by a CDN, per Authorization; nothing else may.
func TestResponseCacheControlHeaders(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant := env.signUp("MERCHANT")
		env.createProduct(merchant, "Lamp", 1200, 10)
		const me = `{ me { id email } }`
		const unknown = `{ product(id: "UHJvZHVjdDo5OTk5OTk=") { id name } }`
		for _, q := range []string{respcacheList, me, unknown} {
			env.postAPQ(q, true) // registers it
		}
		cases := []struct {
			name, token, query string
			text, public       bool
		}{
			{"public, persisted, anonymous", "", respcacheList, false, true},
			{"public, persisted, signed in", merchant.Token, respcacheList, false, false},
			{"public, with its text", "", respcacheList, true, false},
			{"private", merchant.Token, me, false, false},
			{"an error", "", unknown, false, false},
		}
		for _, c := range cases {
			for range 3 { // miss, miss, hit: the same headers each time
				status, h, body := getPersisted(t, env, c.token, c.query, c.text)
				if status != http.StatusOK {
					t.Fatalf("%s: status %d: %s", c.name, status, body)
				}
				cc, vary := h.Get("Cache-Control"), strings.Join(h.Values("Vary"), ",")
				switch {
				case c.public && (cc != "public, max-age=5" || !strings.Contains(vary, "Authorization")):
					t.Fatalf("%s: Cache-Control %q, Vary %q", c.name, cc, vary)
				case !c.public && strings.Contains(cc, "public"):
					t.Fatalf("%s: Cache-Control %q on %s", c.name, cc, body)
				}
			}
		}
	})
}

// TestResponseCacheOff: RESPONSE_CACHE=false leaves every query to the executor.
func TestResponseCacheOff(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		if env.svc.Responses == nil {
			t.Fatal("the response cache is off by default")
		}
	})
	cfg := backends[0].config(t)
	cfg.NoResponseCache = true
	env := newTestEnv(t, cfg)
	if env.svc.Responses != nil {
		t.Fatal("NoResponseCache left the response cache on")
	}
	for range 3 {
		if r := env.anon().post(respcacheList, nil); len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
	}
}

// sentResponse is a response as the client received it.
type sentResponse struct {
	status int
	header http.Header
	body   []byte
}

func sendRaw(t *testing.T, req *http.Request) sentResponse {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return sentResponse{resp.StatusCode, resp.Header, body}
}

// TestResponseCacheEarlyHitsAnswerAsTheFullPath: a hit answered before gqlgen sets the
// operation up (by the transport, from the request's text, persisted hash, operation name
// and variables) writes exactly what gqlgen's path writes for the same request: status,
// headers, body bytes with extensions.cost; it is counted in the operations' metrics.
func TestResponseCacheEarlyHitsAnswerAsTheFullPath(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant := env.signUp("MERCHANT")
		lamp := env.createProduct(merchant, "Lamp <&> \u2028", 1200, 10) // escaped by json.Marshal, not by the executor
		const named = `query Other { products(first: 1) { totalCount } } query Lamp($id: ID!) { product(id: $id) { id name stock } }`
		env.postAPQ(respcacheList, true) // registered
		post := func(body map[string]any, accept string) func() *http.Request {
			return func() *http.Request {
				req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/graphql", strings.NewReader(mustJSON(body)))
				req.Header.Set("Content-Type", "application/json")
				if accept != "" {
					req.Header.Set("Accept", accept)
				}
				return req
			}
		}
		get := func(params url.Values) func() *http.Request {
			return func() *http.Request {
				req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/graphql?"+params.Encode(), nil)
				return req
			}
		}
		ext := mustJSON(apqExtensions(respcacheList))
		cases := []struct {
			name string
			req  func() *http.Request
		}{
			{"POST text", post(map[string]any{"query": respcacheList}, "")},
			{"POST text, graphql-response+json", post(map[string]any{"query": respcacheList}, "application/graphql-response+json")},
			{"POST variables", post(map[string]any{"query": respcacheOne, "variables": map[string]any{"id": lamp}}, "")},
			{"POST operation name", post(map[string]any{"query": named, "operationName": "Lamp", "variables": map[string]any{"id": lamp}}, "")},
			{"POST persisted", post(map[string]any{"extensions": json.RawMessage(ext)}, "")},
			{"GET persisted", get(url.Values{"extensions": {ext}})},
			{"GET text", get(url.Values{"query": {respcacheOne}, "variables": {mustJSON(map[string]any{"id": lamp})}})},
		}
		for _, c := range cases {
			sendRaw(t, c.req()) // learns its tags (or hits, when an earlier case stored it)
			// A write to the lamp (a field no response shows) leaves every response stale:
			// the next request goes through gqlgen, the one after is an early hit.
			env.as(merchant.Token).must(`mutation($id: ID!) { updateProduct(input: {id: $id, lowStockThreshold: 3}) { userErrors { code } } }`,
				map[string]any{"id": lamp}, nil)
			before := env.svc.Responses.Stats()
			full := sendRaw(t, c.req())
			mid := env.svc.Responses.Stats()
			ok := metricValue(t, env, "shop_graphql_requests_total", `outcome="ok"`)
			early := sendRaw(t, c.req())
			after := env.svc.Responses.Stats()
			if mid.Early != before.Early || after.Early != mid.Early+1 || after.Hits != mid.Hits+1 {
				t.Fatalf("%s: want the second request through gqlgen, the third an early hit: %+v, %+v, %+v", c.name, before, mid, after)
			}
			if early.status != full.status || string(early.body) != string(full.body) {
				t.Fatalf("%s: early hit answered %d %s, gqlgen %d %s", c.name, early.status, early.body, full.status, full.body)
			}
			for _, h := range []string{"Content-Type", "Cache-Control", "Vary"} {
				if e, f := strings.Join(early.header.Values(h), ","), strings.Join(full.header.Values(h), ","); e != f {
					t.Fatalf("%s: %s %q on the early hit, %q through gqlgen", c.name, h, e, f)
				}
			}
			if !strings.Contains(string(early.body), `"extensions":{"cost":{"requested":`) {
				t.Fatalf("%s: no extensions.cost: %s", c.name, early.body)
			}
			if got := metricValue(t, env, "shop_graphql_requests_total", `outcome="ok"`); got != ok+1 {
				t.Fatalf("%s: the early hit was counted %v times in shop_graphql_requests_total", c.name, got-ok)
			}
		}
	})
}

// TestResponseCacheEarlyHitsPayTheRateLimit: a hit answered before gqlgen is charged the
// cost its first execution was charged, from the process's lease of the caller's budget,
// and reports the budget left as gqlgen's path does.
func TestResponseCacheEarlyHitsPayTheRateLimit(t *testing.T) {
	t.Parallel()
	const query = `{ products(first: 100) { nodes { id name } } }` // 301 points
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			cfg.RateLimit = guard.RateLimit{PointsPerMinute: 1_000_000}
			earlyHitsPay(t, newTestEnv(t, cfg), query)
		})
	}
}

func earlyHitsPay(t *testing.T, env *testEnv, query string) {
	available := func(r gqlResponse) float64 { v, _ := throttle(r)["currentlyAvailable"].(float64); return v }
	prev := env.anon().post(query, nil)
	fromLease := 0
	for i := 0; i < 50 && fromLease < 3; i++ {
		before := env.svc.Responses.Stats()
		r := env.anon().post(query, nil)
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		if env.svc.Responses.Stats().Early == before.Early+1 {
			if c, _ := r.Extensions["cost"].(map[string]any); c["requested"] != float64(301) || c["maximum"] != float64(10_000) {
				t.Fatalf("early hit: extensions.cost %v", r.Extensions["cost"])
			}
			// Paid from the lease (not renewed from Redis, whose bucket refills meanwhile):
			// the points it held, less this request's cost.
			if available(r) == available(prev)-301 {
				fromLease++
			}
		}
		prev = r
	}
	if fromLease < 3 {
		t.Fatalf("%d early hits paid from the lease in 50 requests", fromLease)
	}
}
