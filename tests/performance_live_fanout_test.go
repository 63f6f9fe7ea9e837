package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/shop/api/auth"
	"github.com/shop/api/live/delivery"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// BenchmarkLiveFanout measures one server process (the built binary, on PostgreSQL and
// Redis) holding many WebSocket subscribers, each on its own order, while status changes
// committed by another writer (this process, through the store and the live publisher)
// flow at a fixed rate. It is not a timed test: run it once and read its report.
//
//	ulimit -n 20000
//	DATABASE_URL=... REDIS_URL=... go test ./tests -run '^$' -bench LiveFanout -benchtime 1x -timeout 30m
//
// It reports the server's memory per subscriber (RSS delta / count), delivery latency from
// commit to client (p50/p99), and the server's CPU.
//
// SHOP_BENCH_SUBSCRIBERS (19000), SHOP_BENCH_RATE (events/s, 1000) and SHOP_BENCH_SECONDS (30)
// change its size (orders beyond the subscribers' are seeded when the load needs more than
// three changes an order); SHOP_BENCH_HEAP_PROFILE=file saves the subscribed server's heap
// profile (to file.this, file.old); the dashboard case that follows (liveDashboard) has
// variables of its own; SHOP_BENCH_SERVER_GOGC, _GOMEMLIMIT and _GODEBUG (gctrace=1) tune
// and trace the server's garbage collector. SHOP_BENCH_OLD_SERVER names another build of the
// server (e.g. of an older commit) to run the same benchmark against, for a before/after
// table from one run:
//
//	git worktree add /tmp/old <commit> && (cd /tmp/old && go build -o /tmp/shop-old .)
//	SHOP_BENCH_OLD_SERVER=/tmp/shop-old go test ./tests -run '^$' -bench LiveFanout -benchtime 1x -timeout 60m
func BenchmarkLiveFanout(b *testing.B) {
	servers := []struct{ name, bin string }{{"this", buildShopServer(b)}}
	if old := os.Getenv("SHOP_BENCH_OLD_SERVER"); old != "" {
		servers = append(servers, struct{ name, bin string }{"old", old})
	}
	var table, dashboards []string
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			fanout, dashboard := liveFanout(b, srv.bin)
			table = append(table, fmt.Sprintf("%-5s %s", srv.name, fanout))
			dashboards = append(dashboards, fmt.Sprintf("%-5s %s", srv.name, dashboard))
		})
	}
	fmt.Fprintf(os.Stderr, "\nlive fan-out, before/after (one run)\n      %s\n", fanoutHeader)
	for _, row := range table {
		fmt.Fprintln(os.Stderr, row)
	}
	fmt.Fprintf(os.Stderr, "\ndashboard (myOrderEvents merchants and idle watchers while orders are placed)\n      %s\n", dashboardHeader)
	for _, row := range dashboards {
		fmt.Fprintln(os.Stderr, row)
	}
}

const fanoutHeader = "subs   connect  RSS/sub KiB  slope KiB  heap/sub KiB  goroutines/sub  events/s  delivered/committed  p50      p99      server CPU"

