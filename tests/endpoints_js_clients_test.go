package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/store/storetest"
)

// The GraphQL clients apps use, from npm, against the running server: Apollo Client (HTTP,
// persisted queries, graphql-ws subscriptions, relay-style pagination), urql, and
// graphql-codegen's client preset with tsc. Each test asserts what the client shows: the
// data it returned or holds in its cache. The scripts are in tests/testdata/node.

// nodeClients returns the absolute directory of the Node clients, skipping (failing under
// SHOP_TEST_REQUIRE_SERVICES=1) when node or the npm packages are missing.
func nodeClients(t *testing.T, pkg string) string {
	t.Helper()
	storetest.RequireCommand(t, "node")
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(pkg)))
	storetest.Require(t, err == nil, pkg+" is not installed: run npm ci --prefix tests/testdata/node")
	return dir
}

// runNode runs a Node program to its end and returns its stdout, failing the test when it
// exits non-zero. Its stderr goes to the test log.
func runNode(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.Stderr = &nodeLogWriter{t}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\nstdout: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// decodeLines decodes every line of out into a new T.
func decodeLines[T any](t *testing.T, out []byte) []T {
	t.Helper()
	var lines []T
	for l := range strings.Lines(string(out)) {
		var v T
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("node printed %q: %v", l, err)
		}
		lines = append(lines, v)
	}
	return lines
}

// clientLine is one line a streaming client script prints.
type clientLine struct {
	Ready  bool            `json:"ready"`
	Query  json.RawMessage `json:"query"`
	Event  json.RawMessage `json:"event"`
	Cached json.RawMessage `json:"cached"`
	Error  string          `json:"error"`
}

// startNode starts a streaming Node script in dir, ended after timeout or with the test,
// and returns the lines it prints, each decoded as an L.
func startNode[L any](t *testing.T, dir string, timeout time.Duration, args ...string) <-chan L {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.Stderr = &nodeLogWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	lines := make(chan L, 64)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; _ = cmd.Wait() })
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l L
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("node printed %q", sc.Text())
				continue
			}
			lines <- l
		}
	}()
	return lines
}

// nextClientLine returns the next line the client printed, failing on an error line.
func nextClientLine(t *testing.T, lines <-chan clientLine) clientLine {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the node client exited")
		}
		if l.Error != "" {
			t.Fatalf("the node client failed: %s", l.Error)
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("the node client printed nothing for 30 s")
	}
	panic("unreachable")
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") + "/graphql" }

// createProducts creates n products of one new merchant; the tests then compare what the
// clients show with the server's own answer.
func (e *testEnv) createProducts(n int) {
	e.t.Helper()
	m := e.signUp("MERCHANT")
	for i := range n {
		e.createProduct(m, fmt.Sprintf("Product %02d", i), 100+i, 10)
	}
}

func TestClientsApolloPersistedQueries(t *testing.T) {
	dir := nodeClients(t, "@apollo/client")
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.createProducts(4)
		// Apollo adds __typename to every selection, and so does the expectation.
		var want json.RawMessage
		env.anon().must(`{ products(first: 3, orderBy: {field: NAME, direction: ASC}) { __typename totalCount nodes { __typename id name price { __typename amount currency } } } }`, nil, &want)

		type request struct {
			Hash  *string
			Query bool
		}
		type run struct {
			Run      int
			Data     json.RawMessage
			Error    *string
			Requests []request
		}
		runs := decodeLines[run](t, runNode(t, dir, "apollo-apq.mjs", env.srv.URL+"/graphql", "2"))
		if len(runs) != 2 {
			t.Fatalf("want 2 runs, got %+v", runs)
		}
		for _, r := range runs {
			if r.Error != nil {
				t.Fatalf("run %d: Apollo reported %s", r.Run, *r.Error)
			}
			requireSameJSON(t, fmt.Sprintf("run %d: the data Apollo returned", r.Run), r.Data, want)
			for _, q := range r.Requests {
				if q.Hash == nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(*q.Hash) {
					t.Fatalf("run %d sent no sha256 hash: %+v", r.Run, r.Requests)
				}
			}
		}
		// The first run learns the hash is unknown and sends the query; the second sends
		// the hash alone, and the server, which remembered it, answers.
		if r := runs[0].Requests; len(r) != 2 || r[0].Query || !r[1].Query {
			t.Fatalf("run 1: want the hash alone, then hash and query; got %+v", r)
		}
		if r := runs[1].Requests; len(r) != 1 || r[0].Query || *r[0].Hash != *runs[0].Requests[0].Hash {
			t.Fatalf("run 2: want only the same hash; got %+v", r)
		}
	})
}

