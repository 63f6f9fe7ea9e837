package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shop/api/store/storetest"
)

// The checkout drill: customers check out at once across two production processes
// (PostgreSQL, Redis, Stripe on a stripe-mock behind a proxy the test cuts), paying,
// failing, cancelling and walking away; meanwhile the provider is unreachable for a while
// and one process is SIGKILLed and restarted. Stripe's webhooks (signed by the test) arrive
// twice, late and at either process, and are redelivered until answered 200, as Stripe
// does. Afterwards: no order PAID without a SUCCEEDED payment, no SUCCEEDED payment left on a
// cancelled order without its refund done at the provider, no order PENDING past its
// reservation plus 5 s (each order's lateness measured from its history), every order
// cancelled or paid once, and the stock exact.

const (
	checkoutDrillCustomers = 12
	checkoutDrillProducts  = 3
	checkoutDrillStock     = 5000
	checkoutDrillTTL       = 3 * time.Second
	checkoutDrillTraffic   = 10 * time.Second
	// checkoutExpiryBound is how late an expiry may come (the contract's 5 s): its second
	// job's delay (2 s), a poll (500 ms and up to 10 % jitter) and one transaction, when the
	// process that took the first was killed; a poll and a transaction otherwise.
	checkoutExpiryBound = 5 * time.Second
)