// liveFanout runs the benchmark against the server binary bin and returns its table row,
// and the dashboard case's, run on the same process afterwards.
func liveFanout(b *testing.B, bin string) (string, string) {
	n := envInt("SHOP_BENCH_SUBSCRIBERS", 19000)
	rate := envInt("SHOP_BENCH_RATE", 1000)
	seconds := envInt("SHOP_BENCH_SECONDS", 30)
	redisURL := storetest.RedisURL(b)
	dbURL := storetest.PostgresURL(b)
	prefix := storetest.RedisPrefix(b, redisURL)
	const adminEmail, adminPassword, secret = "bench-admin@shop.example", "bench-admin-password", "bench-secret-of-at-least-32-bytes!!"

	proc := startShopProcess(b, bin, "DATABASE_URL="+dbURL, "REDIS_URL="+redisURL,
		"REDIS_PREFIX="+prefix, "JWT_SECRET="+secret, "ADMIN_EMAIL="+adminEmail, "ADMIN_PASSWORD="+adminPassword,
		"APP_ENV=production",
		// All subscribers share one admin account here; real ones are 19,000 users, each with
		// a budget of their own.
		"RATE_LIMIT_POINTS_PER_MINUTE=0",
		// and one address: the caps of subscriptions per account and address are off too.
		"MAX_SUBSCRIPTIONS_PER_USER=0", "MAX_SUBSCRIPTIONS_PER_ADDRESS=0", "MAX_SOCKETS_PER_ADDRESS=0", "GODEBUG="+os.Getenv("SHOP_BENCH_SERVER_GODEBUG"),
		"GOGC="+os.Getenv("SHOP_BENCH_SERVER_GOGC"), "GOMEMLIMIT="+os.Getenv("SHOP_BENCH_SERVER_GOMEMLIMIT"),
		"PPROF_ADDR="+pprofAddr(b))
	pid := proc.cmd.Process.Pid

	ctx := context.Background()
	// Each order takes three changes (PAID, SHIPPED, DELIVERED): a load longer than that
	// also changes orders nobody watches, which are seeded beyond the subscribers'.
	total := rate * seconds
	orders, adminID := seedOrders(b, dbURL, max(n, (total+2)/3))
	m := len(orders)
	token := benchLogIn(b, proc.url, adminEmail, adminPassword)

	// The writer: another process's worth of store and publisher.
	st, err := store.Open(ctx, store.Config{DatabaseURL: dbURL})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	opts, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	// server.go ends REDIS_PREFIX with one ":" and the service names its channel after it.
	pub := delivery.NewPublisher(rdb, st, strings.TrimSuffix(prefix, ":")+":order-events", nil)
	pub.Start()
	defer pub.Close()
	st.SetEventSink(pub)

	b.ResetTimer()
	time.Sleep(2 * time.Second) // let the idle heap settle
	rssBefore := rssKiB(b, pid)
	gBefore := scrape(proc.url, "go_goroutines")
	goalIdle, stacksIdle := scrape(proc.url, "go_memstats_next_gc_bytes"), scrape(proc.url, "go_memstats_stack_inuse_bytes")

	// Subscribers: each its own socket and order, resuming after the creation event so none
	// misses a change that commits while it is still subscribing.
	lat := &latencies{}
	clients := make([]*benchClient, n)
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var rssHalf int64
	for i := range n {
		if i == n/2 {
			// Half way: the slope between here and the end excludes what the first
			// subscribers paid once (pools, maps growing).
			wg.Wait()
			paused := time.Now()
			half := i - int(failed.Load())
			eventually(b, 120*time.Second, func() bool { return int(scrape(proc.url, "shop_live_subscribers")) >= half }, "%d subscriptions live", half)
			time.Sleep(2 * time.Second)
			rssHalf = rssKiB(b, pid)
			start = start.Add(time.Since(paused))
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialBench(proc.url, token, orders[i], lat)
			if err != nil {
				if failed.Add(1) <= 3 {
					b.Logf("subscriber %d: %v", i, err)
				}
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	connected := n - int(failed.Load())
	// Connected means every subscription live on the server (set up, replayed), not only
	// sent.
	eventually(b, 120*time.Second, func() bool { return int(scrape(proc.url, "shop_live_subscribers")) >= connected }, "%d subscriptions live", connected)
	connectTime := time.Since(start)
	// Idle: the server's CPU is the heartbeats of every socket (and the relay's polling).
	idleBefore, idleStart := cpuTicks(b, pid), time.Now()
	time.Sleep(5 * time.Second) // let the heap settle
	idleCPU := float64(cpuTicks(b, pid)-idleBefore) / 100 / time.Since(idleStart).Seconds()
	rssSubscribed := rssKiB(b, pid)
	gSubscribed := scrape(proc.url, "go_goroutines")
	heapSubscribed := scrape(proc.url, "go_memstats_heap_inuse_bytes")
	// The next GC target is the live heap at the last collection times (1 + GOGC/100).
	goalSubscribed := scrape(proc.url, "go_memstats_next_gc_bytes")
	stacksSubscribed := scrape(proc.url, "go_memstats_stack_inuse_bytes")
	serverSubs := scrape(proc.url, "shop_live_subscribers")
	if path := os.Getenv("SHOP_BENCH_HEAP_PROFILE"); path != "" {
		saveHeapProfile(b, proc, path+"."+strings.TrimPrefix(b.Name(), "BenchmarkLiveFanout/"))
	}

	// Status changes at rate/s for seconds: PAID, then SHIPPED, then DELIVERED, order by order.
	cpuBefore, selfBefore, waitBefore := cpuTicks(b, pid), cpuTicks(b, os.Getpid()), runQueueWait(pid)
	loadStart := time.Now()
	statuses := []store.OrderStatus{store.StatusPaid, store.StatusShipped, store.StatusDelivered}
	jobs := make(chan int)
	var committed, expected, writeErrs, writeNanos atomic.Int64
	var writers sync.WaitGroup
	for range 48 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for k := range jobs {
				o := orders[k%m]
				t0 := time.Now()
				_, err := st.UpdateOrderStatus(ctx, store.Viewer{UserID: adminID, Role: store.RoleAdmin}, o.id, statuses[(k/m)%3], nil)
				writeNanos.Add(int64(time.Since(t0)))
				if err != nil {
					if writeErrs.Add(1) <= 3 {
						b.Logf("update: %v", err)
					}
					continue
				}
				committed.Add(1)
				if k%m < n && clients[k%m] != nil {
					expected.Add(1)
				}
			}
		}()
	}
	pace(jobs, loadStart, rate, total)
	writers.Wait()
	drain(lat, int(expected.Load()))
	loadTime := time.Since(loadStart)
	cpu := float64(cpuTicks(b, pid)-cpuBefore) / 100 / loadTime.Seconds() // USER_HZ is 100
	selfCPU := float64(cpuTicks(b, os.Getpid())-selfBefore) / 100 / loadTime.Seconds()
	// Time the server's threads were runnable but waited for a CPU: on a shared machine,
	// what it did not get.
	waited := float64(runQueueWait(pid)-waitBefore) / 1e9 / loadTime.Seconds()
	lag50, lag99 := histogramQuantile(proc.url, "shop_live_dispatch_lag_seconds", 0.5), histogramQuantile(proc.url, "shop_live_dispatch_lag_seconds", 0.99)
	load1, _ := os.ReadFile("/proc/loadavg")
	rssLoaded := rssKiB(b, pid)
	b.StopTimer()

	p50, p99, pmax := lat.percentiles()
	closedEarly := 0
	for _, c := range clients {
		if c != nil && c.closedEarly() {
			closedEarly++
		}
	}
	report := fmt.Sprintf(`live fan-out benchmark
  subscribers:          %d connected of %d (%s to connect; %.0f live on the server), %d closed during the run, %d errors
  server RSS:           %d KiB idle, %d KiB with subscribers, %d KiB after the load
  memory/subscriber:    %.1f KiB RSS delta (heap in use %.1f KiB/subscriber overall; live heap at the last GC ≈ %.1f KiB, goroutine stacks %.1f KiB)
  goroutines:           %.0f idle, %.0f with subscribers (%.2f per subscriber)
  events:               %d committed (%d errors, %s per commit) in %s = %.0f/s, %d delivered of %d to subscribers (%d lost, %d duplicates)
  latency commit→client p50 %s, p99 %s, max %s
  commit→server dispatch p50 ≤ %s, p99 ≤ %s (server histogram bucket bounds)
  server CPU:           %.3f cores idle with every subscriber; %.2f cores (of 2) during the load, %.2f more wanted (runnable, waiting for a CPU); this test process (writer and clients) %.2f
  machine load average: %s
  received per 5s:     %s
`, connected, n, connectTime.Round(time.Millisecond), serverSubs, closedEarly, lat.failed,
		rssBefore, rssSubscribed, rssLoaded,
		float64(rssSubscribed-rssBefore)/float64(connected), heapSubscribed/1024/float64(connected),
		(goalSubscribed-goalIdle)/2/1024/float64(connected), (stacksSubscribed-stacksIdle)/1024/float64(connected),
		gBefore, gSubscribed, (gSubscribed-gBefore)/float64(connected),
		committed.Load(), writeErrs.Load(), time.Duration(writeNanos.Load()/max(1, committed.Load())).Round(10*time.Microsecond), loadTime.Round(time.Millisecond), float64(committed.Load())/loadTime.Seconds(), lat.count(), expected.Load(), expected.Load()-int64(lat.count()), lat.duplicates(),
		p50, p99, pmax, lag50, lag99, idleCPU, cpu, waited, selfCPU, strings.TrimSpace(string(load1)), lat.timeline(loadStart, 5*time.Second))
	if os.Getenv("SHOP_BENCH_SERVER_GODEBUG") != "" {
		for _, line := range strings.Split(proc.log.String(), "\n") {
			if strings.HasPrefix(line, "gc ") {
				fmt.Fprintln(os.Stderr, "server:", line)
			}
		}
	}
	if lat.failed > 0 {
		shown := 0
		for _, line := range strings.Split(proc.log.String(), "\n") {
			if strings.Contains(line, "internal error") && shown < 3 {
				fmt.Fprintln(os.Stderr, "server:", line)
				shown++
			}
		}
	}
	b.Log(report)
	fmt.Fprint(os.Stderr, report)
	slope := float64(rssSubscribed-rssHalf) / float64(n-n/2)
	fmt.Fprintf(os.Stderr, "  RSS slope:            %.1f KiB per subscriber over the second half\n", slope)
	b.ReportMetric(float64(rssSubscribed-rssBefore)/float64(connected), "KiB/subscriber")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	for _, c := range clients {
		if c != nil {
			_ = c.conn.CloseNow()
		}
	}
	eventually(b, 60*time.Second, func() bool { return scrape(proc.url, "shop_live_sockets") == 0 }, "fan-out sockets closed")
	dashboard := liveDashboard(b, proc, dbURL, st, secret, token, orders)
	return fmt.Sprintf("%-6d %-8s %-12.1f %-10.1f %-13.1f %-15.3f %-9.0f %-20s %-8s %-8s %.2f cores",
		connected, connectTime.Round(100*time.Millisecond), float64(rssSubscribed-rssBefore)/float64(connected), slope,
		(goalSubscribed-goalIdle)/2/1024/float64(connected), (gSubscribed-gBefore)/float64(connected),
		float64(committed.Load())/loadTime.Seconds(), fmt.Sprintf("%d/%d", lat.count(), expected.Load()), p50, p99, cpu), dashboard
}

const dashboardHeader = "merchants  watchers  connect  orders/s  delivered/expected  dups  p50      p99      server CPU  CPU µs/event"

// liveDashboard is the merchants' case: SHOP_BENCH_MERCHANTS (500) myOrderEvents
// subscribers, one per merchant, and SHOP_BENCH_WATCHERS (5000) idle orderStatusChanged
// watchers, while orders of the merchants' products are placed at SHOP_BENCH_ORDER_RATE
// (200/s) for SHOP_BENCH_DASHBOARD_SECONDS (20): each order's creation event goes to its
// merchant. It returns its table row, with the server's CPU per delivered event.
func liveDashboard(b *testing.B, proc *shopProcess, dbURL string, st *store.Store, secret, adminToken string, watch []benchOrder) string {
	merchants, watchers := envInt("SHOP_BENCH_MERCHANTS", 500), min(envInt("SHOP_BENCH_WATCHERS", 5000), len(watch))
	rate, seconds := envInt("SHOP_BENCH_ORDER_RATE", 200), envInt("SHOP_BENCH_DASHBOARD_SECONDS", 20)
	ctx := context.Background()
	pid := proc.cmd.Process.Pid

	// Merchants, a product each, and the customer who orders.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `WITH m AS (
			INSERT INTO users (email, email_key, name, role, password_hash, created_at)
			SELECT 'dash-' || g || '@x', 'dash-' || g || '@x', 'Dash', 'MERCHANT', 'x', now() FROM generate_series(1, $1) g
			RETURNING id)
		INSERT INTO products (merchant_id, name, price, stock, created_at, updated_at)
		SELECT id, 'Dash', 100, 1000000, now(), now() FROM m RETURNING id, merchant_id`, merchants)
	if err != nil {
		b.Fatal(err)
	}
	type shop struct{ product, merchant int64 }
	var shops []shop
	for rows.Next() {
		var sh shop
		if err := rows.Scan(&sh.product, &sh.merchant); err != nil {
			b.Fatal(err)
		}
		shops = append(shops, sh)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	var customer int64
	if err := conn.QueryRow(ctx, `INSERT INTO users (email, email_key, name, role, password_hash, created_at)
		VALUES ('dash-customer@x', 'dash-customer@x', 'Dash', 'CUSTOMER', 'x', now()) RETURNING id`).Scan(&customer); err != nil {
		b.Fatal(err)
	}
	tokens := auth.NewTokens([]byte(secret), 0)

	lat := &latencies{}
	var clients []*benchClient
	var mu sync.Mutex
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	open := func(token, sub string) {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialSubscriber(proc.url, token, sub, lat)
			if err != nil {
				if failed.Add(1) <= 3 {
					b.Logf("dashboard subscriber: %v", err)
				}
				return
			}
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
		}()
	}
	start := time.Now()
	for _, sh := range shops {
		token, err := tokens.Issue(store.User{ID: sh.merchant, Role: store.RoleMerchant})
		if err != nil {
			b.Fatal(err)
		}
		open(token, `{"type":"subscribe","id":"1","payload":{"query":"subscription { myOrderEvents { id status at } }"}}`)
	}
	// Watchers get nothing during the load (their orders do not change): they are the
	// idle phones around the busy dashboards.
	for _, o := range watch[:watchers] {
		open(adminToken, fmt.Sprintf(`{"type":"subscribe","id":"1","payload":{"query":"subscription($id: ID!) { orderStatusChanged(orderId: $id) { id status at } }","variables":{"id":%q}}}`,
			gid("Order", o.id)))
	}
	wg.Wait()
	connectTime := time.Since(start)
	eventually(b, 60*time.Second, func() bool { return int(scrape(proc.url, "shop_live_subscribers")) >= len(clients) }, "dashboard subscriptions live")
	time.Sleep(2 * time.Second)

	cpuBefore := cpuTicks(b, pid)
	loadStart := time.Now()
	total := rate * seconds
	jobs := make(chan int)
	var placed, errs atomic.Int64
	var placers sync.WaitGroup
	for range 16 {
		placers.Add(1)
		go func() {
			defer placers.Done()
			for k := range jobs {
				_, err := st.PlaceOrder(ctx, store.Viewer{UserID: customer, Role: store.RoleCustomer},
					store.NewOrder{Lines: []store.OrderLine{{ProductID: shops[k%len(shops)].product, Quantity: 1}}})
				if err != nil {
					if errs.Add(1) <= 3 {
						b.Logf("place order: %v", err)
					}
					continue
				}
				placed.Add(1)
			}
		}()
	}
	pace(jobs, loadStart, rate, total)
	placers.Wait()
	drain(lat, int(placed.Load()))
	loadTime := time.Since(loadStart)
	cpuSeconds := float64(cpuTicks(b, pid)-cpuBefore) / 100
	p50, p99, _ := lat.percentiles()
	delivered := lat.count()
	fmt.Fprintf(os.Stderr, `dashboard benchmark
  subscribers:          %d merchants (myOrderEvents) and %d watchers, %d failed, connected in %s
  orders:               %d placed (%d errors) in %s = %.0f/s; %d events delivered (%d duplicates, %d subscription errors)
  latency commit→client p50 %s, p99 %s
  server CPU:           %.2f cores, %.0f µs per delivered event
`, merchants, watchers, failed.Load(), connectTime.Round(time.Millisecond), placed.Load(), errs.Load(), loadTime.Round(time.Millisecond),
		float64(placed.Load())/loadTime.Seconds(), delivered, lat.duplicates(), lat.failed, p50, p99,
		cpuSeconds/loadTime.Seconds(), cpuSeconds*1e6/float64(max(1, delivered)))
	for _, c := range clients {
		_ = c.conn.CloseNow()
	}
	return fmt.Sprintf("%-10d %-9d %-8s %-9.0f %-19s %-5d %-8s %-8s %-11s %.0f",
		merchants, watchers, connectTime.Round(100*time.Millisecond), float64(placed.Load())/loadTime.Seconds(),
		fmt.Sprintf("%d/%d", delivered, placed.Load()), lat.duplicates(), p50, p99,
		fmt.Sprintf("%.2f cores", cpuSeconds/loadTime.Seconds()), cpuSeconds*1e6/float64(max(1, delivered)))
}

// pprofAddr picks a port for the server's PPROF_ADDR when SHOP_BENCH_HEAP_PROFILE asks for a
// heap profile of the subscribed server.
func pprofAddr(b *testing.B) string {
	if os.Getenv("SHOP_BENCH_HEAP_PROFILE") == "" {
		return ""
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// saveHeapProfile writes the server's heap profile (after a collection) to path.
func saveHeapProfile(b *testing.B, proc *shopProcess, path string) {
	var addr string
	for _, kv := range proc.cmd.Env {
		if v, ok := strings.CutPrefix(kv, "PPROF_ADDR="); ok && v != "" {
			addr = v
		}
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.Fatal(err)
	}
}

type benchOrder struct{ id, created int64 }

// seedOrders writes n PENDING orders (one line, one creation event each) in a few statements.
func seedOrders(b testing.TB, dbURL string, n int) ([]benchOrder, int64) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var adminID, merchant, product int64
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(conn.QueryRow(ctx, `SELECT id FROM users WHERE role = 'ADMIN'`).Scan(&adminID))
	must(conn.QueryRow(ctx, `INSERT INTO users (email, email_key, name, role, password_hash, created_at)
		VALUES ('bench-merchant@x', 'bench-merchant@x', 'Bench', 'MERCHANT', 'x', now()) RETURNING id`).Scan(&merchant))
	must(conn.QueryRow(ctx, `INSERT INTO products (merchant_id, name, price, stock, created_at, updated_at)
		VALUES ($1, 'Bench', 100, 0, now(), now()) RETURNING id`, merchant).Scan(&product))
	_, err = conn.Exec(ctx, `INSERT INTO orders (customer_id, status, total, created_at, updated_at)
		SELECT $1, 'PENDING', 100, now(), now() FROM generate_series(1, $2)`, merchant, n)
	must(err)
	_, err = conn.Exec(ctx, `INSERT INTO order_items (order_id, position, product_id, merchant_id, quantity, unit_price)
		SELECT id, 0, $1, $2, 1, 100 FROM orders`, product, merchant)
	must(err)
	_, err = conn.Exec(ctx, `INSERT INTO order_status_events (order_id, status, at, published_at)
		SELECT id, 'PENDING', now(), now() FROM orders`)
	must(err)
	_, err = conn.Exec(ctx, `ANALYZE`)
	must(err)
	rows, err := conn.Query(ctx, `SELECT o.id, e.id FROM orders o JOIN order_status_events e ON e.order_id = o.id ORDER BY o.id`)
	must(err)
	var out []benchOrder
	for rows.Next() {
		var o benchOrder
		must(rows.Scan(&o.id, &o.created))
		out = append(out, o)
	}
	must(rows.Err())
	return out, adminID
}

func benchLogIn(b *testing.B, url, email, password string) string {
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: LogInInput!) { logIn(input: $in) { token } }`,
		"variables": map[string]any{"in": map[string]any{"email": email, "password": password}},
	})
	resp, err := http.Post(url+"/graphql", "application/json", strings.NewReader(string(body)))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct{ LogIn struct{ Token string } }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Data.LogIn.Token == "" {
		b.Fatalf("log in: %v", err)
	}
	return out.Data.LogIn.Token
}

