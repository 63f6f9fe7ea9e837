package tests

// BenchmarkServerProcess measures the server binary as production runs it: its own process,
// APP_ENV=production with every protection on, PostgreSQL and Redis, the cache warm, and the
// load sent by wrk from another process, so the CPU time read from /proc/<pid>/stat is the
// server's alone. It needs DATABASE_URL, REDIS_URL and wrk (apt-get install wrk):
//
//	DATABASE_URL=… REDIS_URL=… BENCH_OLD_REF=<commit> go test ./tests -run '^$' -bench ServerProcess -benchtime 1x -timeout 60m
//
// Each cell (workload × concurrency 1, 8, 32 × build) reports req/s, the server's
// CPU µs, allocations and bytes allocated per request (from its /metrics Go collector), wrk's
// p50/p99 latency in ms, and errors (socket errors, timeouts, non-2xx, and responses with
// GraphQL or user errors). The cells are measured first and then reported as sub-benchmarks
// (hence -benchtime 1x), so that with BENCH_OLD_REF the two builds alternate cell by cell on
// the same machine. The seeded shop is BenchmarkWorkloads' (seedWorkloadShop); each build gets
// a database and Redis namespace of its own, seeded alike.
//
// Environment:
//
//	BENCH_DURATION  each cell's wrk duration, whole seconds (default 10s)
//	BENCH_ROUNDS    rounds of every cell; each figure is the median over rounds (default 1)
//	BENCH_OLD_REF   a git commit to build beside the current tree (git worktree add, removed after)
//	BENCH_TABLE     a file to write the markdown table to (it is printed too)
//	BENCH_PPROF     PPROF_ADDR for the current tree's server (e.g. 127.0.0.1:6060)
//	BENCH_PROFILE_DIR  with BENCH_PPROF: a CPU profile of the current tree's server over each
//	                cell, written there as <workload>-c<concurrency>.pprof
//	BENCH_PPROF_BUILD  the build BENCH_PPROF profiles: new (default) or cached
//	BENCH_NEW_ENV   space-separated KEY=value settings added to the current tree's server's
//	                environment (e.g. GOGC=400 beside BENCH_OLD_REF=HEAD, to price a setting)
//	BENCH_WORKLOADS, BENCH_CONCURRENCY  comma-separated subsets (default W1,W2,W3 and 1,8,32)
//	BENCH_HANDWRITTEN  1: also run the hand-written net/http + pgx program
//	                (testdata/bench/handwritten) on W1 and W2, the floor the service is held to
//
// Workloads: W1 the anonymous storefront (50 products and their merchants), W2 a customer's
// order history, W3 placeOrder, on builds old and new; new runs with RESPONSE_CACHE=false, so
// that W1 measures the executor. W1C is W1 answered by the response cache, and MIX is W1C
// while an order takes stock from one of its products every second, each followed by a read
// of W1 checked against the database (a mismatch counts as an error): both on build
// "cached", the current tree's binary with its response cache on, a second process on new's
// database and Redis namespace, as a replica would be. The table's hit rate is the response
// cache's over the cell.
//
// The rate limit stays on, as production pays for it, but at benchRateLimit points a minute:
// the default 30,000 would throttle a load test that comes from one IP address.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/auth"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

const (
	benchSecret = "benchmark-secret-of-at-least-32-bytes"
	// benchRateLimit keeps the cost-based rate limit on without throttling the load test.
	benchRateLimit = 1_000_000_000
)

// workloadShop is the data set of the benchmarks: 50 merchants, 5,000 products, 1,000
// customers and 20,000 orders of 1–5 items.
var workloadShop = storetest.Shop{
	Merchants: 50, ProductsPerMerchant: 100, Stock: 1_000_000, Customers: 1000,
	// 100 customers with 40 orders each (W2), 700 with 18 and 200 with 17: 20,000.
	OrdersOf: func(c int) int {
		switch {
		case c < 100:
			return 40
		case c < 800:
			return 18
		}
		return 17
	},
	ItemsOf: func(o int) int { return 1 + o%5 },
}

// seedWorkloadShop seeds s with workloadShop.
func seedWorkloadShop(tb testing.TB, s *store.Store) storetest.Seeded {
	tb.Helper()
	return seedShop(tb, s, workloadShop)
}

