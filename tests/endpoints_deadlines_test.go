package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink that many request goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLogged starts the service of cfg behind a real HTTP server, its log kept in logs.
func startLogged(t *testing.T, cfg config, logs *syncBuffer) *testEnv {
	t.Helper()
	cfg.JWTSecret, cfg.PasswordCost = []byte("test-secret-of-at-least-32-bytes!!"), 4
	svc, err := startService(t.Context(), cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{t: t, svc: svc}
	env.srv = httptestServer(t, svc)
	return env
}

// requireNoPanic fails when the log shows a recovered panic.
func requireNoPanic(t *testing.T, logs *syncBuffer) {
	t.Helper()
	if out := logs.String(); strings.Contains(out, "panic") {
		i := strings.Index(out, "panic")
		t.Fatalf("a request panicked:\n%s", out[max(0, i-500):min(len(out), i+3000)])
	}
}

// A request whose deadline passed before its operation ran gets a masked internal error,
// over GET and POST alike: never a panic, nor a body of null (gqlgen's executor answers nil
// for it, its end of a stream).
func TestRequestPastItsDeadlineGetsAnError(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var logs syncBuffer
			cfg := b.config(t)
			cfg.RequestTimeout = time.Nanosecond
			env := startLogged(t, cfg, &logs)
			const query = `{ products(first: 2) { nodes { id } } }`
			post, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/graphql", strings.NewReader(`{"query":"`+query+`"}`))
			post.Header.Set("Content-Type", "application/json")
			get, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/graphql?query="+url.QueryEscape(query), nil)
			for _, req := range []*http.Request{post, get} {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var out gqlResponse
				if err := json.Unmarshal(raw, &out); err != nil || len(out.Errors) != 1 {
					t.Fatalf("%s: status %d, body %s: want one error", req.Method, resp.StatusCode, raw)
				}
				if out.Code() != "INTERNAL_SERVER_ERROR" || out.Errors[0].Extensions["requestId"] == nil ||
					strings.Contains(out.Errors[0].Message, "deadline") {
					t.Errorf("%s: %s: want a masked internal error with its request id", req.Method, raw)
				}
			}
			requireNoPanic(t, &logs)
		})
	}
}

// Nested reads cut off at random points, as a phone that loses its signal cuts them, end
// without a panic, whatever level of their batches was in flight.
func TestCanceledRequestsEndCleanly(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var logs syncBuffer
			env := startLogged(t, b.config(t), &logs)
			merchant := env.signUp("MERCHANT")
			var products []string
			for i := range 6 {
				products = append(products, env.createProduct(merchant, "p"+string(rune('a'+i)), 100+i, 1000))
			}
			customer := env.signUp("CUSTOMER")
			for i := range 12 {
				env.placeOrder(customer, line{products[i%6], 1}, line{products[(i+1)%6], 2}, line{products[(i+3)%6], 1})
			}
			body, _ := json.Marshal(map[string]any{"query": `{ me { orders(first: 20) { nodes { id status total { amount }
				items { quantity unitPrice { amount } product { name merchant { name } } } history { status at } } } } }`})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(w), 1))
					for range 150 {
						ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(4000))*time.Microsecond)
						req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.srv.URL+"/graphql", bytes.NewReader(body))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Authorization", "Bearer "+customer.Token)
						if resp, err := http.DefaultClient.Do(req); err == nil {
							_ = resp.Body.Close()
						}
						cancel()
					}
				})
			}
			wg.Wait()
			// The server notices a client gone only on its next read or write.
			time.Sleep(200 * time.Millisecond)
			requireNoPanic(t, &logs)
		})
	}
}

// A query sent as a stream of server-sent events gets the request deadline like any other:
// the stream's exemption belongs to subscriptions, not to whoever sends the Accept header.
func TestQueryOverSSEHasTheRequestDeadline(t *testing.T) {
	var logs syncBuffer
	cfg := backends[0].config(t)
	cfg.RequestTimeout = time.Nanosecond
	env := startLogged(t, cfg, &logs)
	req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/graphql", strings.NewReader(`{"query":"{ products(first: 2) { nodes { id } } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), "INTERNAL_SERVER_ERROR") || strings.Contains(string(raw), `"nodes"`) {
		t.Errorf("a query over SSE past its deadline answered %s; want its masked error and no data", raw)
	}
	requireNoPanic(t, &logs)
}

// A body sent slower than the request's deadline is cut off there: its goroutine and buffer
// are not held for as long as the sender likes.
func TestSlowBodyIsCutOffAtTheDeadline(t *testing.T) {
	cfg := backends[0].config(t)
	cfg.RequestTimeout = 300 * time.Millisecond
	env := newTestEnv(t, cfg)
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"query\":")
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, _ := io.ReadAll(conn) // the server answers and closes, or closes
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("the server waited %v for the rest of the body (reply %q); want it cut off near 300ms", waited, reply)
	}
}
