package tests

// BenchmarkPurchase measures the server CPU of a purchase in the production configuration:
// the server binary in its own process (APP_ENV=production, PostgreSQL, Redis,
// PAYMENT_PROVIDER=stripe against a stripe-mock), its CPU time read from /proc/<pid>/stat
// around each step. A purchase is placeOrder, payOrder (which creates the PaymentIntent) and
// its settlement (a signed payment_intent.succeeded webhook). With BENCH_OLD_REF the commit
// before checkout is built too (from git archive) and its placeOrder measured alike, so the
// cost the reservation adds to placeOrder (its expiry job, written in the order's
// transaction) shows beside it.
//
//	DATABASE_URL=… REDIS_URL=… BENCH_OLD_REF=<commit> go test ./tests -run '^$' -bench Purchase -benchtime 1x
//
//	BENCH_PURCHASES  purchases per round (default 400); BENCH_CONCURRENCY clients (default 8)
//	BENCH_ROUNDS     rounds, alternating the builds; figures are medians (default 3)
//	BENCH_NEW_ENV    space-separated KEY=value settings added to the new build's environment
//	                 (e.g. ORDER_RESERVATION_TTL=0, to price the reservation's job)

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shop/api/store/storetest"
)

// purchaseServer is one build's server with its shop: a merchant's product and customers.
type purchaseServer struct {
	name      string
	srv       *benchServer
	stripe    bool
	product   string
	customers []string // tokens
}

func BenchmarkPurchase(b *testing.B) {
	baseDB, redisURL := os.Getenv("DATABASE_URL"), os.Getenv("REDIS_URL")
	storetest.Require(b, baseDB != "" && redisURL != "", "DATABASE_URL and REDIS_URL are needed: purchase benchmark skipped")
	storetest.RedisURL(b)
	stripeURL := startStripeMock(b)
	n := benchEnvInt(b, "BENCH_PURCHASES", 400)
	c := benchEnvInt(b, "BENCH_CONCURRENCY", 8)
	rounds := benchEnvInt(b, "BENCH_ROUNDS", 3)
	root := repoRoot(b)

	var servers []*purchaseServer
	if ref := os.Getenv("BENCH_OLD_REF"); ref != "" {
		rev := gitRev(b, root, ref)
		servers = append(servers, startPurchaseServer(b, "old "+rev, buildServerBinary(b, archiveRev(b, root, rev), "."), redisURL, "", c))
	}
	servers = append(servers, startPurchaseServer(b, "new "+gitRev(b, root, "HEAD")+dirtyMark(b, root),
		buildServerBinary(b, root, "."), redisURL, stripeURL, c))

	type key struct{ build, step string }
	cpu := map[key][]float64{}
	for r := range rounds {
		order := slices.Clone(servers)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			for step, µs := range s.round(b, n, c) {
				cpu[key{s.name, step}] = append(cpu[key{s.name, step}], µs)
			}
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "Purchase benchmark: server CPU µs per operation, median of %d rounds of %d purchases by %d clients, production config (PostgreSQL, Redis, Stripe on stripe-mock).\n\n", rounds, n, c)
	table.WriteString("| build | placeOrder | payOrder | settlement (webhook) | purchase |\n|---|---|---|---|---|\n")
	for _, s := range servers {
		med := func(step string) float64 { return median(cpu[key{s.name, step}]) }
		cell := func(step string) string {
			if len(cpu[key{s.name, step}]) == 0 {
				return "—"
			}
			return fmt.Sprintf("%.0f", med(step))
		}
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s |\n", s.name, cell("place"), cell("pay"), cell("settle"), cell("purchase"))
		for _, step := range []string{"place", "pay", "settle", "purchase"} {
			if len(cpu[key{s.name, step}]) > 0 {
				b.Run(strings.ReplaceAll(s.name, " ", "_")+"/"+step, func(b *testing.B) { b.ReportMetric(med(step), "cpu-µs/op") })
			}
		}
	}
	fmt.Print("\n" + table.String() + "\n")
}

// archiveRev extracts the tree of rev into a temporary directory (git archive: no worktree
// is registered in the repository).
func archiveRev(tb testing.TB, root, rev string) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "old")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	archive := exec.Command("git", "archive", rev)
	archive.Dir = root
	tar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	tar.Stdin = pipe
	if err := tar.Start(); err != nil {
		tb.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		tb.Fatalf("git archive %s: %v", rev, err)
	}
	if err := tar.Wait(); err != nil {
		tb.Fatalf("tar: %v", err)
	}
	return dir
}