// seedShop seeds s with shop. It is the one place that hands storetest.Seed its database.
func seedShop(tb testing.TB, s *store.Store, shop storetest.Shop) storetest.Seeded {
	tb.Helper()
	return storetest.Seed(tb, s, shop)
}

// The workloads' documents, as in BenchmarkWorkloads.
const (
	benchW1 = `{ products(first: 50) { nodes { id name price { amount currency } stock merchant { id name } } } }`
	benchW2 = `{ me { orders(first: 20) { nodes { id status total { amount } items { quantity unitPrice { amount } product { name merchant { name } } } history { status at } } } } }`
	benchW3 = `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id status total { amount } items { quantity product { name stock merchant { name } } } } userErrors { code message } } }`
)

// benchCell is one measurement of one build under one workload and concurrency.
type benchCell struct {
	ReqPerSec, CPUMicros, Allocs, Bytes, P50, P99 float64
	Errors                                        int
	// HitRate is the response cache's hits over its Lookups (hits and misses) in the cell.
	HitRate float64
	Lookups int
}

func BenchmarkServerProcess(b *testing.B) {
	storetest.RequireCommand(b, "wrk")
	baseDB, redisURL := os.Getenv("DATABASE_URL"), os.Getenv("REDIS_URL")
	storetest.Require(b, baseDB != "" && redisURL != "", "DATABASE_URL and REDIS_URL are needed: server process benchmark skipped")
	storetest.RedisURL(b) // skips when Redis does not answer
	duration := benchEnvDuration(b, "BENCH_DURATION", 10*time.Second)
	rounds := benchEnvInt(b, "BENCH_ROUNDS", 1)
	script, err := filepath.Abs(filepath.Join("testdata", "bench", "graphql.lua"))
	if err != nil {
		b.Fatal(err)
	}
	root := repoRoot(b)

	type build struct {
		name, rev string
		srv       *benchServer
		runs      []string // the workloads it serves
	}
	head := gitRev(b, root, "HEAD") + dirtyMark(b, root)
	builds := []*build{{name: "new", rev: head, runs: []string{"W1", "W2", "W3"}}}
	if ref := os.Getenv("BENCH_OLD_REF"); ref != "" {
		builds = slices.Insert(builds, 0, &build{name: "old", rev: gitRev(b, root, ref), runs: []string{"W1", "W2", "W3"}})
	}
	var seeded []storetest.Seeded
	var newEnv []string
	var newDB string
	var extra []*build
	for _, bd := range builds {
		dir := root
		if bd.name == "old" {
			dir = oldWorktree(b, root, bd.rev)
		}
		bin := buildServerBinary(b, dir, ".")
		dbURL := storetest.PostgresURL(b)
		if bd.name == "new" {
			newDB = dbURL
		}
		started := time.Now()
		seeded = append(seeded, seedBenchDatabase(b, dbURL))
		b.Logf("%s (%s): seeded its database in %s", bd.name, bd.rev, time.Since(started).Round(time.Millisecond))
		env := []string{
			"APP_ENV=production", "DATABASE_URL=" + dbURL, "REDIS_URL=" + redisURL,
			"REDIS_PREFIX=" + storetest.RedisPrefix(b, redisURL), "JWT_SECRET=" + benchSecret,
			"RATE_LIMIT_POINTS_PER_MINUTE=" + strconv.Itoa(benchRateLimit),
		}
		if bd.name == "new" {
			newEnv = slices.Clone(env)
			if extra := os.Getenv("BENCH_NEW_ENV"); extra != "" {
				newEnv = append(newEnv, strings.Fields(extra)...)
			}
			env = append(slices.Clone(newEnv), "RESPONSE_CACHE=false")
			// The response cache's process and the hand-written program share new's database.
			cached := &build{name: "cached", rev: head, runs: []string{"W1C", "MIX"}}
			cachedEnv := newEnv
			if addr := os.Getenv("BENCH_PPROF"); addr != "" && os.Getenv("BENCH_PPROF_BUILD") == "cached" {
				cachedEnv = append(slices.Clone(newEnv), "PPROF_ADDR="+addr)
			}
			cached.srv = startBenchServer(b, bin, cachedEnv)
			extra = append(extra, cached)
			if os.Getenv("BENCH_HANDWRITTEN") == "1" {
				hand := &build{name: "hand", rev: "testdata/bench/handwritten", runs: []string{"W1", "W2"}}
				hand.srv = startBenchServer(b, buildServerBinary(b, root, "./tests/testdata/bench/handwritten"),
					[]string{"DATABASE_URL=" + dbURL, "JWT_SECRET=" + benchSecret})
				extra = append(extra, hand)
			}
			if addr := os.Getenv("BENCH_PPROF"); addr != "" && cmp.Or(os.Getenv("BENCH_PPROF_BUILD"), "new") == "new" {
				env = append(env, "PPROF_ADDR="+addr)
			}
		}
		bd.srv = startBenchServer(b, bin, env)
	}
	builds = append(builds, extra...)
	shop := seeded[0]
	for _, s := range seeded[1:] {
		if !slices.Equal(s.ProductIDs, shop.ProductIDs) || !slices.Equal(s.CustomerIDs, shop.CustomerIDs) {
			b.Fatal("the builds' databases were seeded with different IDs")
		}
	}

	files := writeWorkloadRequests(b, shop)
	files["W1C"], files["MIX"] = files["W1"], files["W1"]
	workloads := benchEnvList("BENCH_WORKLOADS", "W1,W2,W3")
	concurrencies := benchEnvInts(b, "BENCH_CONCURRENCY", "1,8,32")
	profileDir := os.Getenv("BENCH_PROFILE_DIR")
	serves := func(bd *build, w string) bool { return slices.Contains(bd.runs, w) }
	for _, bd := range builds {
		for _, w := range workloads {
			if serves(bd, w) {
				bd.srv.check(b, files[w])
				bd.srv.wrk(b, script, files[w], 8, min(2*time.Second, duration)) // warm the cache
			}
		}
	}
	mix := newStockTaker(b, shop, newDB)

	type key struct {
		workload string
		c        int
		build    string
	}
	results := map[key][]benchCell{}
	for r := range rounds {
		for _, w := range workloads {
			for _, c := range concurrencies {
				order := builds
				if r%2 == 1 { // alternate which build goes first in a cell
					order = slices.Clone(builds)
					slices.Reverse(order)
				}
				for _, bd := range order {
					if !serves(bd, w) {
						continue
					}
					var profiled chan struct{}
					if profileDir != "" && bd.name == cmp.Or(os.Getenv("BENCH_PPROF_BUILD"), "new") && r == 0 {
						profiled = bd.srv.profile(b, filepath.Join(profileDir, fmt.Sprintf("%s-c%d.pprof", w, c)), duration)
					}
					var stop func() int
					if w == "MIX" {
						stop = mix.start(bd.srv)
					}
					cell := bd.srv.measure(b, script, files[w], c, duration)
					if stop != nil {
						cell.Errors += stop()
					}
					if profiled != nil {
						<-profiled
					}
					k := key{w, c, bd.name}
					results[k] = append(results[k], cell)
				}
			}
		}
	}

	medians := map[key]benchCell{}
	for k, cells := range results {
		medians[k] = medianCell(cells)
	}
	for _, w := range workloads {
		for _, c := range concurrencies {
			for _, bd := range builds {
				m, ok := medians[key{w, c, bd.name}]
				if !ok {
					continue
				}
				b.Run(fmt.Sprintf("%s/c=%d/build=%s", w, c, bd.name), func(b *testing.B) {
					b.ReportMetric(m.ReqPerSec, "req/s")
					b.ReportMetric(m.CPUMicros, "cpu-µs/req")
					b.ReportMetric(m.Allocs, "allocs/req")
					b.ReportMetric(m.Bytes, "B/req")
					b.ReportMetric(m.P50, "p50-ms")
					b.ReportMetric(m.P99, "p99-ms")
					b.ReportMetric(float64(m.Errors), "errors")
				})
			}
		}
	}

	var t strings.Builder
	fmt.Fprintf(&t, "Server process benchmark, %s, wrk %s cells, %d round(s) (medians), %d CPUs, production config, cache warm.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), duration, rounds, runtime.NumCPU())
	for _, bd := range builds {
		fmt.Fprintf(&t, "Build %s = %s. ", bd.name, bd.rev)
	}
	t.WriteString("new runs with RESPONSE_CACHE=false; cached is the same binary with it on.\n\n")
	t.WriteString("| workload | c | build | req/s | CPU µs/req | allocs/req | KB/req | p50 ms | p99 ms | errors | hit rate |\n")
	t.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range workloads {
		for _, c := range concurrencies {
			for _, bd := range builds {
				m, ok := medians[key{w, c, bd.name}]
				if !ok {
					continue
				}
				hit := "–"
				if m.Lookups > 0 {
					hit = fmt.Sprintf("%.2f%%", 100*m.HitRate)
				}
				fmt.Fprintf(&t, "| %s | %d | %s | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f | %d | %s |\n", w, c, bd.name,
					m.ReqPerSec, m.CPUMicros, m.Allocs, m.Bytes/1024, m.P50, m.P99, m.Errors, hit)
			}
		}
	}
	t.WriteString("\n")
	for _, c := range concurrencies {
		ratio := func(label, wa, ba, wb, bb string) {
			x, okx := medians[key{wa, c, ba}]
			y, oky := medians[key{wb, c, bb}]
			if okx && oky && y.ReqPerSec > 0 {
				fmt.Fprintf(&t, "- c=%d %s: req/s %.2f×, CPU per request %.2f×\n", c, label, x.ReqPerSec/y.ReqPerSec, x.CPUMicros/y.CPUMicros)
			}
		}
		for _, w := range []string{"W1", "W2", "W3"} {
			ratio(w+" new÷old", w, "new", w, "old")
			ratio(w+" new÷hand", w, "new", w, "hand")
		}
		ratio("W1C (cached) ÷ W1 hand", "W1C", "cached", "W1", "hand")
		ratio("W1C (cached) ÷ W1 new", "W1C", "cached", "W1", "new")
	}
	if mix.checked > 0 {
		fmt.Fprintf(&t, "\nMIX: %d orders, each followed by a W1 read checked against the database: %d mismatches.\n", mix.checked, mix.mismatches)
	}
	// A benchmark with sub-benchmarks shows its log only with -v: print the table instead.
	fmt.Print("\n" + t.String() + "\n")
	if path := os.Getenv("BENCH_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(t.String()), 0o644); err != nil {
			b.Errorf("BENCH_TABLE: %v", err)
		}
	}
	for k, m := range medians {
		if m.Errors > 0 {
			b.Errorf("%s c=%d %s: %d errors", k.workload, k.c, k.build, m.Errors)
		}
	}
}

