package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestShutdownDrainsInFlightRequests stops the server while a request is half sent: the
// server refuses new connections at once, but still reads the rest of that request and
// answers it before run returns.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	port := freePort(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := startEmbedded(ctx, t, port)
	addr := "127.0.0.1:" + port

	if err := run(ctx, []string{"healthcheck"}, env("PORT", port), io.Discard); err != nil {
		t.Errorf("healthcheck of a running server: %v", err)
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"query":"{ products(first: 1) { totalCount } }"}`
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body[:10])
	// A request is in flight, and drained, once its headers are read: give the server a
	// moment to read them.
	time.Sleep(200 * time.Millisecond)
	stop()

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // no longer accepting
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepts connections after the shutdown signal")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatalf("finish the request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), "totalCount") {
		t.Errorf("in-flight request: %d %s", resp.StatusCode, out)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after draining")
	}
}

// TestPprofOnItsOwnListener: PPROF_ADDR serves net/http/pprof on a listener of its own,
// and the public port answers none of its paths.
func TestPprofOnItsOwnListener(t *testing.T) {
	port, pprofPort := freePort(t), freePort(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := startEmbedded(ctx, t, port, "PPROF_ADDR", "127.0.0.1:"+pprofPort)

	get := func(port, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://127.0.0.1:" + port + path)
		if err != nil {
			t.Fatalf("GET %s on %s: %v", path, port, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(pprofPort, "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof index on PPROF_ADDR: %d %.200s", code, body)
	}
	if code, body := get(pprofPort, "/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("heap profile on PPROF_ADDR: %d %.200s", code, body)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		if code, _ := get(port, path); code != http.StatusNotFound {
			t.Errorf("public port answers %s with %d, want 404", path, code)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+pprofPort, time.Second); err == nil {
		c.Close()
		t.Error("PPROF_ADDR still accepts connections after the server stopped")
	}
}

// With ADMIN_ADDR set, /metrics and /readyz answer there and not on the public port, which
// keeps /healthz (the image's healthcheck) and the API.
func TestAdminAddrServesMetricsAndReadiness(t *testing.T) {
	port, adminPort := freePort(t), freePort(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := startEmbedded(ctx, t, port, "ADMIN_ADDR", "127.0.0.1:"+adminPort)
	status := func(port, path string) int {
		t.Helper()
		resp, err := http.Get("http://127.0.0.1:" + port + path)
		if err != nil {
			t.Fatalf("GET %s on %s: %v", path, port, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for path, want := range map[string][2]int{
		"/metrics": {http.StatusNotFound, http.StatusOK},
		"/readyz":  {http.StatusNotFound, http.StatusOK},
		"/healthz": {http.StatusOK, http.StatusOK},
	} {
		if got := [2]int{status(port, path), status(adminPort, path)}; got != want {
			t.Errorf("%s: public %d, admin %d; want %d and %d", path, got[0], got[1], want[0], want[1])
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// freePort is a port nothing listens on a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// startEmbedded runs the server in embedded mode on port, with the extra settings kv, until
// ctx ends, and returns once /healthz answers; run's result arrives on the channel.
func startEmbedded(ctx context.Context, t *testing.T, port string, kv ...string) <-chan error {
	t.Helper()
	getenv := env(append([]string{"PORT", port, "SQLITE_PATH", filepath.Join(t.TempDir(), "shop.db"), "SEED_DEMO", "false"}, kv...)...)
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenv, io.Discard) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
		if err == nil {
			resp.Body.Close()
			return done
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The checked-in schema artifact, which front-end teams generate typed clients from, is
// what `schema` prints from graph/*.graphqls. Regenerate it with
// `go run . schema > graph/schema.graphql`.
func TestSchemaArtifactIsCurrent(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"schema"}, env(), &out); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("graph/schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Error("graph/schema.graphql is stale: run `go run . schema > graph/schema.graphql`")
	}
	if !strings.Contains(out.String(), "type Query {") || strings.Contains(out.String(), "level=") {
		t.Errorf("schema output is not just the SDL:\n%.300s", out.String())
	}
}

// healthcheck exits non-zero when nothing answers on PORT.
func TestHealthcheckFailsWithoutServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	if err := run(context.Background(), []string{"healthcheck"}, env("PORT", port), io.Discard); err == nil {
		t.Error("healthcheck passed with no server")
	}
}

// APP_ENV=production, read by run as the server reads it, turns GraphiQL and introspection
// off. (INTROSPECTION=true turning it back on is loadConfig's, in TestLoadConfigProduction.)
func TestProductionTurnsIntrospectionAndPlaygroundOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	port := freePort(t)
	done := startEmbedded(ctx, t, port, "APP_ENV", "production", "JWT_SECRET", strings.Repeat("k", 32))
	base := "http://127.0.0.1:" + port
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GraphiQL answered %d in production, want 404", resp.StatusCode)
	}
	resp, err = http.Post(base+"/graphql", "application/json", strings.NewReader(`{"query":"{ __schema { queryType { name } } }"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "GRAPHQL_VALIDATION_FAILED") || strings.Contains(string(body), `"Query"`) {
		t.Errorf("introspection in production answered %s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
