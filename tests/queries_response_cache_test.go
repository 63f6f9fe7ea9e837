package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/shop/api/api/guard"
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
// would, and a caller over budget gets RATE_LIMITED, not the cached answer.
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
		if s := a.svc.Responses.Stats(); s.Hits != 1 {
			t.Fatalf("the third request was no hit: %+v", s)
		}
		for _, env := range []*testEnv{a, b} {
			r := env.anon().post(query, nil)
			if r.Status != http.StatusTooManyRequests || r.Code() != guard.CodeRateLimited || (len(r.Data) > 0 && string(r.Data) != "null") {
				t.Fatalf("over budget: status %d, errors %v, data %s", r.Status, r.Errors, r.Data)
			}
		}
	})
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