// seedBenchDatabase migrates the database at dbURL and seeds it with workloadShop.
func seedBenchDatabase(tb testing.TB, dbURL string) storetest.Seeded {
	tb.Helper()
	s, err := store.Open(context.Background(), store.Config{DatabaseURL: dbURL})
	if err != nil {
		tb.Fatalf("open %s: %v", dbURL, err)
	}
	defer s.Close()
	return seedWorkloadShop(tb, s)
}

// writeWorkloadRequests writes each workload's requests for the wrk script (one a line: the
// Authorization value or "-", a tab, the JSON body) and returns the files by workload.
// W2 asks as the 100 customers with 40 orders; W3 orders 3 of 20 hot products as 32 others.
func writeWorkloadRequests(tb testing.TB, shop storetest.Seeded) map[string]string {
	tb.Helper()
	tokens := auth.NewTokens([]byte(benchSecret), 24*time.Hour)
	bearer := func(id int64) string {
		t, err := tokens.Issue(store.User{ID: id, Role: store.RoleCustomer})
		if err != nil {
			tb.Fatal(err)
		}
		return "Bearer " + t
	}
	line := func(authorization, query string, vars map[string]any) string {
		body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
		if err != nil {
			tb.Fatal(err)
		}
		return authorization + "\t" + string(body) + "\n"
	}
	var w1, w2, w3 strings.Builder
	w1.WriteString(line("-", benchW1, nil))
	for _, id := range shop.CustomerIDs[:100] {
		w2.WriteString(line(bearer(id), benchW2, nil))
	}
	hot := shop.ProductIDs[:20]
	w3Users := make([]string, 32)
	for i := range w3Users {
		w3Users[i] = bearer(shop.CustomerIDs[100+i])
	}
	for i := range 32 * 20 { // every customer orders every product combination
		var lines []map[string]any
		for _, k := range []int{i, i + 7, i + 13} {
			lines = append(lines, map[string]any{"productId": gid("Product", hot[k%len(hot)]), "quantity": 1})
		}
		w3.WriteString(line(w3Users[i%len(w3Users)], benchW3, map[string]any{"in": map[string]any{"items": lines}}))
	}
	dir := tb.TempDir()
	files := map[string]string{}
	for name, content := range map[string]string{"W1": w1.String(), "W2": w2.String(), "W3": w3.String()} {
		files[name] = filepath.Join(dir, name+".txt")
		if err := os.WriteFile(files[name], []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return files
}

// benchServer is a server binary running in its own process.
type benchServer struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	client  *http.Client
	ticks   int64 // clock ticks a second, the unit of /proc/<pid>/stat
}

// startBenchServer starts bin with exactly env plus PORT and waits until /readyz answers 200.
// The process is killed when the benchmark ends; its log is printed if it failed.
func startBenchServer(tb testing.TB, bin string, env []string) *benchServer {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &benchServer{url: "http://127.0.0.1:" + strconv.Itoa(port), logPath: filepath.Join(tb.TempDir(), "server.log"),
		client: &http.Client{Timeout: 10 * time.Second}, ticks: clockTicks(tb)}
	// The log goes to a file the server writes itself: no pipe for this process to drain.
	logFile, err := os.Create(s.logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	s.cmd = exec.Command(bin)
	s.cmd.Env = append(slices.Clone(env), "PORT="+strconv.Itoa(port))
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-exited
		if tb.Failed() {
			tb.Logf("server log (%s), last lines:\n%s", s.logPath, s.logTail())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := s.client.Get(s.url + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-exited:
			tb.Fatalf("server exited before it was ready:\n%s", s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("server not ready on %s after 60s:\n%s", s.url, s.logTail())
		}
	}
}

func (s *benchServer) logTail() string {
	raw, _ := os.ReadFile(s.logPath)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}

// check sends the first request of file and fails unless it answers 200 without errors.
func (s *benchServer) check(tb testing.TB, file string) {
	tb.Helper()
	f, err := os.Open(file)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() {
		tb.Fatalf("%s is empty", file)
	}
	authorization, body, _ := strings.Cut(sc.Text(), "\t")
	req, _ := http.NewRequest(http.MethodPost, s.url+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authorization != "-" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) || bytes.Contains(raw, []byte(`"code"`)) {
		tb.Fatalf("%s: status %d: %.500s", filepath.Base(file), resp.StatusCode, raw)
	}
}

// wrkResult is what the wrk script's done() reports.
type wrkResult struct {
	requests, durationMicros, non2xx, graphqlErrors, socketErrors, timeouts, p50Micros, p99Micros int64
}

// wrk runs wrk against the server with c connections for d and returns its report.
func (s *benchServer) wrk(tb testing.TB, script, file string, c int, d time.Duration) wrkResult {
	tb.Helper()
	seconds := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.Command("wrk", "-t", strconv.Itoa(min(c, 2)), "-c", strconv.Itoa(c), "-d", strconv.Itoa(seconds)+"s",
		"--timeout", "5s", "--latency", "-s", script, s.url+"/graphql", "--", file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("wrk: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields, ok := strings.CutPrefix(line, "BENCH_RESULT ")
		if !ok {
			continue
		}
		var r wrkResult
		dst := map[string]*int64{"requests": &r.requests, "duration_us": &r.durationMicros, "non2xx": &r.non2xx,
			"graphql_errors": &r.graphqlErrors, "socket_errors": &r.socketErrors, "timeouts": &r.timeouts,
			"p50_us": &r.p50Micros, "p99_us": &r.p99Micros}
		for _, f := range strings.Fields(fields) {
			k, v, _ := strings.Cut(f, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if p := dst[k]; p != nil && err == nil {
				*p = n
			}
		}
		if r.requests == 0 || r.durationMicros == 0 {
			tb.Fatalf("wrk sent no requests:\n%s", out)
		}
		return r
	}
	tb.Fatalf("wrk printed no BENCH_RESULT line:\n%s", out)
	return wrkResult{}
}

// measure runs one cell: wrk for d at concurrency c, with the server's CPU time and Go
// allocation counters read just before and after.
func (s *benchServer) measure(tb testing.TB, script, file string, c int, d time.Duration) benchCell {
	tb.Helper()
	before := s.counters(tb)
	cpu0 := s.cpuTime(tb)
	r := s.wrk(tb, script, file, c, d)
	cpu1 := s.cpuTime(tb)
	after := s.counters(tb)
	mallocs0, bytes0, mallocs1, bytes1 := before.mallocs, before.bytes, after.mallocs, after.bytes
	hits, misses := after.hits-before.hits, after.misses-before.misses
	n := float64(r.requests)
	var hitRate float64
	if hits+misses > 0 {
		hitRate = hits / (hits + misses)
	}
	return benchCell{
		HitRate:   hitRate,
		Lookups:   int(hits + misses),
		ReqPerSec: n / (float64(r.durationMicros) / 1e6),
		CPUMicros: float64((cpu1 - cpu0).Microseconds()) / n,
		Allocs:    (mallocs1 - mallocs0) / n,
		Bytes:     (bytes1 - bytes0) / n,
		P50:       float64(r.p50Micros) / 1000,
		P99:       float64(r.p99Micros) / 1000,
		Errors:    int(r.non2xx + r.graphqlErrors + r.socketErrors + r.timeouts),
	}
}

// profile fetches a CPU profile of the server over (most of) d from its PPROF_ADDR listener
// into path, in the background; the returned channel closes when it is written.
func (s *benchServer) profile(tb testing.TB, path string, d time.Duration) chan struct{} {
	tb.Helper()
	addr := os.Getenv("BENCH_PPROF")
	done := make(chan struct{})
	seconds := max(1, int(d/time.Second)-1)
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds))
		if err != nil {
			tb.Errorf("CPU profile: %v", err)
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d: %.200s", resp.StatusCode, raw)
		}
		if err == nil {
			err = os.WriteFile(path, raw, 0o644)
		}
		if err != nil {
			tb.Errorf("CPU profile: %v", err)
		}
	}()
	return done
}

// cpuTime returns the user plus system CPU time the server process has used.
func (s *benchServer) cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		tb.Fatalf("server CPU time: %v", err)
	}
	// The fields after the command name, which is in parentheses and may hold spaces:
	// state is field 3 of proc(5), utime 14 and stime 15.
	i := bytes.LastIndexByte(raw, ')')
	fields := strings.Fields(string(raw[i+1:])) // i+1 = 0 without one: the check below fails
	if i < 0 || len(fields) < 13 {
		tb.Fatalf("server CPU time: unexpected /proc/<pid>/stat: %q", raw)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("server CPU time: unexpected /proc/<pid>/stat: %q", raw)
	}
	return time.Duration(utime+stime) * time.Second / time.Duration(s.ticks)
}

