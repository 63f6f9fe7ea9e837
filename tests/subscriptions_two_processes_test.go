package tests

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shop/api/store/storetest"
)

// Two real server processes (the built binary) sharing PostgreSQL and Redis.

// shopProcess is the shop's server binary running on its own port.
type shopProcess struct {
	cmd  *exec.Cmd
	url  string
	port int
	log  *bytes.Buffer
}

func buildShopServer(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shop-server")
	build := exec.Command("go", "build", "-o", bin, "github.com/shop/api")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startShopProcess(t testing.TB, bin string, env ...string) *shopProcess {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return startShopProcessOn(t, bin, port, env...)
}

// startShopProcessOn starts the server on port, as a restart behind a load balancer that
// names it by port does.
func startShopProcessOn(t testing.TB, bin string, port int, env ...string) *shopProcess {
	t.Helper()
	p := &shopProcess{url: "http://127.0.0.1:" + strconv.Itoa(port), port: port, log: &bytes.Buffer{}}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(os.Environ(), append(env, "PORT="+strconv.Itoa(port))...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil { // not waited for yet
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", p.log)
		}
	})
	eventually(t, 20*time.Second, func() bool { return answers(p.url+"/healthz", http.StatusOK) }, "server on %s", p.url)
	return p
}

// client returns a test environment that talks to the process over HTTP only.
func (p *shopProcess) client(t *testing.T) *testEnv {
	return &testEnv{t: t, srv: &httptest.Server{URL: p.url}}
}

func TestTwoServerProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the server binary")
	}
	redisURL := storetest.RedisURL(t)
	env := []string{
		"DATABASE_URL=" + storetest.PostgresURL(t), "REDIS_URL=" + redisURL,
		"REDIS_PREFIX=" + storetest.RedisPrefix(t, redisURL), "JWT_SECRET=test-secret-of-at-least-32-bytes!!",
		"ADMIN_EMAIL=live-admin@shop.example", "ADMIN_PASSWORD=live-admin-password",
	}
	bin := buildShopServer(t)
	procA := startShopProcess(t, bin, env...)
	procB := startShopProcess(t, bin, env...)
	a, b := procA.client(t), procB.client(t)

	s := b.newLiveShop()
	created := b.eventIDs(s.customer, s.order)[0]
	c := a.connectSocket(s.customer.Token)
	// With the creation event as cursor the subscription misses nothing, whenever it starts.
	c.Subscribe("1", subOrder, map[string]any{"id": s.order, "after": created})
	for _, st := range []string{"PAID", "SHIPPED", "DELIVERED"} {
		b.moveOrderTo(s.merchant, s.order, st)
	}
	var got []string
	for range 3 {
		got = append(got, c.event("1").Status)
	}
	if want := "PAID SHIPPED DELIVERED"; joinWords(got) != want {
		t.Fatalf("events = %v, want %s", got, want)
	}
	c.Quiet(500 * time.Millisecond)

	// SIGTERM: the subscription's socket closes with 1001, so the client moves to B.
	if err := procA.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.Closed(10 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := procA.cmd.Wait(); err != nil {
		t.Fatalf("server A exited with %v", err)
	}
	c = b.connectSocket(s.customer.Token)
	c.Subscribe("1", subOrder, map[string]any{"id": s.order, "after": created})
	for _, want := range []string{"PAID", "SHIPPED", "DELIVERED"} {
		if e := c.event("1"); e.Status != want {
			t.Fatalf("resumed on B: %+v, want %s", e, want)
		}
	}
}

// answers reports whether a GET of url answers with status.
func answers(url string, status int) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == status
}