// benchClient is one subscriber: it records each event's commit-to-receipt latency.
type benchClient struct {
	conn *websocket.Conn
	done chan struct{}
}

func (c *benchClient) closedEarly() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func dialBench(url, token string, o benchOrder, lat *latencies) (*benchClient, error) {
	sub := fmt.Sprintf(`{"type":"subscribe","id":"1","payload":{"query":"subscription($id: ID!, $after: ID) { orderStatusChanged(orderId: $id, after: $after) { id status at } }","variables":{"id":%q,"after":%q}}}`,
		gid("Order", o.id), gid("OrderStatusEvent", o.created))
	return dialSubscriber(url, token, sub, lat)
}

// dialSubscriber opens a socket, initialises it with token, sends the subscribe message sub
// and records the latency of every event it receives (any subscription field with `id` and
// `at`), and every duplicate.
func dialSubscriber(url, token, sub string, lat *latencies) (*benchClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1)+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return nil, err
	}
	write := func(s string) error { return conn.Write(ctx, websocket.MessageText, []byte(s)) }
	if err := write(`{"type":"connection_init","payload":{"Authorization":"Bearer ` + token + `"}}`); err != nil {
		return nil, err
	}
	if _, data, err := conn.Read(ctx); err != nil || !strings.Contains(string(data), "connection_ack") {
		_ = conn.CloseNow()
		return nil, fmt.Errorf("init: %v %s", err, data)
	}
	if err := write(sub); err != nil {
		return nil, err
	}
	c := &benchClient{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		seen := map[string]bool{}
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			now := time.Now()
			var m struct {
				Type    string
				Payload struct {
					Data map[string]struct {
						ID string
						At time.Time
					}
				}
			}
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			switch m.Type {
			case "ping":
				_ = conn.Write(context.Background(), websocket.MessageText, []byte(`{"type":"pong"}`))
			case "next":
				for _, e := range m.Payload.Data {
					switch {
					case e.At.IsZero():
						if lat.fail(string(data)) <= 3 {
							fmt.Fprintf(os.Stderr, "subscription error: %s\n", data)
						}
					case seen[e.ID]:
						lat.duplicate()
					default:
						seen[e.ID] = true
						lat.add(now.Sub(e.At))
					}
				}
			case "error", "complete":
				if lat.fail(string(data)) <= 3 {
					fmt.Fprintf(os.Stderr, "subscription ended: %s\n", data)
				}
			}
		}
	}()
	return c, nil
}

