package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// testLoaderWait is the batch window in these tests. gqlgen starts the goroutines of a
// level within microseconds; on a loaded two-core machine under -race they may straggle for
// milliseconds, so the window is generous enough that no key ever misses its batch and the
// statement counts are exact.
const testLoaderWait = 100 * time.Millisecond

// costEnv is a running service whose requests report what they cost.
type costEnv struct {
	*testEnv
	reports *costRecorder
}

// newCostEnv starts the service with cfg, the Redis cache on or off.
func newCostEnv(t *testing.T, cfg config, cache bool) *costEnv {
	t.Helper()
	rec := &costRecorder{byID: map[string]loaders.Report{}}
	rec.cond = sync.NewCond(&rec.mu)
	cfg.NoCache = !cache
	cfg.NoResponseCache = true // the executor's costs are measured, not the response cache's
	// A Redis call slower than the cache's timeout reads through to the database: under the
	// race detector on a loaded machine 300ms is not always enough, and the counts must not
	// depend on it.
	cfg.CacheTimeout = 10 * time.Second
	cfg.Loaders = &loaders.Config{Wait: testLoaderWait, MaxBatch: 1000, Observe: rec.observe}
	return &costEnv{testEnv: newTestEnv(t, cfg), reports: rec}
}

// costRecorder keeps the reports of requests that carried an X-Request-Id.
type costRecorder struct {
	mu   sync.Mutex
	cond *sync.Cond
	byID map[string]loaders.Report
}

func (c *costRecorder) observe(r *http.Request, rep loaders.Report) {
	id := r.Header.Get("X-Request-Id")
	if id == "" {
		return
	}
	c.mu.Lock()
	c.byID[id] = rep
	c.mu.Unlock()
	c.cond.Broadcast()
}

// wait returns the report of request id; the handler reports after writing its response.
func (c *costRecorder) wait(t *testing.T, id string) loaders.Report {
	t.Helper()
	timer := time.AfterFunc(10*time.Second, c.cond.Broadcast)
	defer timer.Stop()
	deadline := time.Now().Add(10 * time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if rep, ok := c.byID[id]; ok {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report for request %s", id)
		}
		c.cond.Wait()
	}
}

// measure sends a query as token ("" for anonymous) and returns its response and cost,
// failing the test on any error in the response.
func (e *costEnv) measure(t *testing.T, token, query string, vars map[string]any) (gqlResponse, loaders.Report) {
	t.Helper()
	resp, rep := e.cost(t, token, query, vars)
	if len(resp.Errors) > 0 {
		t.Fatalf("unexpected errors: %+v", resp.Errors)
	}
	return resp, rep
}

// cost sends a query as measure does, errors or not.
func (e *costEnv) cost(t *testing.T, token, query string, vars map[string]any) (gqlResponse, loaders.Report) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	id := storetest.Name("req")
	req.Header.Set("X-Request-Id", id)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp := e.do(req)
	return resp, e.reports.wait(t, id)
}

// tokenFor returns a bearer token for a seeded account.
func (e *costEnv) tokenFor(t *testing.T, id int64, role store.Role) string {
	t.Helper()
	tok, err := e.svc.Tokens.Issue(store.User{ID: id, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var fromTable = regexp.MustCompile("(?i)\\bFROM\\s+[\"`]?([a-z_]+)")

// tablesOf returns the table each statement of rep reads (the first after FROM that is not
// unnest, which the read-ahead's pages of customers start from), sorted, to compare with a
// want list independent of the order levels happened to run in.
func tablesOf(rep loaders.Report) []string {
	var tables []string
	for _, sql := range rep.SQL {
		table := sql
		for _, m := range fromTable.FindAllStringSubmatch(sql, -1) {
			if !strings.EqualFold(m[1], "unnest") {
				table = m[1]
				break
			}
		}
		tables = append(tables, table)
	}
	slices.Sort(tables)
	return tables
}

// requireTables fails unless the request issued exactly one statement per table in want.
func requireTables(t *testing.T, what string, rep loaders.Report, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := tablesOf(rep); !slices.Equal(got, want) || rep.Statements != len(want) {
		t.Fatalf("%s: %d statements on %v, want %d on %v; SQL:\n%s", what, rep.Statements, got, len(want), want,
			jsonLines(rep.SQL))
	}
}

func jsonLines(v []string) string {
	var b bytes.Buffer
	for _, s := range v {
		b.WriteString("  " + s + "\n")
	}
	return b.String()
}

// The two workloads of the performance issue, with the page size as a variable.
const (
	queryW1 = `query($n: Int!) { products(first: $n) { nodes { id name price { amount currency } stock merchant { id name } } } }`
	queryW2 = `query($n: Int!) { me { orders(first: $n) { nodes { id status total { amount } items { quantity unitPrice { amount } product { name merchant { name } } } history { status at } } } } }`
)

type w2Data struct {
	Me struct {
		Orders struct {
			Nodes []struct {
				ID      string
				Items   []struct{ Product struct{ Name string } }
				History []struct{ Status string }
			}
		}
	}
}

type w1Data struct {
	Products struct {
		Nodes []struct {
			ID       string
			Merchant struct{ Name string }
		}
	}
}

// seedPages seeds 5 merchants of 30 products and 12 customers: the first with 100 orders of
// 3 items, customer i with i orders.
// forEachSeededBackend runs test on each backend against a service without the cache,
// seeded by seedPages.
func forEachSeededBackend(t *testing.T, test func(t *testing.T, env *costEnv, seeded storetest.Seeded)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			env := newCostEnv(t, b.config(t), false)
			test(t, env, seedPages(t, env))
		})
	}
}