// startPurchaseServer starts bin on a fresh database and signs up its shop: a merchant with
// one product of ample stock, and one customer per client. stripeURL empty: no provider.
func startPurchaseServer(tb testing.TB, name, bin, redisURL, stripeURL string, clients int) *purchaseServer {
	tb.Helper()
	env := []string{"APP_ENV=production", "DATABASE_URL=" + storetest.PostgresURL(tb), "REDIS_URL=" + redisURL,
		"REDIS_PREFIX=" + storetest.RedisPrefix(tb, redisURL), "JWT_SECRET=" + benchSecret,
		"RATE_LIMIT_POINTS_PER_MINUTE=" + strconv.Itoa(benchRateLimit), "PATH=" + os.Getenv("PATH")}
	if stripeURL != "" {
		env = append(env, strings.Fields(os.Getenv("BENCH_NEW_ENV"))...)
		env = append(env, "PAYMENT_PROVIDER=stripe", "STRIPE_API_URL="+stripeURL, "STRIPE_API_KEY=sk_test_bench",
			"STRIPE_WEBHOOK_SECRET="+testWebhookSecret)
	}
	s := &purchaseServer{name: name, srv: startBenchServer(tb, bin, env), stripe: stripeURL != ""}
	signUp := func(role string) string {
		r := s.post(tb, "", `mutation($in: SignUpInput!) { signUp(input: $in) { token userErrors { message } } }`,
			map[string]any{"in": map[string]any{"email": storetest.Name("b") + "@example.com", "name": "Bench", "password": "password123", "role": role}})
		var out struct{ SignUp struct{ Token string } }
		_ = json.Unmarshal(r.Data, &out)
		return out.SignUp.Token
	}
	merchant := signUp("MERCHANT")
	r := s.post(tb, merchant, `mutation { createProduct(input: {name: "Bench", price: 1000, stock: 1000000}) { product { id } } }`, nil)
	var out struct {
		CreateProduct struct{ Product struct{ ID string } }
	}
	_ = json.Unmarshal(r.Data, &out)
	s.product = out.CreateProduct.Product.ID
	for range clients {
		s.customers = append(s.customers, signUp("CUSTOMER"))
	}
	return s
}

// post sends one GraphQL request and fails on transport, GraphQL or user errors.
func (s *purchaseServer) post(tb testing.TB, token, query string, vars map[string]any) gqlResponse {
	r, err := postGraphQL(context.Background(), s.srv.client, s.srv.url, token, query, vars)
	if err == nil && len(r.Errors) > 0 {
		err = fmt.Errorf("errors: %+v", r.Errors)
	}
	if err == nil && bytes.Contains(r.Data, []byte(`"userErrors":[{`)) {
		err = fmt.Errorf("userErrors: %s", r.Data)
	}
	if err != nil {
		tb.Fatalf("%s: %v", s.name, err)
	}
	return r
}

// round runs n purchases with c clients, step by step (placeOrder of every order, then
// payOrder of each, then each settlement), and returns each step's server CPU µs per
// operation and "purchase", their sum. Without a provider only placeOrder is measured.
func (s *purchaseServer) round(tb testing.TB, n, c int) map[string]float64 {
	tb.Helper()
	type placed struct{ order, customer, intent string }
	orders := make([]placed, n)
	var seq atomic.Int64
	step := func(do func(client, i int)) float64 {
		seq.Store(0)
		before := s.srv.cpuTime(tb)
		var wg sync.WaitGroup
		for client := range c {
			wg.Go(func() {
				for i := int(seq.Add(1)) - 1; i < n; i = int(seq.Add(1)) - 1 {
					do(client, i)
				}
			})
		}
		wg.Wait()
		return float64((s.srv.cpuTime(tb) - before).Microseconds()) / float64(n)
	}
	out := map[string]float64{}
	out["place"] = step(func(client, i int) {
		r := s.post(tb, s.customers[client], `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id status total { amount } } userErrors { code } } }`,
			map[string]any{"in": map[string]any{"items": []map[string]any{{"productId": s.product, "quantity": 1}}}})
		var o struct {
			PlaceOrder struct{ Order struct{ ID string } }
		}
		_ = json.Unmarshal(r.Data, &o)
		orders[i] = placed{order: o.PlaceOrder.Order.ID, customer: s.customers[client]}
	})
	if !s.stripe {
		return out
	}
	out["pay"] = step(func(_, i int) {
		r := s.post(tb, orders[i].customer, `mutation($in: PayOrderInput!) { payOrder(input: $in) { payment { id status providerReference clientSecret } userErrors { code } } }`,
			map[string]any{"in": map[string]any{"orderId": orders[i].order, "idempotencyKey": "pay-1"}})
		var p struct {
			PayOrder struct {
				Payment struct{ ProviderReference string }
			}
		}
		_ = json.Unmarshal(r.Data, &p)
		orders[i].intent = p.PayOrder.Payment.ProviderReference
	})
	out["settle"] = step(func(_, i int) {
		body := stripeEvent("evt_"+orders[i].intent, "payment_intent.succeeded",
			map[string]any{"id": orders[i].intent, "object": "payment_intent", "status": "succeeded"})
		req, _ := http.NewRequest(http.MethodPost, s.srv.url+"/webhooks/stripe", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", signed(body, testWebhookSecret, time.Now()))
		resp, err := s.srv.client.Do(req)
		if err != nil {
			tb.Errorf("webhook: %v", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			tb.Errorf("webhook: %s", resp.Status)
		}
	})
	out["purchase"] = out["place"] + out["pay"] + out["settle"]
	return out
}

// median returns the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
