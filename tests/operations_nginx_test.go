package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/store/storetest"
)

// Real nginx, configured by deploy/nginx.conf, in front of real server processes.

// nginxProxy is nginx running deploy/nginx.conf in a prefix of its own.
type nginxProxy struct {
	url string
	cmd *exec.Cmd
	log *bytes.Buffer
}

// startNginx runs nginx with deploy/nginx.conf in front of procs: its upstream server line
// becomes one line per process (with the same parameters), it listens on a free port of
// 127.0.0.1, and its pid and temp files live in a directory of its own.
func startNginx(t *testing.T, procs ...*shopProcess) *nginxProxy {
	t.Helper()
	storetest.RequireCommand(t, "nginx")
	// Workers run as nobody: the prefix must be theirs to read and its temp dirs to write.
	prefix, err := os.MkdirTemp("", "shop-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(prefix) })
	if err := os.Chmod(prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"logs", "body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.Mkdir(filepath.Join(prefix, d), 0o777); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(filepath.Join(prefix, d), 0o777)
	}
	port := freePort(t)
	var upstreams []string
	for _, p := range procs {
		upstreams = append(upstreams, "127.0.0.1:"+strconv.Itoa(p.port))
	}
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, []byte(deriveNginxConf(t, port, prefix, upstreams)), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &nginxProxy{url: "http://127.0.0.1:" + strconv.Itoa(port), log: &bytes.Buffer{}}
	n.cmd = exec.Command("nginx", "-p", prefix, "-e", filepath.Join(prefix, "logs", "error.log"), "-c", conf,
		"-g", "daemon off; pid "+filepath.Join(prefix, "nginx.pid")+";")
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = n.cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("nginx log (tail):\n%s", tail(n.log.String(), 4000))
		}
	})
	// nginx answers /healthz itself (404: probes are not for the internet) once it listens.
	eventually(t, 10*time.Second, func() bool { return answers(n.url+"/healthz", http.StatusNotFound) },
		"nginx on %s:\n%s", n.url, n.log)
	return n
}

// deriveNginxConf returns deploy/nginx.conf with its upstream server line replaced by one
// per upstream, listening on port, with temp paths under prefix; nothing else changes.
func deriveNginxConf(t *testing.T, port int, prefix string, upstreams []string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(src)
	server := regexp.MustCompile(`(?m)^(\s*server\s+)[a-z][a-z0-9-]*:\d+([^;]*;)`)
	if n := len(server.FindAllString(conf, -1)); n != 1 {
		t.Fatalf("deploy/nginx.conf has %d upstream server lines, want the one this test replaces", n)
	}
	conf = server.ReplaceAllStringFunc(conf, func(line string) string {
		m := server.FindStringSubmatch(line)
		var lines []string
		for _, u := range upstreams {
			lines = append(lines, m[1]+u+m[2])
		}
		return strings.Join(lines, "\n")
	})
	listen := regexp.MustCompile(`(?m)^(\s*listen\s+)\d+;`)
	if n := len(listen.FindAllString(conf, -1)); n != 1 {
		t.Fatalf("deploy/nginx.conf has %d listen lines, want one", n)
	}
	conf = listen.ReplaceAllString(conf, "${1}127.0.0.1:"+strconv.Itoa(port)+";")
	var temp strings.Builder
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		dir := strings.TrimPrefix(d, "client_")
		fmt.Fprintf(&temp, "  %s_temp_path %s;\n", d, filepath.Join(prefix, dir))
	}
	if !strings.Contains(conf, "\nhttp {\n") {
		t.Fatal("deploy/nginx.conf has no http block")
	}
	return strings.Replace(conf, "\nhttp {\n", "\nhttp {\n"+temp.String(), 1)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// metricSum is the sum of every series of a metric a process exports on /metrics.
func metricSum(t testing.TB, baseURL, name string) float64 {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", baseURL, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// clientFrom is an HTTP client whose connections leave from localIP (127.0.0.0/8 is all
// local), as a distinct client of the proxy.
func clientFrom(localIP string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}}
}

// postGraphQL sends a query with c and decodes the response; err is a transport failure or
// a response that is not GraphQL JSON (nginx's own 502 page).
func postGraphQL(ctx context.Context, c *http.Client, url, token, query string, vars map[string]any, header ...string) (gqlResponse, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return gqlResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return gqlResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return gqlResponse{}, err
	}
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return gqlResponse{}, fmt.Errorf("HTTP %d, not GraphQL: %.200s", resp.StatusCode, raw)
	}
	out.Status = resp.StatusCode
	return out, nil
}

// nginxProcessEnv is the production configuration of processes behind the test's nginx,
// on the database dbURL and a Redis prefix of the test's: nginx (127.0.0.1) is their
// trusted proxy, and a few connections each leave the shared PostgreSQL server's 100 to
// the tests running beside them.
func nginxProcessEnv(t *testing.T, dbURL string, extra ...string) []string {
	t.Helper()
	redisURL := storetest.RedisURL(t)
	return append([]string{
		"APP_ENV=production", "DATABASE_URL=" + dbURL, "REDIS_URL=" + redisURL,
		"REDIS_PREFIX=" + storetest.RedisPrefix(t, redisURL), "JWT_SECRET=test-secret-of-at-least-32-bytes!!",
		"TRUSTED_PROXIES=127.0.0.1", "DB_MAX_CONNS=6",
	}, extra...)
}

// holder returns the index of the process among procs whose live subscriptions grew past
// before (one count per process), waiting until exactly one did.
func holder(t *testing.T, procs []*shopProcess, before []float64) int {
	t.Helper()
	who := -1
	eventually(t, 10*time.Second, func() bool {
		who = -1
		for i, p := range procs {
			if metricSum(t, p.url, "shop_live_subscribers") > before[i] {
				if who >= 0 {
					t.Fatalf("a subscription was registered on two processes")
				}
				who = i
			}
		}
		return who >= 0
	}, "a live subscription behind nginx")
	return who
}