func seedPages(t *testing.T, env *costEnv) storetest.Seeded {
	t.Helper()
	return storetest.Seed(t, env.svc.Store, storetest.Shop{
		Merchants: 5, ProductsPerMerchant: 30, Stock: 1000, Customers: 12,
		OrdersOf: func(c int) int {
			if c == 0 {
				return 100
			}
			return c
		},
		ItemsOf: func(int) int { return 3 },
	})
}

// TestStatementsDoNotGrowWithThePage: W1 and W2 issue one statement per level of nesting,
// the same for a page of 20 as for a page of 100.
func TestStatementsDoNotGrowWithThePage(t *testing.T) {
	t.Parallel()
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		customer := env.tokenFor(t, seeded.CustomerIDs[0], store.RoleCustomer)
		for _, n := range []int{20, 100} {
			resp, rep := env.measure(t, customer, queryW2, map[string]any{"n": n})
			var w2 w2Data
			resp.Decode(t, &w2)
			if got := len(w2.Me.Orders.Nodes); got != n {
				t.Fatalf("W2 first %d: %d orders", n, got)
			}
			for _, o := range w2.Me.Orders.Nodes {
				if len(o.Items) != 3 || len(o.History) != 1 || o.Items[0].Product.Name == "" {
					t.Fatalf("W2 first %d: order %s has %d items, %d events", n, o.ID, len(o.Items), len(o.History))
				}
			}
			// me, its orders, their items and history, the items' products, their merchants.
			requireTables(t, "W2 first "+strconv.Itoa(n), rep,
				"users", "orders", "order_items", "order_status_events", "products", "users")
			// Every level read at once: the items' read its products and their merchants.
			requireNoWindow(t, "W2 first "+strconv.Itoa(n), rep)

			resp, rep = env.measure(t, "", queryW1, map[string]any{"n": n})
			var w1 w1Data
			resp.Decode(t, &w1)
			if got := len(w1.Products.Nodes); got != n {
				t.Fatalf("W1 first %d: %d products", n, got)
			}
			// On PostgreSQL the merchants are joined to the page's statement.
			w1Tables := []string{"products", "users"}
			if env.svc.Store.Postgres() {
				w1Tables = w1Tables[:1]
			}
			requireTables(t, "W1 first "+strconv.Itoa(n), rep, w1Tables...)
			requireNoWindow(t, "W1 first "+strconv.Itoa(n), rep)
			for _, name := range []string{"user"} {
				if got := rep.Batches[name]; len(got) != 1 {
					t.Fatalf("W1 first %d: %s loader sent batches %v, want one", n, name, got)
				}
			}
		}
	})
}

// TestOneOrderReadsItsMerchantsTogether: the merchants of one order's products are one
// statement, not one per line. gqlgen resolves the product of each line on its own, so each
// product's merchant is one key of a level the other lines share.
func TestOneOrderReadsItsMerchantsTogether(t *testing.T) {
	t.Parallel()
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		customer := env.tokenFor(t, seeded.CustomerIDs[0], store.RoleCustomer)
		resp, rep := env.measure(t, customer, `query($o: ID!) { order(id: $o) { items { product { name merchant { id name } } } } }`,
			map[string]any{"o": gid("Order", seeded.OrderIDs[0][0])})
		var one struct {
			Order struct {
				Items []struct {
					Product struct{ Merchant struct{ ID string } }
				}
			}
		}
		resp.Decode(t, &one)
		merchants := map[string]bool{}
		for _, it := range one.Order.Items {
			merchants[it.Product.Merchant.ID] = true
		}
		if len(one.Order.Items) != 3 || len(merchants) < 2 {
			t.Fatalf("the order should have 3 lines of at least 2 merchants: %s", resp.Data)
		}
		requireTables(t, "one order", rep, "orders", "order_items", "products", "users")
		requireNoWindow(t, "one order", rep)
	})
}

// requireNoWindow fails unless no loader of the request sent a batch from its batch window:
// every level was read at once, or found in the request's cache.
func requireNoWindow(t *testing.T, what string, rep loaders.Report) {
	t.Helper()
	if len(rep.Windowed) != 0 {
		t.Fatalf("%s: loaders waited for the batch window, batches %v (all batches %v); SQL:\n%s", what, rep.Windowed, rep.Batches,
			jsonLines(rep.SQL))
	}
}

