package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/shop/api/store/storetest"
)

// The fault drill: three production processes behind nginx under mixed traffic (storefront
// reads, order histories, orders on hot products with little stock, status changes watched
// by 500 WebSocket subscribers); one process is killed with SIGKILL and restarted, then
// another gets SIGTERM. Afterwards nothing is oversold, every acknowledged order is in the
// database, every committed event reached every subscriber exactly once and in order (they
// resume with `after`), and the only client requests that failed were in flight when a
// process went away.

const (
	drillCustomers      = 10
	drillHotProducts    = 4
	drillHotStock       = 60
	drillTrackedOrders  = 50
	drillSubsPerOrder   = 10 // 500 subscribers, one WebSocket each
	drillStorefront     = 3  // closed-loop workers of each kind
	drillHistories      = 2
	drillOrderPlacers   = 3
	drillPhase          = 2 * time.Second // traffic before, between and after the faults
	drillConvergeWithin = 30 * time.Second
)

// drillTraffic counts the client requests of the drill and the fault windows they ran in.
type drillTraffic struct {
	inflight atomic.Int64
	// exposed counts requests that were in flight while a process was going away: those in
	// flight at its signal plus those started before its exit was seen. Only they may fail.
	exposed  atomic.Int64
	inWindow atomic.Bool
	// phase is 0 before the SIGKILL, 1 until its exit was seen, 2 until the SIGTERM, 3 until
	// that exit was seen, 4 afterwards.
	phase atomic.Int32

	mu       sync.Mutex
	ok       map[string]int
	failed   map[string]int
	failures []drillFailure
}

// drillFailure is a failed request and the phases it started and ended in.
type drillFailure struct {
	kind     string
	from, to int32
	err      string
}

func (f drillFailure) String() string {
	return fmt.Sprintf("%s in phases %d-%d: %s", f.kind, f.from, f.to, f.err)
}

func newDrillTraffic() *drillTraffic {
	return &drillTraffic{ok: map[string]int{}, failed: map[string]int{}}
}

// do sends one request of kind and records its outcome; failures are transport errors and
// answers that are not GraphQL (nginx's 502) or carry an internal error.
func (d *drillTraffic) do(ctx context.Context, c *http.Client, url, kind, token, query string, vars map[string]any) (gqlResponse, bool) {
	d.inflight.Add(1)
	if d.inWindow.Load() {
		d.exposed.Add(1)
	}
	from := d.phase.Load()
	r, err := postGraphQL(ctx, c, url, token, query, vars)
	d.inflight.Add(-1)
	to := d.phase.Load()
	if ctx.Err() != nil {
		return r, false // the drill is over: neither a success nor a failure
	}
	if err == nil && r.Code() == "INTERNAL_SERVER_ERROR" {
		err = fmt.Errorf("internal error: %v", r.Errors)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.failed[kind]++
		msg := err.Error()
		if strings.Contains(msg, "502 Bad Gateway") {
			msg = "nginx 502"
		}
		d.failures = append(d.failures, drillFailure{kind, from, to, msg})
		return r, false
	}
	d.ok[kind]++
	return r, true
}

// fault signals p and waits for it to exit, counting the requests exposed meanwhile.
func (d *drillTraffic) fault(t *testing.T, p *shopProcess, sig syscall.Signal) (exposed int64) {
	t.Helper()
	before := d.exposed.Load()
	d.exposed.Add(d.inflight.Load())
	d.inWindow.Store(true)
	d.phase.Add(1)
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := p.cmd.Wait()
	// nginx sees the closed connections a moment after the exit.
	time.Sleep(200 * time.Millisecond)
	d.inWindow.Store(false)
	d.phase.Add(1)
	if sig == syscall.SIGTERM && err != nil {
		t.Errorf("SIGTERM: the process exited with %v, want a clean shutdown", err)
	}
	return d.exposed.Load() - before
}

// drillSubscriber watches one order over its own WebSocket through nginx, reconnecting and
// resuming with `after` = the last event it got whenever its socket goes away.
type drillSubscriber struct {
	order, token, created string

	mu         sync.Mutex
	got        []string // event IDs in the order received
	reconnects int
	dialFails  int
	problems   []string
}