// cutProxy forwards TCP connections to a target until cut: then it drops every open
// connection and refuses new ones, as an unreachable provider does.
type cutProxy struct {
	l      net.Listener
	target string
	cut    atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { l.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.cut.Load() {
				c.Close()
				continue
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *cutProxy) url() string { return "http://" + p.l.Addr().String() }

func (p *cutProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// setCut cuts (true) or restores (false) the connection to the target.
func (p *cutProxy) setCut(cut bool) {
	p.cut.Store(cut)
	if cut {
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	}
}

// drillShop is the drill's processes and counters.
type drillShop struct {
	t       *testing.T
	procs   [2]*shopProcess
	alive   [2]atomic.Bool
	client  *http.Client
	retries atomic.Int64 // requests sent again after a transport error, a 5xx or PAYMENT_PROVIDER_UNAVAILABLE
	mu      sync.Mutex
	stats   map[string]int
}

func (d *drillShop) count(what string) {
	d.mu.Lock()
	d.stats[what]++
	d.mu.Unlock()
}

// pick returns a live process's URL, at random.
func (d *drillShop) pick() string {
	for {
		i := rand.IntN(2)
		if d.alive[i].Load() {
			return d.procs[i].url
		}
	}
}

// gql sends a GraphQL request to any live process until it gets an answer that is not a
// transport error, an internal error or PAYMENT_PROVIDER_UNAVAILABLE: a client retrying
// with the same idempotency key.
func (d *drillShop) gql(ctx context.Context, token, query string, vars map[string]any) gqlResponse {
	for {
		r, err := postGraphQL(ctx, d.client, d.pick(), token, query, vars)
		if ctx.Err() != nil {
			return gqlResponse{}
		}
		if err == nil && r.Code() != "PAYMENT_PROVIDER_UNAVAILABLE" && r.Code() != "INTERNAL_SERVER_ERROR" {
			return r
		}
		d.retries.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
}

// webhook delivers a signed event to any live process until it is answered 200.
func (d *drillShop) webhook(ctx context.Context, body []byte) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.pick()+"/webhooks/stripe", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", signed(body, testWebhookSecret, time.Now()))
		resp, err := d.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		d.retries.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCheckoutDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server binary and runs for about a minute")
	}
	dbURL := storetest.PostgresURL(t)
	redisURL := storetest.RedisURL(t)
	proxy := startCutProxy(t, startStripeMock(t)[len("http://"):])
	env := []string{
		"APP_ENV=production", "DATABASE_URL=" + dbURL, "REDIS_URL=" + redisURL,
		"REDIS_PREFIX=" + storetest.RedisPrefix(t, redisURL), "JWT_SECRET=test-secret-of-at-least-32-bytes!!",
		"RATE_LIMIT_POINTS_PER_MINUTE=1000000000", "ORDER_RESERVATION_TTL=" + checkoutDrillTTL.String(),
		"PAYMENT_PROVIDER=stripe", "STRIPE_API_URL=" + proxy.url(), "STRIPE_API_KEY=sk_test_drill",
		"STRIPE_WEBHOOK_SECRET=" + testWebhookSecret,
	}
	bin := buildShopServer(t)
	d := &drillShop{t: t, client: &http.Client{Timeout: 10 * time.Second}, stats: map[string]int{}}
	for i := range d.procs {
		d.procs[i] = startShopProcess(t, bin, env...)
		d.alive[i].Store(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	signUp := func(role string) string {
		r := d.gql(ctx, "", `mutation($in: SignUpInput!) { signUp(input: $in) { token } }`,
			map[string]any{"in": map[string]any{"email": storetest.Name("d") + "@example.com", "name": "Drill", "password": "password123", "role": role}})
		var out struct{ SignUp struct{ Token string } }
		r.Decode(t, &out)
		return out.SignUp.Token
	}
	merchant := signUp("MERCHANT")
	var products []string
	for i := range checkoutDrillProducts {
		r := d.gql(ctx, merchant, `mutation($in: CreateProductInput!) { createProduct(input: $in) { product { id } } }`,
			map[string]any{"in": map[string]any{"name": fmt.Sprintf("Drill %d", i), "price": 1000 + i, "stock": checkoutDrillStock}})
		var out struct {
			CreateProduct struct{ Product struct{ ID string } }
		}
		r.Decode(t, &out)
		products = append(products, out.CreateProduct.Product.ID)
	}

	trafficCtx, stopTraffic := context.WithTimeout(ctx, checkoutDrillTraffic)
	defer stopTraffic()
	var late sync.WaitGroup // webhooks delivered after the traffic, late
	var wg sync.WaitGroup
	for c := range checkoutDrillCustomers {
		token := signUp("CUSTOMER")
		wg.Go(func() {
			for n := 0; trafficCtx.Err() == nil; n++ {
				d.purchase(trafficCtx, ctx, &late, token, products, fmt.Sprintf("c%d-%d", c, n))
			}
		})
	}

	// The faults: the provider unreachable for 2 s, then process 0 killed and restarted.
	time.Sleep(2 * time.Second)
	proxy.setCut(true)
	time.Sleep(2 * time.Second)
	proxy.setCut(false)
	time.Sleep(time.Second)
	d.alive[0].Store(false)
	if err := d.procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = d.procs[0].cmd.Wait()
	killedAt := time.Now()
	time.Sleep(2 * time.Second)
	d.procs[0] = startShopProcessOn(t, bin, d.procs[0].port, env...)
	d.alive[0].Store(true)
	wg.Wait()
	late.Wait()
	trafficEnd := time.Now()

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	// Converged: no order left PENDING, every refund and cancel done at the provider.
	converged := func() bool {
		return count(`SELECT count(*) FROM orders WHERE status = 'PENDING'`) == 0 &&
			count(`SELECT count(*) FROM river_job WHERE kind IN ('refund_payment', 'cancel_payment') AND state <> 'completed'`) == 0
	}
	// Jobs the killed process had fetched come back when River rescues them (30 s after
	// they started, found by a rescuer that runs every 30 s).
	deadline := time.Now().Add(150 * time.Second)
	for !converged() {
		if time.Now().After(deadline) {
			t.Fatalf("not converged 150 s after the traffic: %d orders PENDING, %d provider jobs not completed",
				count(`SELECT count(*) FROM orders WHERE status = 'PENDING'`),
				count(`SELECT count(*) FROM river_job WHERE kind IN ('refund_payment', 'cancel_payment') AND state <> 'completed'`))
		}
		time.Sleep(250 * time.Millisecond)
	}
	convergedIn := time.Since(trafficEnd)
	// Provider jobs the killed process had taken wait for River's rescuer (the converging
	// time above); its expiry jobs do not (below).
	rescued := count(`SELECT count(*) FROM river_job WHERE kind IN ('refund_payment', 'cancel_payment')
		AND errors::text LIKE '%rescued by JobRescuer%'`)

	checks := []struct{ what, sql string }{
		{"orders PAID without a SUCCEEDED payment", `SELECT count(*) FROM orders o WHERE o.status = 'PAID' AND NOT EXISTS
			(SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status = 'SUCCEEDED')`},
		{"SUCCEEDED payments of cancelled orders without their refund done", `SELECT count(*) FROM payments p JOIN orders o ON o.id = p.order_id
			WHERE o.status = 'CANCELLED' AND p.status = 'SUCCEEDED' AND (p.refund_requested_at IS NULL OR NOT EXISTS
			(SELECT 1 FROM river_job j WHERE j.kind = 'refund_payment' AND j.state = 'completed' AND (j.args->>'payment_id')::bigint = p.id))`},
		{"orders with more than one SUCCEEDED payment not refunded", `SELECT count(*) FROM (SELECT order_id FROM payments
			WHERE status = 'SUCCEEDED' AND refund_requested_at IS NULL GROUP BY order_id HAVING count(*) > 1) x`},
		{"orders paid or cancelled more than once", `SELECT count(*) FROM (SELECT order_id, status FROM order_status_events
			WHERE status IN ('PAID', 'CANCELLED') GROUP BY order_id, status HAVING count(*) > 1) x`},
		{"orders with more than one PENDING payment", `SELECT count(*) FROM (SELECT order_id FROM payments
			WHERE status = 'PENDING' GROUP BY order_id HAVING count(*) > 1) x`},
		{"products whose stock is not their initial stock less what live orders hold", fmt.Sprintf(`SELECT count(*) FROM products p
			WHERE p.stock <> %d - COALESCE((SELECT sum(i.quantity) FROM order_items i JOIN orders o ON o.id = i.order_id
			WHERE i.product_id = p.id AND o.status <> 'CANCELLED'), 0)`, checkoutDrillStock)},
	}
	for _, c := range checks {
		if n := count(c.sql); n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}
	// How late each expiry came, from the order's history: its CANCELLED event against its
	// first event (the order placed) plus the TTL. Every one within the bound, also those
	// due when process 0 was killed: expiries need no River leader, and one the killed
	// process had taken is done by its second job (checkout/jobs.go).
	lateMax, stuck := checkExpiries(t, expiryLateness(ctx, t, conn, checkoutDrillTTL, killedAt))
	var orders, paid, cancelled, expired, refunded, failed int
	_ = conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'PAID'), count(*) FILTER (WHERE status = 'CANCELLED'),
		(SELECT count(*) FROM order_status_events WHERE note = 'reservation expired'),
		(SELECT count(*) FROM payments WHERE status = 'REFUNDED' OR refund_requested_at IS NOT NULL),
		(SELECT count(*) FROM payments WHERE status = 'FAILED') FROM orders`).Scan(&orders, &paid, &cancelled, &expired, &refunded, &failed)
	t.Logf("drill: %d orders (%d PAID, %d CANCELLED of which %d expired), %d payments refunded, %d failed; client actions %v; "+
		"%d requests and webhooks sent again; converged %.1fs after the traffic (%d provider jobs rescued from the killed process); expiries at most %.2fs late (bound %s), %d of them taken by the killed process first",
		orders, paid, cancelled, expired, refunded, failed, d.stats, d.retries.Load(), convergedIn.Seconds(), rescued, lateMax, checkoutExpiryBound, stuck)
	if paid == 0 || expired == 0 || refunded == 0 || failed == 0 {
		t.Errorf("the drill did not exercise every path: %d paid, %d expired, %d refunded, %d failed", paid, expired, refunded, failed)
	}
}

// purchase is one customer's checkout: place, pay, and then one of: pay (the webhook twice),
// decline then pay again, cancel (with a late success now and then), or walk away (with a
// success that arrives after the reservation now and then).
func (d *drillShop) purchase(ctx, outer context.Context, late *sync.WaitGroup, token string, products []string, key string) {
	r := d.gql(ctx, token, `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id } userErrors { code } } }`,
		map[string]any{"in": map[string]any{"idempotencyKey": key,
			"items": []map[string]any{{"productId": products[rand.IntN(len(products))], "quantity": 1 + rand.IntN(3)}}}})
	var placed struct {
		PlaceOrder *struct{ Order *struct{ ID string } }
	}
	if ctx.Err() != nil || json.Unmarshal(r.Data, &placed) != nil || placed.PlaceOrder == nil || placed.PlaceOrder.Order == nil {
		return
	}
	order := placed.PlaceOrder.Order.ID
	d.count("placed")
	pay := func(key string) string {
		r := d.gql(ctx, token, `mutation($in: PayOrderInput!) { payOrder(input: $in) { payment { providerReference } userErrors { code } } }`,
			map[string]any{"in": map[string]any{"orderId": order, "idempotencyKey": key}})
		var out struct {
			PayOrder *struct {
				Payment *struct{ ProviderReference string }
			}
		}
		if ctx.Err() != nil || json.Unmarshal(r.Data, &out) != nil || out.PayOrder == nil || out.PayOrder.Payment == nil {
			return ""
		}
		return out.PayOrder.Payment.ProviderReference
	}
	event := func(typ, intent string) []byte {
		obj := map[string]any{"id": intent, "object": "payment_intent"}
		if typ == "payment_intent.payment_failed" {
			obj["last_payment_error"] = map[string]any{"message": "Your card was declined."}
		}
		return stripeEvent("evt_"+strconv.FormatInt(rand.Int64(), 36), typ, obj)
	}
	intent := pay("pay-1")
	if intent == "" {
		return
	}
	switch n := rand.IntN(100); {
	case n < 45:
		ok := event("payment_intent.succeeded", intent)
		d.webhook(outer, ok)
		d.webhook(outer, ok) // Stripe delivers at least once
		d.count("paid")
	case n < 60:
		d.webhook(outer, event("payment_intent.payment_failed", intent))
		if again := pay("pay-2"); again != "" {
			d.webhook(outer, event("payment_intent.succeeded", again))
			d.count("declined then paid")
		}
	case n < 80:
		d.gql(ctx, token, `mutation($id: ID!) { cancelOrder(id: $id) { order { id } userErrors { code } } }`, map[string]any{"id": order})
		d.count("cancelled")
		if n < 70 {
			d.webhook(outer, event("payment_intent.succeeded", intent)) // the card went through meanwhile
			d.count("cancelled, then a late success")
		}
	default:
		d.count("walked away")
		if n < 90 {
			late.Go(func() {
				time.Sleep(checkoutDrillTTL + 3*time.Second)
				d.webhook(outer, event("payment_intent.succeeded", intent))
			})
			d.count("walked away, then a late success")
		}
	}
}

// lateExpiry is how late an order's expiry came.
type lateExpiry struct {
	order         int64
	due, lateBy   float64 // seconds: due after the SIGKILL, late
	firstJobStuck bool    // its first expiry job is still running: the killed process took it
}

// checkExpiries fails the test for each expiry early or later than checkoutExpiryBound,
// logs the latest and those whose first job the killed process took, and returns the
// latest lateness and how many first jobs the killed process took.
func checkExpiries(t *testing.T, lates []lateExpiry) (lateMax float64, stuck int) {
	t.Helper()
	for i, l := range lates {
		if i < 5 || l.firstJobStuck {
			t.Logf("order %d, due %.2fs after the SIGKILL, expired %.2fs late (first job left with the killed process: %v)", l.order, l.due, l.lateBy, l.firstJobStuck)
		}
		if l.firstJobStuck {
			stuck++
		}
		if l.lateBy < 0 {
			t.Errorf("order %d expired %.2fs before its reservation ended", l.order, -l.lateBy)
		}
		if l.lateBy > checkoutExpiryBound.Seconds() {
			t.Errorf("order %d, due %.2fs after the SIGKILL, expired %.2fs late: more than %s", l.order, l.due, l.lateBy, checkoutExpiryBound)
		}
		lateMax = max(lateMax, l.lateBy)
	}
	return lateMax, stuck
}

// expiryLateness measures every expiry from the order's history: its CANCELLED event noted
// "reservation expired" against its first event (the order placed) plus ttl; latest first.
func expiryLateness(ctx context.Context, t *testing.T, conn *pgx.Conn, ttl time.Duration, killedAt time.Time) []lateExpiry {
	t.Helper()
	rows, err := conn.Query(ctx, `WITH expired AS (
			SELECT o.id, (SELECT min(p.at) FROM order_status_events p WHERE p.order_id = o.id) + $1 * interval '1 second' AS due, e.at
			FROM orders o JOIN order_status_events e ON e.order_id = o.id AND e.status = 'CANCELLED' AND e.note = 'reservation expired')
		SELECT x.id, extract(epoch FROM x.due - $2::timestamptz)::float8, extract(epoch FROM x.at - x.due)::float8,
			(SELECT j.state = 'running' FROM river_job j WHERE j.kind = 'expire_order' AND (j.args->>'order_id')::bigint = x.id
				ORDER BY j.scheduled_at LIMIT 1)
		FROM expired x ORDER BY 3 DESC`, ttl.Seconds(), killedAt)
	if err != nil {
		t.Fatal(err)
	}
	lates, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lateExpiry, error) {
		var l lateExpiry
		err := r.Scan(&l.order, &l.due, &l.lateBy, &l.firstJobStuck)
		return l, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return lates
}

// TestCheckoutExpiryWorkerKilled: orders due when the process that leads River, and holds
// some of their expiry jobs, is SIGKILLed still expire within the bound. Two processes; the
// first started leads River. The test holds the orders' rows locked across their due time,
// so their first expiry jobs are taken and wait in both processes' workers (more orders than
// one process has expiry workers: each takes some); then it kills the leader and lets go.
// The killed process's jobs stay running (River's rescuer, a leader's duty, would look 30 s
// and more later) and its leadership outlives it by up to 15 s; the orders it held expire by
// their second jobs, which the living process takes.
func TestCheckoutExpiryWorkerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server binary")
	}
	const (
		ttl    = 4 * time.Second
		orders = 16
	)
	dbURL := storetest.PostgresURL(t)
	redisURL := storetest.RedisURL(t)
	env := []string{
		"DATABASE_URL=" + dbURL, "REDIS_URL=" + redisURL, "REDIS_PREFIX=" + storetest.RedisPrefix(t, redisURL),
		"JWT_SECRET=test-secret-of-at-least-32-bytes!!", "RATE_LIMIT_POINTS_PER_MINUTE=1000000000",
		"ORDER_RESERVATION_TTL=" + ttl.String(), "PAYMENT_PROVIDER=none",
	}
	bin := buildShopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	leader := func() string {
		var id string
		_ = conn.QueryRow(ctx, `SELECT leader_id FROM river_leader`).Scan(&id)
		return id
	}

	d := &drillShop{t: t, client: &http.Client{Timeout: 10 * time.Second}, stats: map[string]int{}}
	d.procs[0] = startShopProcess(t, bin, env...)
	d.alive[0].Store(true)
	waitFor(t, 10*time.Second, "the first process to lead River", func() bool { return leader() != "" })
	first := leader()
	d.procs[1] = startShopProcess(t, bin, env...)
	d.alive[1].Store(true)

	signUp := func(role string) string {
		r := d.gql(ctx, "", `mutation($in: SignUpInput!) { signUp(input: $in) { token } }`,
			map[string]any{"in": map[string]any{"email": storetest.Name("k") + "@example.com", "name": "Killed", "password": "password123", "role": role}})
		var out struct{ SignUp struct{ Token string } }
		r.Decode(t, &out)
		return out.SignUp.Token
	}
	merchant, customer := signUp("MERCHANT"), signUp("CUSTOMER")
	r := d.gql(ctx, merchant, `mutation($in: CreateProductInput!) { createProduct(input: $in) { product { id } } }`,
		map[string]any{"in": map[string]any{"name": "Lamp", "price": 1000, "stock": 1000}})
	var created struct {
		CreateProduct struct{ Product struct{ ID string } }
	}
	r.Decode(t, &created)
	var wg sync.WaitGroup
	for i := range orders {
		wg.Go(func() {
			d.gql(ctx, customer, `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id } userErrors { code } } }`,
				map[string]any{"in": map[string]any{"idempotencyKey": fmt.Sprintf("o%d", i),
					"items": []map[string]any{{"productId": created.CreateProduct.Product.ID, "quantity": 1}}}})
		})
	}
	wg.Wait()
	if n := count(`SELECT count(*) FROM orders WHERE status = 'PENDING'`); n != orders {
		t.Fatalf("%d orders PENDING, want %d", n, orders)
	}

	// The orders locked across their due time: each process takes first jobs and waits.
	lock, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT id FROM orders FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	var firstDue, lastDue time.Time
	if err := conn.QueryRow(ctx, `SELECT min(reserved_until), max(reserved_until) FROM orders`).Scan(&firstDue, &lastDue); err != nil {
		t.Fatal(err)
	}
	if time.Now().After(firstDue) {
		t.Fatalf("the orders were locked %s after the first was due: placing them took too long", time.Since(firstDue))
	}
	// A poll (500 ms and jitter) after the last is due, both processes have taken all the
	// first jobs they have workers for: the one killed holds the rest.
	time.Sleep(time.Until(lastDue) + 700*time.Millisecond)
	t.Logf("orders due over %s; %d first expiry jobs taken and waiting", lastDue.Sub(firstDue),
		count(`SELECT count(*) FROM river_job WHERE kind = 'expire_order' AND state = 'running'`))
	if got := leader(); got != first {
		t.Fatalf("River's leader is %q, want the first process (%q)", got, first)
	}
	d.alive[0].Store(false)
	if err := d.procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = d.procs[0].cmd.Wait()
	killedAt := time.Now()
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	waitFor(t, time.Until(lastDue)+10*time.Second, "every order to expire", func() bool {
		return count(`SELECT count(*) FROM orders WHERE status = 'PENDING'`) == 0
	})
	if got := leader(); got != first {
		t.Errorf("River's leader is %q once every order expired, want the killed process still (%q): the test did not show expiries need no leader", got, first)
	}
	// The living process's jobs done, what still runs is the killed process's (River's client
	// ID is its leader ID).
	running := func(killed bool) int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'expire_order' AND state = 'running'
			AND ($1 = ANY(attempted_by)) = $2`, first, killed).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, 5*time.Second, "the living process's expiry jobs to complete", func() bool { return running(false) == 0 })
	lates := expiryLateness(ctx, t, conn, ttl, killedAt)
	if len(lates) != orders {
		t.Fatalf("%d orders expired, want %d", len(lates), orders)
	}
	lateMax, stuck := checkExpiries(t, lates)
	if stuck == 0 || stuck != running(true) {
		t.Errorf("%d first expiry jobs left running, %d of them the killed process's: want some, all the killed process's", stuck, running(true))
	}
	t.Logf("%d orders expired at most %.2fs late (bound %s); the killed process, River's leader, held the first jobs of %d of them",
		orders, lateMax, checkoutExpiryBound, stuck)
}