// TestLoneRootFieldsDoNotWait: a query's only root field, and the fields below it outside
// any list, are their level's only keys: they are read at once, without the batch window.
// Several root fields still share it.
func TestLoneRootFieldsDoNotWait(t *testing.T) {
	t.Parallel()
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		customer := env.tokenFor(t, seeded.CustomerIDs[0], store.RoleCustomer)
		p0, p1 := gid("Product", seeded.ProductIDs[0]), gid("Product", seeded.ProductIDs[1])
		for _, c := range []struct {
			name, query string
			vars        map[string]any
			tables      []string
		}{
			{"me", `{ me { name orders(first: 5) { totalCount nodes { id } } products { totalCount } } }`, nil,
				[]string{"users", "orders", "orders", "products", "products"}},
			{"order", `query($o: ID!) { order(id: $o) { status customer { name } } }`,
				// Its customer needs no merchants of the order to see it.
				map[string]any{"o": gid("Order", seeded.OrderIDs[0][0])}, []string{"orders", "users"}},
			{"product", `query($p: ID!) { product(id: $p) { name merchant { name } } }`, map[string]any{"p": p0},
				[]string{"products", "users"}},
		} {
			_, rep := env.measure(t, customer, c.query, c.vars)
			requireTables(t, c.name, rep, c.tables...)
			requireNoWindow(t, c.name, rep)
		}
		_, rep := env.measure(t, customer, `query($a: ID!, $b: ID!) { a: product(id: $a) { name } b: product(id: $b) { name } }`,
			map[string]any{"a": p0, "b": p1})
		requireTables(t, "two products", rep, "products")
		if got := rep.Windowed["product"]; !slices.Equal(got, []int{2}) {
			t.Fatalf("two root products: window batches %v, want one of 2", got)
		}
	})
}

// TestNestedLevelsReadWhatTheQueryAsks: the items of a page's orders read the products
// their selection asks for, and the merchants below those, through fragments and aliases,
// and nothing that @include leaves out or the query does not name; the events of a page's
// orders answer their order from the page. No level waits for the batch window.
func TestNestedLevelsReadWhatTheQueryAsks(t *testing.T) {
	t.Parallel()
	const lines = `query($n: Int!, $merchant: Boolean!) { me { orders(first: $n) { nodes { id lines: items { ...line } } } } }
		fragment line on OrderItem { quantity ... on OrderItem { p: product { name ... @include(if: $merchant) { m: merchant { name } } } } }`
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		customer := env.tokenFor(t, seeded.CustomerIDs[0], store.RoleCustomer)
		for _, c := range []struct {
			name, query string
			vars        map[string]any
			tables      []string
		}{
			{"fragments and aliases", lines, map[string]any{"n": 20, "merchant": true},
				[]string{"users", "orders", "order_items", "products", "users"}},
			{"merchant left out", lines, map[string]any{"n": 20, "merchant": false},
				[]string{"users", "orders", "order_items", "products"}},
			{"no product", `{ me { orders(first: 20) { nodes { items { quantity } } } } }`, nil,
				[]string{"users", "orders", "order_items"}},
			{"history's order", `{ me { orders(first: 20) { nodes { id history { status order { id status } } } } } }`, nil,
				[]string{"users", "orders", "order_status_events"}},
		} {
			resp, rep := env.measure(t, customer, c.query, c.vars)
			requireTables(t, c.name, rep, c.tables...)
			requireNoWindow(t, c.name, rep)
			if c.name != "fragments and aliases" {
				continue
			}
			var got struct {
				Me struct {
					Orders struct {
						Nodes []struct {
							Lines []struct {
								P struct {
									Name string
									M    struct{ Name string }
								}
							}
						}
					}
				}
			}
			resp.Decode(t, &got)
			for _, o := range got.Me.Orders.Nodes {
				for _, l := range o.Lines {
					if l.P.Name == "" || l.P.M.Name == "" {
						t.Fatalf("%s: a line without its product or merchant: %s", c.name, resp.Data)
					}
				}
			}
		}
	})
}

// TestOrderHistoryReadsAhead: a page of orders read as a whole level brings along the items
// and the history its selection asks for, and the items' products and their merchants, on
// PostgreSQL in the page's round trip (one batch: its statements still count one each);
// SQLite reads them level by level. A token whose account is gone reads `me` as null. The
// answer is the
// one the levels read one by one give (a second root field makes every level Partial, which
// reads nothing ahead).
func TestOrderHistoryReadsAhead(t *testing.T) {
	t.Parallel()
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		customer := env.tokenFor(t, seeded.CustomerIDs[0], store.RoleCustomer)
		postgres := env.svc.Store.Postgres()
		type readCase struct {
			name, query string
			tables      []string // the statements of a request
			ahead       int      // of them, those a PostgreSQL batch sends with the page
		}
		for _, c := range []readCase{
			{"W2", queryW2, []string{"users", "orders", "order_items", "order_status_events", "products", "users"}, 4},
			{"products", `query($n: Int!) { me { orders(first: $n) { nodes { items { product { name } } } } } }`,
				[]string{"users", "orders", "order_items", "products"}, 2},
			{"items through edges", `query($n: Int!) { me { orders(first: $n) { edges { node { items { quantity } } } } } }`,
				[]string{"users", "orders", "order_items"}, 1},
			{"history", `query($n: Int!) { me { orders(first: $n) { nodes { history { status } } } } }`,
				[]string{"users", "orders", "order_status_events"}, 1},
			{"neither", `query($n: Int!) { me { orders(first: $n) { nodes { id total { amount } } } } }`,
				[]string{"users", "orders"}, 0},
		} {
			for _, n := range []int{20, 100} {
				what := c.name + " first " + strconv.Itoa(n)
				resp, rep := env.measure(t, customer, c.query, map[string]any{"n": n})
				requireTables(t, what, rep, c.tables...)
				requireNoWindow(t, what, rep)
				want := len(c.tables)
				if postgres {
					want -= c.ahead
				}
				if rep.RoundTrips != want {
					t.Fatalf("%s: %d statements in %d round trips, want %d; SQL:\n%s", what, rep.Statements, rep.RoundTrips, want,
						jsonLines(rep.SQL))
				}
				levels, _ := env.measure(t, customer, strings.Replace(c.query, "{ me {", "{ t: __typename me {", 1), map[string]any{"n": n})
				var got, byLevel struct{ Me json.RawMessage }
				resp.Decode(t, &got)
				levels.Decode(t, &byLevel)
				if !bytes.Equal(got.Me, byLevel.Me) {
					t.Fatalf("%s: read ahead\n%s\nlevel by level\n%s", what, got.Me, byLevel.Me)
				}
			}
		}
		gone := env.tokenFor(t, seeded.CustomerIDs[len(seeded.CustomerIDs)-1]+1_000_000, store.RoleCustomer)
		resp, _ := env.measure(t, gone, queryW2, map[string]any{"n": 20})
		if string(resp.Data) != `{"me":null}` {
			t.Fatalf("me of an account that is gone: %s", resp.Data)
		}
	})
}

