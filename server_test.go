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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	getenv := env("PORT", port, "SQLITE_PATH", filepath.Join(t.TempDir(), "shop.db"), "SEED_DEMO", "false")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenv, io.Discard) }()

	addr := "127.0.0.1:" + port
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

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

	deadline = time.Now().Add(10 * time.Second)
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