// clockTicks returns the kernel's clock ticks per second (getconf CLK_TCK), 100 when unknown.
func clockTicks(tb testing.TB) int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if n, perr := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && perr == nil && n > 0 {
		return n
	}
	tb.Log("getconf CLK_TCK failed: assuming 100 ticks a second")
	return 100
}

// serverCounters are the counters the benchmark reads from a server's /metrics.
type serverCounters struct {
	mallocs, bytes float64 // go_memstats_mallocs_total, go_memstats_alloc_bytes_total
	hits, misses   float64 // shop_response_cache_lookups_total (0 without a response cache)
}

// counters reads the server's serverCounters from its /metrics.
func (s *benchServer) counters(tb testing.TB) serverCounters {
	tb.Helper()
	resp, err := s.client.Get(s.url + "/metrics")
	if err != nil {
		tb.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	var out serverCounters
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "go_memstats_mallocs_total":
			dst = &out.mallocs
			found++
		case "go_memstats_alloc_bytes_total":
			dst = &out.bytes
			found++
		case `shop_response_cache_lookups_total{result="hit"}`:
			dst = &out.hits
		case `shop_response_cache_lookups_total{result="miss"}`:
			dst = &out.misses
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			tb.Fatalf("metrics: %s: %v", name, err)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK || found != 2 {
		tb.Fatalf("metrics: status %d, want go_memstats_mallocs_total and go_memstats_alloc_bytes_total", resp.StatusCode)
	}
	return out
}

// medianCell returns the median of each figure over cells, and the errors of them all.
func medianCell(cells []benchCell) benchCell {
	median := func(f func(benchCell) float64) float64 {
		v := make([]float64, len(cells))
		for i, c := range cells {
			v[i] = f(c)
		}
		slices.Sort(v)
		if n := len(v); n%2 == 0 {
			return (v[n/2-1] + v[n/2]) / 2
		}
		return v[len(v)/2]
	}
	m := benchCell{
		ReqPerSec: median(func(c benchCell) float64 { return c.ReqPerSec }),
		CPUMicros: median(func(c benchCell) float64 { return c.CPUMicros }),
		Allocs:    median(func(c benchCell) float64 { return c.Allocs }),
		Bytes:     median(func(c benchCell) float64 { return c.Bytes }),
		P50:       median(func(c benchCell) float64 { return c.P50 }),
		P99:       median(func(c benchCell) float64 { return c.P99 }),
		HitRate:   median(func(c benchCell) float64 { return c.HitRate }),
	}
	for _, c := range cells {
		m.Errors += c.Errors
		m.Lookups += c.Lookups
	}
	return m
}

// repoRoot returns the root of the module under test.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		tb.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// gitRev returns the short commit ref names in the repository at dir.
func gitRev(tb testing.TB, dir, ref string) string {
	tb.Helper()
	out, err := runIn(dir, "git", "rev-parse", "--short", ref+"^{commit}")
	if err != nil {
		tb.Fatalf("git rev-parse %s: %v\n%s", ref, err, out)
	}
	return strings.TrimSpace(out)
}

// dirtyMark returns "+changes" when the tree at dir has uncommitted changes to tracked files.
func dirtyMark(tb testing.TB, dir string) string {
	tb.Helper()
	out, err := runIn(dir, "git", "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		tb.Fatalf("git status: %v\n%s", err, out)
	}
	if strings.TrimSpace(out) != "" {
		return "+changes"
	}
	return ""
}

// oldWorktree checks rev out into a temporary git worktree, removed when the benchmark ends,
// and returns its directory.
func oldWorktree(tb testing.TB, root, rev string) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "old")
	if out, err := runIn(root, "git", "worktree", "add", "--detach", dir, rev); err != nil {
		tb.Fatalf("git worktree add %s: %v\n%s", rev, err, out)
	}
	tb.Cleanup(func() {
		if out, err := runIn(root, "git", "worktree", "remove", "--force", dir); err != nil {
			tb.Errorf("git worktree remove %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// buildServerBinary builds the main package pkg of the module at dir into a temporary file.
func buildServerBinary(tb testing.TB, dir, pkg string) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "shop-server")
	if out, err := runIn(dir, "go", "build", "-o", bin, pkg); err != nil {
		tb.Fatalf("go build in %s: %v\n%s", dir, err, out)
	}
	return bin
}

func runIn(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func benchEnvDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	if _, err := strconv.Atoi(s); err == nil {
		s += "s" // whole seconds
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		tb.Fatalf("%s: want a duration of 1s or more, got %q", name, s)
	}
	return d
}

func benchEnvInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("%s: want a whole number ≥ 1, got %q", name, s)
	}
	return n
}

// benchEnvList returns the comma-separated values of the variable name, def when unset.
func benchEnvList(name, def string) []string {
	return strings.Split(cmp.Or(os.Getenv(name), def), ",")
}

// benchEnvInts is benchEnvList of whole numbers ≥ 1.
func benchEnvInts(tb testing.TB, name, def string) []int {
	tb.Helper()
	var ns []int
	for _, s := range benchEnvList(name, def) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			tb.Fatalf("%s: want whole numbers ≥ 1, got %q", name, s)
		}
		ns = append(ns, n)
	}
	return ns
}