// TestStorefrontReadsAhead: a page of products whose selection asks for their merchants
// brings the merchants along, on PostgreSQL in the page's statement (a merchant of several
// of its products once) and without asking the cache for them; SQLite reads them level by level through
// the cache. Filters, orderings and cursors narrow the merchants as they narrow the page,
// and each product's merchant is the one Query.product answers for it.
func TestStorefrontReadsAhead(t *testing.T) {
	t.Parallel()
	const merchant = `{ id name role createdAt }`
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			env := newCostEnv(t, b.config(t), true)
			seedPages(t, env)
			postgres := env.svc.Store.Postgres()
			var first struct {
				Products struct{ PageInfo struct{ EndCursor string } }
			}
			env.anon().must(`{ products(first: 7, orderBy: {field: PRICE, direction: ASC}, filter: {inStock: true, minPrice: 1}) {
				pageInfo { endCursor } } }`, nil, &first)
			for _, c := range []struct {
				name, query string
				vars        map[string]any
				merchants   bool
			}{
				{"W1", `query($n: Int!) { products(first: $n) { nodes { id name merchant ` + merchant + ` } } }`, map[string]any{"n": 50}, true},
				{"edges after a cursor", `query($after: String) { products(first: 9, after: $after, orderBy: {field: PRICE, direction: ASC},
					filter: {inStock: true, minPrice: 1}) { edges { node { id merchant ` + merchant + ` } } } }`,
					map[string]any{"after": first.Products.PageInfo.EndCursor}, true},
				{"fragments and aliases", `query($search: String) { products(first: 30, filter: {search: $search}, orderBy: {field: NAME, direction: DESC}) { ...page } }
					fragment page on ProductConnection { nodes { id ... on Product { seller: merchant ` + merchant + ` } } }`,
					map[string]any{"search": "product"}, true},
				{"merchant left out", `query($m: Boolean!) { products(first: 50) { nodes { id merchant @include(if: $m) { id } } } }`,
					map[string]any{"m": false}, false},
			} {
				dropCache(t, env) // SQLite reads the merchants again, PostgreSQL asks no cache
				resp, rep := env.measure(t, "", c.query, c.vars)
				tables := []string{"products"}
				if c.merchants && !postgres { // PostgreSQL joins them to the page's statement
					tables = append(tables, "users")
				}
				// On SQLite the merchant of each of a page's edges is a parent of its own, which waits
				// for the loader's window.
				if postgres || !strings.Contains(c.query, "edges") {
					requireTables(t, c.name, rep, tables...)
					requireNoWindow(t, c.name, rep)
				}
				if postgres && (rep.RoundTrips != 1 || rep.CacheHits+rep.CacheMisses != 0) {
					t.Fatalf("%s: %d round trips, %d cache hits, %d misses; want one round trip and no cache lookup; SQL:\n%s",
						c.name, rep.RoundTrips, rep.CacheHits, rep.CacheMisses, jsonLines(rep.SQL))
				}
				if !c.merchants {
					continue
				}
				type node struct {
					ID               string
					Merchant, Seller json.RawMessage
				}
				var got struct {
					Products struct {
						Nodes []node
						Edges []struct{ Node node }
					}
				}
				resp.Decode(t, &got)
				nodes := got.Products.Nodes
				for _, e := range got.Products.Edges {
					nodes = append(nodes, e.Node)
				}
				if len(nodes) < 5 {
					t.Fatalf("%s: only %d products: %s", c.name, len(nodes), resp.Data)
				}
				// Each product's merchant as the product's own root field reads it, through
				// the cache (in queries of fewer aliases than the limit).
				for from := 0; from < len(nodes); from += 25 {
					chunk := nodes[from:min(from+25, len(nodes))]
					var q strings.Builder
					q.WriteString("{")
					for i, n := range chunk {
						fmt.Fprintf(&q, " p%d: product(id: %q) { merchant %s }", i, n.ID, merchant)
					}
					q.WriteString(" }")
					one, _ := env.measure(t, "", q.String(), nil)
					var want map[string]struct{ Merchant json.RawMessage }
					one.Decode(t, &want)
					for i, n := range chunk {
						m := n.Merchant
						if m == nil {
							m = n.Seller
						}
						if w := want["p"+strconv.Itoa(i)].Merchant; !bytes.Equal(m, w) {
							t.Fatalf("%s: product %s has merchant %s, its own field %s", c.name, n.ID, m, w)
						}
					}
				}
			}
		})
	}
}