func (s *drillSubscriber) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func (s *drillSubscriber) problem(format string, args ...any) {
	s.mu.Lock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

// run keeps the subscription up until ctx ends; ready is closed once it first subscribed.
func (s *drillSubscriber) run(ctx context.Context, url string, ready chan<- struct{}) {
	first := true
	for ctx.Err() == nil {
		s.mu.Lock()
		after := s.created
		if n := len(s.got); n > 0 {
			after = s.got[n-1]
		}
		s.mu.Unlock()
		err := s.session(ctx, url, after, func() {
			if first {
				first = false
				close(ready)
			}
		})
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		if errors.Is(err, errDial) {
			s.dialFails++
		} else {
			s.reconnects++
		}
		s.mu.Unlock()
		time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
	}
}

var errDial = errors.New("dial")

// session is one socket's life: connect, subscribe from after, take events until it closes.
func (s *drillSubscriber) session(ctx context.Context, url, after string, subscribed func()) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(url, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return fmt.Errorf("%w: %v", errDial, err)
	}
	defer conn.CloseNow()
	write := func(m any) error {
		b, _ := json.Marshal(m)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return conn.Write(wctx, websocket.MessageText, b)
	}
	if err := write(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + s.token}}); err != nil {
		return err
	}
	acked := false
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		var m wsMsg
		if err := json.Unmarshal(data, &m); err != nil {
			s.problem("bad message %s", data)
			return err
		}
		switch m.Type {
		case "ping":
			if err := write(map[string]any{"type": "pong"}); err != nil {
				return err
			}
		case "pong":
		case "connection_ack":
			if acked {
				s.problem("second connection_ack")
			}
			acked = true
			sub := map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{
				"query":     `subscription($id: ID!, $after: ID) { orderStatusChanged(orderId: $id, after: $after) { id status } }`,
				"variables": map[string]any{"id": s.order, "after": after}}}
			if err := write(sub); err != nil {
				return err
			}
			subscribed()
		case "next":
			var p struct {
				Data struct {
					OrderStatusChanged struct{ ID string }
				}
				Errors []gqlError
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 || p.Data.OrderStatusChanged.ID == "" {
				s.problem("event payload %s", m.Payload)
				continue
			}
			s.mu.Lock()
			s.got = append(s.got, p.Data.OrderStatusChanged.ID)
			s.mu.Unlock()
		default:
			s.problem("unexpected %s %s", m.Type, m.Payload)
		}
	}
}