type latencies struct {
	mu     sync.Mutex
	d      []time.Duration
	at     []time.Time // when each was received
	failed int
	dups   int // events a subscriber received twice
}

func (l *latencies) duplicate() { l.mu.Lock(); l.dups++; l.mu.Unlock() }

func (l *latencies) duplicates() int { l.mu.Lock(); defer l.mu.Unlock(); return l.dups }

// timeline returns, per window of the load, how many events arrived and their worst latency.
func (l *latencies) timeline(start time.Time, window time.Duration) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	type slot struct {
		n   int
		max time.Duration
	}
	var slots []slot
	for i, t := range l.at {
		k := int(t.Sub(start) / window)
		if k < 0 {
			continue
		}
		for len(slots) <= k {
			slots = append(slots, slot{})
		}
		slots[k].n++
		slots[k].max = max(slots[k].max, l.d[i])
	}
	var sb strings.Builder
	for k, sl := range slots {
		fmt.Fprintf(&sb, " [%ds: %d, max %s]", k*int(window/time.Second), sl.n, sl.max.Round(time.Millisecond))
	}
	return sb.String()
}

// fail counts a subscription that ended or sent an error instead of an event.
func (l *latencies) fail(string) int { l.mu.Lock(); defer l.mu.Unlock(); l.failed++; return l.failed }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
}