// TestWarmCacheSkipsLookups: with the cache warm, W1 and W2 read no user or product from the
// database by ID (on PostgreSQL W2's order page brings its products and merchants along, and
// W1's product page its merchants), and answer exactly what they answered cold.
func TestWarmCacheSkipsLookups(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			env := newCostEnv(t, cfg, true)
			seeded := seedPages(t, env)
			customer := env.tokenFor(t, seeded.CustomerIDs[0], store.RoleCustomer)
			vars := map[string]any{"n": 100}

			cold, rep := env.measure(t, customer, queryW2, vars)
			requireTables(t, "W2 cold", rep, "users", "orders", "order_items", "order_status_events", "products", "users")
			requireNoWindow(t, "W2 cold", rep)
			postgres := env.svc.Store.Postgres()
			if rep.CacheMisses == 0 {
				t.Fatalf("W2 cold: no cache misses counted: %+v", rep)
			}
			warm, rep := env.measure(t, customer, queryW2, vars)
			if postgres {
				// The items' products and merchants come with the page's batch, in its round
				// trip, rather than from the cache in two of their own: only the viewer is
				// read from the cache.
				requireTables(t, "W2 warm", rep, "orders", "order_items", "order_status_events", "products", "users")
				if rep.RoundTrips != 1 || rep.CacheMisses != 0 || rep.CacheHits != 1 {
					t.Fatalf("W2 warm: %d round trips, %d hits, %d misses", rep.RoundTrips, rep.CacheHits, rep.CacheMisses)
				}
			} else {
				requireTables(t, "W2 warm", rep, "orders", "order_items", "order_status_events")
				if rep.CacheMisses != 0 || rep.CacheHits == 0 {
					t.Fatalf("W2 warm: %d hits, %d misses", rep.CacheHits, rep.CacheMisses)
				}
			}
			requireNoWindow(t, "W2 warm", rep)
			if !bytes.Equal(cold.Data, warm.Data) {
				t.Fatalf("W2 warm answer differs from cold:\n%s\n%s", cold.Data, warm.Data)
			}

			dropCache(t, env)
			cold, rep = env.measure(t, "", queryW1, vars)
			if postgres {
				requireTables(t, "W1 cold", rep, "products") // the merchants joined to the page
			} else {
				requireTables(t, "W1 cold", rep, "products", "users")
			}
			warm, rep = env.measure(t, "", queryW1, vars)
			if postgres {
				// The merchants come with the page, in its statement, and not from the cache.
				requireTables(t, "W1 warm", rep, "products")
				if rep.RoundTrips != 1 || rep.CacheHits != 0 || rep.CacheMisses != 0 {
					t.Fatalf("W1 warm: %d round trips, %d hits, %d misses", rep.RoundTrips, rep.CacheHits, rep.CacheMisses)
				}
			} else {
				requireTables(t, "W1 warm", rep, "products")
			}
			requireNoWindow(t, "W1 warm", rep)
			if !bytes.Equal(cold.Data, warm.Data) {
				t.Fatalf("W1 warm answer differs from cold:\n%s\n%s", cold.Data, warm.Data)
			}
		})
	}
}