// requireSameJSON fails unless got and want decode to equal values.
func requireSameJSON(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want %v in %s", what, err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// subscribedEvent is an orderStatusChanged event as the client scripts select it.
type subscribedEvent struct {
	OrderStatusChanged struct {
		ID, Status     string
		PreviousStatus *string
		Order          struct{ ID, Status string }
	}
}

// requireStatusEvents reads one event per status from lines and checks what the client
// got: the status, and the order in that status.
func requireStatusEvents(t *testing.T, lines <-chan clientLine, order string, statuses ...string) {
	t.Helper()
	for _, want := range statuses {
		l := nextClientLine(t, lines)
		var e subscribedEvent
		if l.Event == nil || json.Unmarshal(l.Event, &e) != nil {
			t.Fatalf("want the %s event, got %+v", want, l)
		}
		if got := e.OrderStatusChanged; got.Status != want || got.Order.ID != order || got.Order.Status != want {
			t.Fatalf("want %s on order %s, got %s", want, order, l.Event)
		}
	}
}

// requireReady waits for the client's socket to be acknowledged.
func requireReady(t *testing.T, lines <-chan clientLine) {
	t.Helper()
	if l := nextClientLine(t, lines); !l.Ready {
		t.Fatalf("want the socket acknowledged first, got %+v", l)
	}
}

func TestClientsApolloSubscription(t *testing.T) {
	dir := nodeClients(t, "@apollo/client")
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		// After the creation event: nothing to replay yet, but no gap should the client be
		// slow to register.
		created := env.eventIDs(s.customer, s.order)[0]
		lines := startNode[clientLine](t, dir, time.Minute, "apollo-subscribe.mjs", env.srv.URL+"/graphql", wsURL(env.srv.URL),
			s.customer.Token, s.order, created, "2")
		requireReady(t, lines)
		env.waitSubscribers(1) // the changes below go out live, not as a replay
		// Each change waits for the client to show the previous one, so that each event
		// carries the order as of that event.
		for _, st := range []string{"PAID", "SHIPPED"} {
			env.moveOrderTo(s.merchant, s.order, st)
			requireStatusEvents(t, lines, s.order, st)
		}

		// What a component reading the order from Apollo's cache renders.
		var cached struct{ ID, Status string }
		l := nextClientLine(t, lines)
		if json.Unmarshal(l.Cached, &cached) != nil || cached.ID != s.order || cached.Status != "SHIPPED" {
			t.Fatalf("want the cached order SHIPPED, got %+v (%s)", l, l.Cached)
		}
	})
}

func TestClientsApolloRelayPagination(t *testing.T) {
	dir := nodeClients(t, "@apollo/client")
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.createProducts(23)
		var all struct {
			Products struct{ Nodes []struct{ ID string } }
		}
		env.anon().must(`{ products(first: 100) { nodes { id } } }`, nil, &all)
		want := make([]string, len(all.Products.Nodes))
		for i, n := range all.Products.Nodes {
			want[i] = n.ID
		}

		var got struct {
			Pages       int
			IDs         []string
			HasNextPage bool
		}
		if err := json.Unmarshal(runNode(t, dir, "apollo-pagination.mjs", env.srv.URL+"/graphql", "5"), &got); err != nil {
			t.Fatal(err)
		}
		if got.Pages != (len(want)+4)/5 || got.HasNextPage {
			t.Fatalf("want %d pages ending without a next page, got %+v", (len(want)+4)/5, got)
		}
		if !reflect.DeepEqual(got.IDs, want) {
			t.Fatalf("the cache-merged list differs from the server's order:\n got %v\nwant %v", got.IDs, want)
		}
	})
}