func (l *latencies) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.d) }

func (l *latencies) percentiles() (p50, p99, max time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		return s[min(len(s)-1, int(q*float64(len(s))))].Round(100 * time.Microsecond)
	}
	return at(0.50), at(0.99), s[len(s)-1].Round(time.Millisecond)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// rssKiB returns a process's resident set size.
func rssKiB(b *testing.B, pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// cpuTicks returns a process's user+system CPU time in clock ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data)[strings.LastIndexByte(string(data), ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// histogramQuantile returns the upper bound of the bucket of a server histogram holding
// quantile q, 0 when the histogram is missing.
func histogramQuantile(url, name string, q float64) time.Duration {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	type bucket struct{ le, n float64 }
	var buckets []bucket
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, count, _ := strings.Cut(rest, `"} `)
		l, _ := strconv.ParseFloat(le, 64)
		n, _ := strconv.ParseFloat(count, 64)
		buckets = append(buckets, bucket{l, n})
	}
	if len(buckets) == 0 || buckets[len(buckets)-1].n == 0 {
		return 0
	}
	total := buckets[len(buckets)-1].n
	for _, bk := range buckets {
		if bk.n >= q*total {
			return time.Duration(bk.le * float64(time.Second))
		}
	}
	return 0
}

// runQueueWait returns how long a process's threads have waited to run, in nanoseconds.
func runQueueWait(pid int) int64 {
	dirs, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	var total int64
	for _, d := range dirs {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + d.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(data)); len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			total += n
		}
	}
	return total
}

// scrape returns a metric of the server's /metrics, 0 when it is missing.
func scrape(url, name string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// pace sends 0…total-1 to jobs at rate a second from start, then closes it. Paced by the
// clock, not a ticker (which drops ticks on a busy machine): behind schedule, the next jobs
// go out at once.
func pace(jobs chan<- int, start time.Time, rate, total int) {
	interval := time.Second / time.Duration(rate)
	for k := range total {
		if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
			time.Sleep(d)
		}
		jobs <- k
	}
	close(jobs)
}

// drain waits up to 30 s for lat to hold want deliveries.
func drain(lat interface{ count() int }, want int) {
	deadline := time.Now().Add(30 * time.Second)
	for lat.count() < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}