// TestChildPagesOfManyParents: User.products and User.orders of many users in one request
// are each one statement (and one for their totalCount), with the pages a single user's list
// gives.
func TestChildPagesOfManyParents(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			cfg.AdminEmail, cfg.AdminPassword = "admin-"+storetest.Name("a")+"@example.com", "admin-password"
			env := newCostEnv(t, cfg, false)
			seeded := seedPages(t, env)

			// Every merchant's newest 5 products, for each of 50 products.
			resp, rep := env.measure(t, "", `{ products(first: 50) { nodes { merchant { id
				products(first: 5) { totalCount nodes { id } pageInfo { hasNextPage endCursor } } } } } }`, nil)
			// On PostgreSQL the merchants are joined to the page's statement.
			tables := []string{"products", "products", "products"}
			if !env.svc.Store.Postgres() {
				tables = append(tables, "users")
			}
			requireTables(t, "merchant products", rep, tables...)
			requireNoWindow(t, "merchant products", rep)
			var merchants struct {
				Products struct {
					Nodes []struct {
						Merchant struct {
							ID       string
							Products struct {
								TotalCount int
								Nodes      []struct{ ID string }
								PageInfo   struct {
									HasNextPage bool
									EndCursor   string
								}
							}
						}
					}
				}
			}
			resp.Decode(t, &merchants)
			checked := map[string]bool{}
			for _, n := range merchants.Products.Nodes {
				m := n.Merchant
				if checked[m.ID] {
					continue
				}
				checked[m.ID] = true
				if m.Products.TotalCount != 30 || !m.Products.PageInfo.HasNextPage || len(m.Products.Nodes) != 5 {
					t.Fatalf("merchant %s: %+v", m.ID, m.Products)
				}
				// The same page and the next through the merchant filter of the root list.
				var direct struct {
					Page, Next struct{ Nodes []struct{ ID string } }
				}
				env.anon().must(`query($m: ID!, $after: String) {
					page: products(first: 5, filter: {merchantId: $m}) { nodes { id } }
					next: products(first: 5, after: $after, filter: {merchantId: $m}) { nodes { id } } }`,
					map[string]any{"m": m.ID, "after": m.Products.PageInfo.EndCursor}, &direct)
				if !slices.Equal(direct.Page.Nodes, m.Products.Nodes) {
					t.Fatalf("merchant %s: nested page %v, root list %v", m.ID, m.Products.Nodes, direct.Page.Nodes)
				}
				var next struct {
					User struct {
						Products struct{ Nodes []struct{ ID string } }
					}
				}
				env.anon().must(`query($m: ID!, $after: String) { user(id: $m) { products(first: 5, after: $after) { nodes { id } } } }`,
					map[string]any{"m": m.ID, "after": m.Products.PageInfo.EndCursor}, &next)
				if len(next.User.Products.Nodes) != 5 || !slices.Equal(next.User.Products.Nodes, direct.Next.Nodes) {
					t.Fatalf("merchant %s: second page %v, root list %v", m.ID, next.User.Products.Nodes, direct.Next.Nodes)
				}
			}
			if len(checked) < 2 {
				t.Fatalf("only %d merchants in the page", len(checked))
			}

			// Pages asked for with different arguments: one statement per set of arguments.
			resp, rep = env.measure(t, "", `query($a: ID!, $b: ID!, $c: ID!) {
				a: user(id: $a) { products(first: 2) { nodes { id } } }
				b: user(id: $b) { products(first: 3) { nodes { id } } }
				c: user(id: $c) { products(first: 2) { nodes { id } } } }`,
				map[string]any{"a": gid("User", seeded.MerchantIDs[0]), "b": gid("User", seeded.MerchantIDs[1]), "c": gid("User", seeded.MerchantIDs[2])})
			requireTables(t, "mixed page sizes", rep, "users", "products", "products")
			var mixed struct {
				A, B, C struct {
					Products struct{ Nodes []struct{ ID string } }
				}
			}
			resp.Decode(t, &mixed)
			if len(mixed.A.Products.Nodes) != 2 || len(mixed.B.Products.Nodes) != 3 || len(mixed.C.Products.Nodes) != 2 {
				t.Fatalf("mixed page sizes: %s", resp.Data)
			}

			// Every customer's newest 3 orders, for each of 60 orders, as ADMIN.
			var login struct{ LogIn struct{ Token string } }
			env.anon().must(`mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }`,
				map[string]any{"e": cfg.AdminEmail, "p": cfg.AdminPassword}, &login)
			resp, rep = env.measure(t, login.LogIn.Token, `{ orders(first: 60) { nodes { customer { id
				orders(first: 3, status: PENDING) { totalCount nodes { id } pageInfo { hasNextPage } } } } } }`, nil)
			requireTables(t, "customer orders", rep, "orders", "users", "orders", "orders")
			requireNoWindow(t, "customer orders", rep)
			var customers struct {
				Orders struct {
					Nodes []struct {
						Customer struct {
							ID     string
							Orders struct {
								TotalCount int
								Nodes      []struct{ ID string }
								PageInfo   struct{ HasNextPage bool }
							}
						}
					}
				}
			}
			resp.Decode(t, &customers)
			want := map[string][]int64{}
			for i, id := range seeded.CustomerIDs {
				want[gid("User", id)] = seeded.OrderIDs[i]
			}
			seen := map[string]bool{}
			for _, n := range customers.Orders.Nodes {
				c := n.Customer
				seen[c.ID] = true
				placed := want[c.ID]
				var newest []struct{ ID string }
				for i := len(placed) - 1; i >= 0 && len(newest) < 3; i-- {
					newest = append(newest, struct{ ID string }{gid("Order", placed[i])})
				}
				if c.Orders.TotalCount != len(placed) || c.Orders.PageInfo.HasNextPage != (len(placed) > 3) ||
					!slices.Equal(c.Orders.Nodes, newest) {
					t.Fatalf("customer %s placed %v: got %+v", c.ID, placed, c.Orders)
				}
			}
			if len(seen) < 2 {
				t.Fatalf("only %d customers in the page", len(seen))
			}
		})
	}
}