func TestFaultDrill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the server binary, runs nginx and three processes")
	}
	storetest.RequireCommand(t, "nginx")
	dbURL := storetest.PostgresURL(t)
	// Rate limits off: the drill's clients all come from 127.0.0.1, and what it measures is
	// what faults do, not budgets.
	env := nginxProcessEnv(t, dbURL, "RATE_LIMIT_POINTS_PER_MINUTE=0")
	bin := buildShopServer(t)
	procs := []*shopProcess{startShopProcess(t, bin, env...), startShopProcess(t, bin, env...), startShopProcess(t, bin, env...)}
	nginx := startNginx(t, procs...)
	lb := &testEnv{t: t, srv: nginxURL(nginx)}
	started := time.Now()

	// The shop: hot products with little stock, customers, and orders to watch.
	merchant := lb.signUp("MERCHANT")
	hot := make([]string, drillHotProducts)
	for i := range hot {
		hot[i] = lb.createProduct(merchant, "Hot "+strconv.Itoa(i), 1999, drillHotStock)
	}
	plenty := lb.createProduct(merchant, "Plenty", 500, 100_000)
	// Sign-ups (bcrypt) and orders in parallel: nginx spreads them over the processes.
	customers := make([]account, drillCustomers)
	mustInParallel(t, len(customers), func(i int) error {
		email := strings.ToLower(storetest.Name("drill")) + "@example.com"
		var out struct {
			SignUp struct {
				Token string
				User  struct{ ID string }
			}
		}
		err := postDecoded(nginx.url, "", `mutation($in: SignUpInput!) { signUp(input: $in) { token user { id } } }`,
			map[string]any{"in": map[string]any{"email": email, "name": "Drill customer", "password": "password123"}}, &out)
		customers[i] = account{ID: out.SignUp.User.ID, Email: email, Token: out.SignUp.Token}
		return err
	})
	type tracked struct {
		id, created string
		customer    account
	}
	orders := make([]tracked, drillTrackedOrders)
	mustInParallel(t, len(orders), func(i int) error {
		c := customers[i%len(customers)]
		var out struct {
			PlaceOrder struct{ Order struct{ ID string } }
		}
		err := postDecoded(nginx.url, c.Token, `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id } } }`,
			map[string]any{"in": map[string]any{"items": []map[string]any{{"productId": plenty, "quantity": 1}}}}, &out)
		orders[i] = tracked{id: out.PlaceOrder.Order.ID, customer: c}
		return err
	})
	db, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	for i, o := range orders {
		var first int64
		if err := db.QueryRow(context.Background(), `SELECT min(id) FROM order_status_events WHERE order_id = $1`, dbID(t, o.id)).Scan(&first); err != nil {
			t.Fatal(err)
		}
		orders[i].created = gid("OrderStatusEvent", first)
	}

	// 500 subscribers, each on a socket of its own through nginx.
	subCtx, stopSubs := context.WithCancel(context.Background())
	var subsDone sync.WaitGroup
	t.Cleanup(func() { stopSubs(); subsDone.Wait() })
	var subs []*drillSubscriber
	var readies []chan struct{}
	for _, o := range orders {
		for range drillSubsPerOrder {
			s := &drillSubscriber{order: o.id, token: o.customer.Token, created: o.created}
			subs = append(subs, s)
			ready := make(chan struct{})
			readies = append(readies, ready)
			subsDone.Add(1)
			go func() { defer subsDone.Done(); s.run(subCtx, nginx.url, ready) }()
		}
	}
	connectBy := time.After(60 * time.Second)
	for i, ready := range readies {
		select {
		case <-ready:
		case <-connectBy:
			t.Fatalf("subscriber %d could not subscribe through nginx within 60 s", i)
		}
	}
	eventually(t, 30*time.Second, func() bool {
		return sum(liveSubscribers(t, procs)) >= float64(len(subs))
	}, "%d live subscriptions", len(subs))
	setup := time.Since(started)

	// Mixed traffic, closed loop: each worker has one request in flight at a time.
	traffic := newDrillTraffic()
	trafficCtx, stopTraffic := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	worker := func(f func(c *http.Client, i int)) {
		workers.Add(1)
		go func() {
			defer workers.Done()
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for i := 0; trafficCtx.Err() == nil; i++ {
				f(c, i)
			}
		}()
	}
	for range drillStorefront {
		worker(func(c *http.Client, i int) {
			traffic.do(trafficCtx, c, nginx.url, "storefront", "",
				`{ products(first: 20) { nodes { id name stock price { amount currency } merchant { name } } } }`, nil)
		})
	}
	for w := range drillHistories {
		worker(func(c *http.Client, i int) {
			traffic.do(trafficCtx, c, nginx.url, "history", customers[(w+i)%len(customers)].Token,
				`{ me { orders(first: 10) { nodes { id status total { amount } items { quantity product { name } } history { status at } } } } }`, nil)
		})
	}
	type ack struct {
		order, product string
		quantity       int
	}
	var (
		acksMu       sync.Mutex
		acks         []ack
		outOfStock   atomic.Int64
		placeRefused atomic.Int64
	)
	for w := range drillOrderPlacers {
		worker(func(c *http.Client, i int) {
			product, qty := hot[rand.IntN(len(hot))], 1+rand.IntN(3)
			r, ok := traffic.do(trafficCtx, c, nginx.url, "placeOrder", customers[(w+i)%len(customers)].Token,
				`mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id } userErrors { code } } }`,
				map[string]any{"in": map[string]any{"items": []map[string]any{{"productId": product, "quantity": qty}},
					"idempotencyKey": storetest.Name("drill-")}})
			if !ok {
				return
			}
			var out struct {
				PlaceOrder struct {
					Order      *struct{ ID string }
					UserErrors []struct{ Code string }
				}
			}
			_ = json.Unmarshal(r.Data, &out)
			switch {
			case out.PlaceOrder.Order != nil:
				acksMu.Lock()
				acks = append(acks, ack{out.PlaceOrder.Order.ID, product, qty})
				acksMu.Unlock()
			case len(out.PlaceOrder.UserErrors) == 1 && out.PlaceOrder.UserErrors[0].Code == "INSUFFICIENT_STOCK":
				outOfStock.Add(1)
			default:
				placeRefused.Add(1)
			}
		})
	}
	// Status changes of the watched orders: PAID, SHIPPED, DELIVERED, round after round; a
	// move whose answer was lost is tried again (INVALID_TRANSITION then means it committed).
	var moves atomic.Int64
	workers.Add(1)
	go func() {
		defer workers.Done()
		c := &http.Client{Timeout: 30 * time.Second}
		for _, status := range []string{"PAID", "SHIPPED", "DELIVERED"} {
			for _, o := range orders {
				for trafficCtx.Err() == nil {
					r, ok := traffic.do(trafficCtx, c, nginx.url, "updateOrderStatus", merchant.Token,
						`mutation($in: UpdateOrderStatusInput!) { updateOrderStatus(input: $in) { order { status } userErrors { code } } }`,
						map[string]any{"in": map[string]any{"id": o.id, "status": status}})
					if ok {
						moves.Add(1)
						if !strings.Contains(string(r.Data), `"status":"`+status+`"`) && !strings.Contains(string(r.Data), "INVALID_TRANSITION") {
							t.Errorf("updateOrderStatus(%s): %s %v", status, r.Data, r.Errors)
						}
						break
					}
				}
				time.Sleep(20 * time.Millisecond) // spread the events over the drill
			}
		}
	}()

	// The faults.
	time.Sleep(drillPhase)
	inflightAtKill := traffic.inflight.Load()
	killExposed := traffic.fault(t, procs[0], syscall.SIGKILL)
	procs[0] = startShopProcessOn(t, bin, procs[0].port, env...)
	time.Sleep(drillPhase)
	inflightAtTerm := traffic.inflight.Load()
	termExposed := traffic.fault(t, procs[1], syscall.SIGTERM)
	time.Sleep(drillPhase)
	stopTraffic()
	workers.Wait()
	trafficTime := time.Since(started) - setup
	alive := []*shopProcess{procs[0], procs[2]}

	// Every committed event reaches every subscriber of its order, once, in order.
	committed := map[string][]string{}
	var events int
	for _, o := range orders {
		rows, err := db.Query(context.Background(), `SELECT id FROM order_status_events WHERE order_id = $1 ORDER BY id`, dbID(t, o.id))
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids[1:] { // after the creation event the subscribers started from
			committed[o.id] = append(committed[o.id], gid("OrderStatusEvent", id))
		}
		events += len(ids) - 1
	}
	converged := func() bool {
		for _, s := range subs {
			if len(s.received()) < len(committed[s.order]) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(drillConvergeWithin)
	for !converged() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// A duplicate would arrive right behind the original; give it the chance.
	time.Sleep(500 * time.Millisecond)
	var reconnects, dialFails, deliveries, wrong int
	for i, s := range subs {
		got := s.received()
		deliveries += len(got)
		s.mu.Lock()
		reconnects, dialFails = reconnects+s.reconnects, dialFails+s.dialFails
		problems := slices.Clone(s.problems)
		s.mu.Unlock()
		if !slices.Equal(got, committed[s.order]) || len(problems) > 0 {
			if wrong++; wrong <= 5 {
				t.Errorf("subscriber %d of order %s: got %v, committed %v, problems %v", i, s.order, got, committed[s.order], problems)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d subscribers did not get exactly the committed events in order", wrong, len(subs))
	}

	// Stock never oversold: what is left plus what was ordered is what there was.
	ordered := map[string]int{}
	rows, err := db.Query(context.Background(), `SELECT i.product_id, sum(i.quantity) FROM order_items i JOIN orders o ON o.id = i.order_id
		WHERE o.status <> 'CANCELLED' GROUP BY i.product_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		ordered[gid("Product", id)] = int(n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sold := 0
	for _, p := range hot {
		var stock int
		if err := db.QueryRow(context.Background(), `SELECT stock FROM products WHERE id = $1`, dbID(t, p)).Scan(&stock); err != nil {
			t.Fatal(err)
		}
		if stock < 0 || stock+ordered[p] != drillHotStock {
			t.Errorf("product %s: stock %d + ordered %d, want %d", p, stock, ordered[p], drillHotStock)
		}
		sold += ordered[p]
	}

	// Every acknowledged order is in the database, as acknowledged.
	for _, a := range acks {
		var product, quantity int64
		err := db.QueryRow(context.Background(), `SELECT product_id, quantity FROM order_items WHERE order_id = $1`, dbID(t, a.order)).Scan(&product, &quantity)
		if err != nil || gid("Product", product) != a.product || int(quantity) != a.quantity {
			t.Errorf("acknowledged order %s (%d × %s): in the database %d × %d (%v)", a.order, a.quantity, a.product, quantity, product, err)
		}
	}

	// Only requests in flight on the killed process may fail: every failure was in flight
	// while it went away, and there are at most as many as were exposed then. SIGTERM drains
	// requests, so it may fail none.
	traffic.mu.Lock()
	failed := 0
	for _, n := range traffic.failed {
		failed += n
	}
	okTotal := 0
	for _, n := range traffic.ok {
		okTotal += n
	}
	t.Logf("drill: setup %v (%d subscribers), traffic %v; requests ok %v, failed %v (%d of %d)",
		setup.Round(time.Millisecond), len(subs), trafficTime.Round(time.Millisecond), traffic.ok, traffic.failed, failed, okTotal+failed)
	t.Logf("drill: SIGKILL with %d requests in flight (%d exposed until its exit was seen), SIGTERM with %d (%d exposed)",
		inflightAtKill, killExposed, inflightAtTerm, termExposed)
	t.Logf("drill: %d orders acknowledged (%d units of %d), %d out of stock, %d refused otherwise; %d status moves, %d events committed, %d deliveries to %d subscribers, %d reconnects, %d failed dials",
		len(acks), sold, drillHotProducts*drillHotStock, outOfStock.Load(), placeRefused.Load(), moves.Load(), events, deliveries, len(subs), reconnects, dialFails)
	if failed > 0 {
		t.Logf("drill: failures: %v", traffic.failures)
	}
	for _, f := range traffic.failures {
		if f.from > 1 || f.to < 1 {
			t.Errorf("a request failed outside the SIGKILL: %v", f)
		}
	}
	if int64(failed) > killExposed {
		t.Errorf("%d requests failed, more than the %d exposed to the killed process", failed, killExposed)
	}
	traffic.mu.Unlock()
	if placeRefused.Load() > 0 {
		t.Errorf("%d orders refused with a userError other than INSUFFICIENT_STOCK", placeRefused.Load())
	}
	if len(acks) == 0 || outOfStock.Load() == 0 || events < drillTrackedOrders {
		t.Errorf("the drill did too little to prove anything: %d orders, %d out of stock, %d events", len(acks), outOfStock.Load(), events)
	}
	// Every subscriber is back, on the processes still running.
	if n := sum(liveSubscribers(t, alive)); n != float64(len(subs)) {
		t.Errorf("%v live subscriptions on the processes left, want %d", n, len(subs))
	}
}

// mustInParallel runs f for 0…n-1 on 8 goroutines, failing the test with their errors.
func mustInParallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				errs[i] = f(i)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// postDecoded sends a query that must succeed without errors and decodes its data into v.
func postDecoded(url, token, query string, vars map[string]any, v any) error {
	r, err := postGraphQL(context.Background(), http.DefaultClient, url, token, query, vars)
	if err == nil && len(r.Errors) > 0 {
		err = fmt.Errorf("%v", r.Errors)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(r.Data, v)
}

// dbID is the database ID inside a global ID.
func dbID(t *testing.T, globalID string) int64 {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(globalID)
	_, num, ok := strings.Cut(string(b), ":")
	n, perr := strconv.ParseInt(num, 10, 64)
	if err != nil || !ok || perr != nil {
		t.Fatalf("global ID %q", globalID)
	}
	return n
}

func sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}