func TestClientsUrql(t *testing.T) {
	dir := nodeClients(t, "@urql/core")
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		created := env.eventIDs(s.customer, s.order)[0]
		lines := startNode[clientLine](t, dir, time.Minute, "urql.mjs", env.srv.URL+"/graphql", wsURL(env.srv.URL),
			s.customer.Token, s.order, created, "2")

		var q struct {
			Order struct {
				ID, Status string
				Items      []struct {
					Quantity int
					Product  struct{ Name string }
				}
			}
		}
		l := nextClientLine(t, lines)
		if json.Unmarshal(l.Query, &q) != nil || q.Order.ID != s.order || q.Order.Status != "PENDING" ||
			len(q.Order.Items) != 1 || q.Order.Items[0].Product.Name != "Kettle" || q.Order.Items[0].Quantity != 1 {
			t.Fatalf("want the PENDING order of one Kettle, got %+v (%s)", l, l.Query)
		}
		requireReady(t, lines)
		env.waitSubscribers(1) // the changes below go out live, not as a replay
		// Each change waits for the client to show the previous one, so that each event
		// carries the order as of that event.
		for _, st := range []string{"PAID", "CANCELLED"} {
			env.moveOrderTo(s.merchant, s.order, st)
			requireStatusEvents(t, lines, s.order, st)
		}
	})
}

// TestClientsCodegen generates typed operations for a client's operation file
// (testdata/node/clients/shop.ts) with graphql-codegen's client preset and typechecks them
// with tsc. The schema is SHOP_SCHEMA_FILE when set (an SDL file, such as the output of
// `go run . schema`; relative to the repository root), else the running server's, by
// introspection.
func TestClientsCodegen(t *testing.T) {
	dir := nodeClients(t, "@graphql-codegen/client-preset")
	work := t.TempDir()
	for _, f := range []string{"shop.ts", "mistyped.ts", "tsconfig.json"} {
		copyFile(t, filepath.Join(dir, "clients", f), filepath.Join(work, f))
	}
	// Presets and @graphql-typed-document-node/core resolve from the work directory.
	if err := os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}

	schema := filepath.Join(work, "schema.graphql")
	if f := os.Getenv("SHOP_SCHEMA_FILE"); f != "" {
		if !filepath.IsAbs(f) {
			f = filepath.Join("..", f)
		}
		copyFile(t, f, schema)
	} else {
		env := embedded(t, config{})
		writeFile(t, schema, runNode(t, dir, "schema.mjs", env.srv.URL+"/graphql"))
	}

	config, _ := json.Marshal(map[string]any{
		"schema":    "schema.graphql",
		"documents": []string{"shop.ts"},
		"generates": map[string]any{"gql/": map[string]any{"preset": "client"}},
		"silent":    true,
	})
	writeFile(t, filepath.Join(work, "codegen.json"), config)
	runNode(t, work, filepath.Join(dir, "node_modules", "@graphql-codegen", "cli", "esm", "bin.js"), "--config", "codegen.json")

	generated, err := os.ReadFile(filepath.Join(work, "gql", "graphql.ts"))
	if err != nil {
		t.Fatalf("codegen wrote no gql/graphql.ts: %v", err)
	}
	for _, want := range []string{
		"export type ProductPageQuery = ",
		"export type ProductPageQueryVariables = ",
		"export const ProductPageDocument = ",
		"export type OrderTrackingSubscription = ",
		"export type PlaceOrderMutation = ",
	} {
		if !strings.Contains(string(generated), want) {
			t.Errorf("gql/graphql.ts lacks %q", want)
		}
	}
	if !regexp.MustCompile(`export (enum|type) OrderStatus\b`).Match(generated) {
		t.Error("gql/graphql.ts lacks the OrderStatus enum")
	}

	tsc := filepath.Join(dir, "node_modules", "typescript", "bin", "tsc")
	runNode(t, work, tsc, "-p", "tsconfig.json")
	// The same check must reject a file that misuses the generated types.
	cmd := exec.CommandContext(t.Context(), "node", tsc, "-p", "tsconfig.json", "--noEmit")
	cmd.Dir = work
	writeFile(t, filepath.Join(work, "tsconfig.json"), []byte(strings.Replace(
		readFile(t, filepath.Join(work, "tsconfig.json")), `"shop.ts"`, `"shop.ts", "mistyped.ts"`, 1)))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "mistyped.ts") || !strings.Contains(string(out), "not assignable to type 'string'") {
		t.Fatalf("tsc should reject mistyped.ts: err %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	writeFile(t, to, []byte(readFile(t, from)))
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