func liveSubscribers(t *testing.T, procs []*shopProcess) []float64 {
	out := make([]float64, len(procs))
	for i, p := range procs {
		out[i] = metricSum(t, p.url, "shop_live_subscribers")
	}
	return out
}

// Three production processes behind nginx configured by deploy/nginx.conf: queries and
// mutations reach all three, WebSocket and SSE subscriptions through nginx receive events
// committed through another process, and each client address has its own anonymous budget.
func TestBehindNginx(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the server binary and runs nginx")
	}
	storetest.RequireCommand(t, "nginx")
	// 1 + 100 × (1 + 2 + 1 + 1 + 3 + 1 + 2) = 1,101 points: nine fit in 10,000.
	env := nginxProcessEnv(t, storetest.PostgresURL(t), "RATE_LIMIT_ANONYMOUS_POINTS_PER_MINUTE=10000")
	bin := buildShopServer(t)
	procs := []*shopProcess{startShopProcess(t, bin, env...), startShopProcess(t, bin, env...), startShopProcess(t, bin, env...)}
	nginx := startNginx(t, procs...)
	lb := &testEnv{t: t, srv: nginxURL(nginx)}

	t.Run("traffic", func(t *testing.T) {
		lb := &testEnv{t: t, srv: lb.srv}
		before := make([]float64, len(procs))
		for i, p := range procs {
			before[i] = metricSum(t, p.url, "shop_graphql_requests_total")
		}
		s := lb.newLiveShop() // sign-ups, a product and an order: mutations through nginx
		for range 30 {
			var out struct {
				Products struct{ TotalCount int }
			}
			lb.anon().must(`{ products(first: 5) { totalCount nodes { id name } } }`, nil, &out)
			if out.Products.TotalCount != 1 {
				t.Fatalf("totalCount %d, want the one product", out.Products.TotalCount)
			}
		}
		for i, p := range procs {
			// Each process counts only the operations that reached it.
			if got := metricSum(t, p.url, "shop_graphql_requests_total") - before[i]; got < 3 {
				t.Errorf("process %d served %v of 34 operations through nginx, want a share of them", i, got)
			}
		}

		// A WebSocket subscription through nginx, on whichever process nginx chose, gets a
		// change committed through another process.
		created := lb.eventIDs(s.customer, s.order)[0]
		subs := liveSubscribers(t, procs)
		ws := dialSocketURL(t, nginx.url, dialOpts{})
		ws.Init(map[string]any{"Authorization": "Bearer " + s.customer.Token})
		ws.Subscribe("1", subOrder, map[string]any{"id": s.order, "after": created})
		wsOn := holder(t, procs, subs)
		procs[(wsOn+1)%3].client(t).moveOrderTo(s.merchant, s.order, "PAID")
		if e := ws.event("1"); e.Status != "PAID" {
			t.Fatalf("WebSocket event %+v, want PAID", e)
		}

		// The same over server-sent events, which nginx must not buffer.
		subs = liveSubscribers(t, procs)
		events := openSSE(t, nginx.url, s.customer.Token, subOrder, map[string]any{"id": s.order})
		sseOn := holder(t, procs, subs)
		procs[(sseOn+1)%3].client(t).moveOrderTo(s.merchant, s.order, "SHIPPED")
		if e := nextSSEEvent(t, events); e.Status != "SHIPPED" {
			t.Fatalf("SSE event through nginx %+v, want SHIPPED", e)
		}
		if e := ws.event("1"); e.Status != "SHIPPED" {
			t.Fatalf("WebSocket event %+v, want SHIPPED", e)
		}
	})

	t.Run("client addresses", func(t *testing.T) {
		const query = `{ products(first: 100) { nodes { id name description stock price { amount currency } merchant { id name } } } }`
		ctx := context.Background()
		a, b := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")
		// 127.0.0.2 spends its budget (nine requests fit; a tenth is refused)...
		refused := 0
		for i := 0; i < 12 && refused == 0; i++ {
			r, err := postGraphQL(ctx, a, nginx.url, "", query, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Code() == guard.CodeRateLimited {
				refused = i + 1
			} else if len(r.Errors) > 0 {
				t.Fatalf("request %d: %v", i+1, r.Errors)
			}
		}
		if refused < 9 {
			t.Fatalf("127.0.0.2 refused at request %d, want its own 10,000 points (nine requests) first", refused)
		}
		// ...and claiming to be someone else does not give it a fresh budget: nginx appends
		// the real address, which is the right-most one the server does not trust.
		r, err := postGraphQL(ctx, a, nginx.url, "", query, nil, "X-Forwarded-For", "1.2.3.4")
		if err != nil {
			t.Fatal(err)
		}
		if r.Code() != guard.CodeRateLimited || r.Status != http.StatusTooManyRequests {
			t.Fatalf("127.0.0.2 spoofing X-Forwarded-For: 1.2.3.4: HTTP %d %v, want 429 RATE_LIMITED", r.Status, r.Errors)
		}
		// 127.0.0.3, behind the same nginx, has a budget of its own.
		r, err = postGraphQL(ctx, b, nginx.url, "", query, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Errors) > 0 {
			t.Fatalf("127.0.0.3 shares 127.0.0.2's budget: %v", r.Errors)
		}
		if left, _ := throttle(r)["currentlyAvailable"].(float64); left < 10_000-1101-500 {
			t.Errorf("127.0.0.3 has %v points left after its first request", left)
		}
	})
}

func nginxURL(n *nginxProxy) *httptest.Server { return &httptest.Server{URL: n.url} }