// TestPagesOfOthersAreNotRead: the customers of a merchant's orders keep their orders to
// themselves (FORBIDDEN, each for its own customer), and reading their pages ahead of
// User.orders does not read them either.
func TestPagesOfOthersAreNotRead(t *testing.T) {
	t.Parallel()
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		merchant := env.tokenFor(t, seeded.MerchantIDs[0], store.RoleMerchant)
		resp, rep := env.cost(t, merchant, `{ orders(first: 20) { nodes { customer { name orders(first: 3) { totalCount nodes { id } } } } } }`, nil)
		var data struct {
			Orders struct {
				Nodes []struct {
					Customer struct {
						Name   string
						Orders *struct{ TotalCount int }
					}
				}
			}
		}
		resp.Decode(t, &data)
		if len(data.Orders.Nodes) == 0 || len(resp.Errors) != len(data.Orders.Nodes) {
			t.Fatalf("%d orders, %d errors, want one FORBIDDEN each: %+v", len(data.Orders.Nodes), len(resp.Errors), resp.Errors)
		}
		for i, n := range data.Orders.Nodes {
			if n.Customer.Name == "" || n.Customer.Orders != nil || resp.Errors[i].Extensions["code"] != "FORBIDDEN" {
				t.Fatalf("order %d: %+v, error %+v", i, n.Customer, resp.Errors[i])
			}
		}
		requireTables(t, "others' orders", rep, "orders", "users")
		requireNoWindow(t, "others' orders", rep)
	})
}

// TestListsWaitForTheWindowOnce: a list resolves its elements one after another (no
// goroutine each) until one waits for the batch window; the rest then go concurrently and
// meet in one window. Here each event's order asks for its items, which nothing read
// ahead: the events of every order are one span (exec.WithSpan), and so are their orders,
// whose items are one batch for all five, where elements resolved one by one would wait
// once each (and before spans, the first order's items were one batch, the others' one more).
func TestListsWaitForTheWindowOnce(t *testing.T) {
	t.Parallel()
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		customer := env.tokenFor(t, seeded.CustomerIDs[0], store.RoleCustomer)
		_, rep := env.measure(t, customer, `{ me { orders(first: 5) { nodes { history { order { items { product { name } } } } } } } }`, nil)
		if got := rep.Windowed["items"]; !slices.Equal(got, []int{5}) {
			t.Fatalf("items batches from the window %v, want [5] (all batches %v)", got, rep.Batches)
		}
	})
}

// TestPlacedOrderReadsNothingBack: placeOrder's payload shows the items and the products'
// new stock from what its transaction wrote: the products locked and updated, the order,
// its items and its event written, and only the merchants read.
func TestPlacedOrderReadsNothingBack(t *testing.T) {
	t.Parallel()
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		customer := env.tokenFor(t, seeded.CustomerIDs[1], store.RoleCustomer)
		resp, rep := env.measure(t, customer, `mutation($a: ID!, $b: ID!) {
			placeOrder(input: {items: [{productId: $a, quantity: 2}, {productId: $b, quantity: 1}]}) {
				order { id items { quantity product { name stock merchant { name } } } } userErrors { code } } }`,
			map[string]any{"a": gid("Product", seeded.ProductIDs[0]), "b": gid("Product", seeded.ProductIDs[40])})
		var out struct {
			PlaceOrder struct {
				Order struct {
					Items []struct {
						Quantity int
						Product  struct {
							Name     string
							Stock    int
							Merchant struct{ Name string }
						}
					}
				}
			}
		}
		resp.Decode(t, &out)
		items := out.PlaceOrder.Order.Items
		if len(items) != 2 || items[0].Product.Stock != 1000-2 || items[1].Product.Stock != 1000-1 ||
			items[0].Product.Name == "" || items[1].Product.Merchant.Name == "" {
			t.Fatalf("payload %+v, want the products' new stock", items)
		}
		// Locking and updating the products, writing the order, its items, its stock movements
		// (one INSERT for every line) and its event, and reading the merchants: seven
		// statements, none of them a read of what was written.
		if rep.Statements != 7 {
			t.Fatalf("placed order: %d statements, want 7; SQL:\n%s", rep.Statements, jsonLines(rep.SQL))
		}
	})
}

// TestNodesBatchedWithPerKeyNotFound: node(id:) and product(id:) of several IDs in one
// request share one statement per type, and an unknown ID is NOT_FOUND for itself alone.
func TestNodesBatchedWithPerKeyNotFound(t *testing.T) {
	t.Parallel()
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		body, _ := json.Marshal(map[string]any{"query": `query($p1: ID!, $p2: ID!, $u: ID!, $missing: ID!) {
			a: node(id: $p1) { id ... on Product { name } }
			b: node(id: $p2) { id ... on Product { name } }
			c: node(id: $u) { id ... on User { name } }
			d: product(id: $missing) { name } }`,
			"variables": map[string]any{"p1": gid("Product", seeded.ProductIDs[0]), "p2": gid("Product", seeded.ProductIDs[40]),
				"u": gid("User", seeded.CustomerIDs[3]), "missing": gid("Product", 1<<40)}})
		req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		id := storetest.Name("req")
		req.Header.Set("X-Request-Id", id)
		resp := env.do(req)
		rep := env.reports.wait(t, id)
		var data struct {
			A, B, C struct{ ID, Name string }
			D       *struct{ Name string }
		}
		resp.Decode(t, &data)
		if data.A.Name == "" || data.B.Name == "" || data.C.Name == "" || data.D != nil {
			t.Fatalf("data: %s", resp.Data)
		}
		if len(resp.Errors) != 1 || resp.Code() != "NOT_FOUND" || len(resp.Errors[0].Path) != 1 || resp.Errors[0].Path[0] != "d" {
			t.Fatalf("errors: %+v", resp.Errors)
		}
		if got := rep.Batches["product"]; !slices.Equal(got, []int{3}) {
			t.Fatalf("product batches %v, want one of 3; SQL:\n%s", got, jsonLines(rep.SQL))
		}
		requireTables(t, "nodes", rep, "products", "users")
	})
}

// dropCache deletes the service's cache entries, so the next request is cold again.
func dropCache(t *testing.T, env *costEnv) {
	t.Helper()
	ctx := context.Background()
	iter := env.svc.Redis.Scan(ctx, 0, env.svc.RedisPrefix()+"cache:*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := env.svc.Redis.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestObjectFieldsMeetInTheWindow: an object's resolver fields run one after another (no
// goroutine each) until one waits for the batch window, and the rest then go concurrently
// (graph/exec/later.go). Two root fields share the window, so each order's items, history and
// customer wait for it: the two orders' items still meet in one batch, and so do their
// histories, where one goroutine resolving both orders' fields in turn would send batches
// of one.
func TestObjectFieldsMeetInTheWindow(t *testing.T) {
	t.Parallel()
	forEachSeededBackend(t, func(t *testing.T, env *costEnv, seeded storetest.Seeded) {
		customer := env.tokenFor(t, seeded.CustomerIDs[0], store.RoleCustomer)
		orders := seeded.OrderIDs[0]
		_, rep := env.measure(t, customer, `query($a: ID!, $b: ID!) {
			a: node(id: $a) { ... on Order { items { quantity } history { status } customer { name } } }
			b: node(id: $b) { ... on Order { items { quantity } history { status } customer { name } } } }`,
			map[string]any{"a": gid("Order", orders[0]), "b": gid("Order", orders[1])})
		for _, loader := range []string{"items", "history"} {
			if got := rep.Windowed[loader]; !slices.Equal(got, []int{2}) {
				t.Errorf("%s batches from the window %v, want [2] (all batches %v)", loader, got, rep.Batches)
			}
		}
	})
}

// TestShipmentsAndLedgerBatched: Order.shipments (with their items, products and
// merchants) and Product.stockMovements (with totalCount and each movement's order) cost one
// statement per level, the same for a page of 2 as of 6.
func TestShipmentsAndLedgerBatched(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			env := newCostEnv(t, b.config(t), false)
			merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
			products := []string{env.createProduct(merchant, "A", 100, 100), env.createProduct(merchant, "B", 100, 100),
				env.createProduct(merchant, "C", 100, 100)}
			for i := range 6 {
				order := env.placeOrder(customer, line{products[i%3], 1}, line{products[(i+1)%3], 2})
				r, p := env.as(merchant.Token).mutate("updateOrderStatus", opUpdateOrderStatus,
					map[string]any{"in": map[string]any{"id": order, "status": "PAID"}})
				requireOK(t, r, p)
				shipped(t)(env.as(merchant.Token).ship(order, "UPS", fmt.Sprintf("T%d", i), nil))
			}
			for _, n := range []int{2, 6} {
				resp, rep := env.measure(t, customer.Token, `query($n: Int!) { me { orders(first: $n) { nodes { id
					shipments { carrier merchant { name } items { quantity product { name } } } } } } }`, map[string]any{"n": n})
				var out struct {
					Me struct {
						Orders struct {
							Nodes []struct {
								Shipments []struct {
									Items []struct{ Product struct{ Name string } }
								}
							}
						}
					}
				}
				resp.Decode(t, &out)
				if len(out.Me.Orders.Nodes) != n || len(out.Me.Orders.Nodes[0].Shipments) != 1 ||
					len(out.Me.Orders.Nodes[0].Shipments[0].Items) != 2 {
					t.Fatalf("shipments of %d orders: %+v", n, out)
				}
				// me, its orders, their shipments, the shipments' lines, their products, and
				// the shipments' merchants with the products' (none asked here).
				requireTables(t, fmt.Sprintf("shipments of %d orders", n), rep,
					"users", "orders", "shipments", "shipment_items", "products", "users")

				resp, rep = env.measure(t, merchant.Token, `query($n: Int!, $m: ID!) { products(first: $n, filter: {merchantId: $m}) {
					nodes { id stockMovements(first: 3) { totalCount nodes { delta stockAfter reason order { id status } } } } } }`,
					map[string]any{"n": min(n, 3), "m": merchant.ID})
				var ledger struct {
					Products struct {
						Nodes []struct {
							StockMovements struct {
								TotalCount int
								Nodes      []struct{ Order *struct{ ID string } }
							}
						}
					}
				}
				resp.Decode(t, &ledger)
				if len(ledger.Products.Nodes) != min(n, 3) || ledger.Products.Nodes[0].StockMovements.TotalCount != 5 ||
					ledger.Products.Nodes[0].StockMovements.Nodes[0].Order == nil {
					t.Fatalf("ledgers: %s", resp.Data)
				}
				// The products, a page of each one's movements, their counts, their orders.
				requireTables(t, fmt.Sprintf("ledgers of %d products", min(n, 3)), rep,
					"products", "stock_movements", "stock_movements", "orders")
			}
		})
	}
}
