package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/store/storetest"
)

// Subscriptions over server-sent events, on both backends or on the embedded one; the
// WebSocket protocol's own tests are in live/socket.

func newLiveEnv(t *testing.T, change func(*config)) *testEnv {
	t.Helper()
	cfg := config{SQLitePath: storetest.SQLitePath(t)}
	liveConfig(&cfg)
	if change != nil {
		change(&cfg)
	}
	return newTestEnv(t, cfg)
}

func TestSubscriptionOverServerSentEvents(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		events := openSSE(t, env.srv.URL, s.customer.Token, subOrder, map[string]any{"id": s.order})
		env.waitSubscribers(1)
		env.moveOrderTo(s.merchant, s.order, "PAID")
		if e := nextSSEEvent(t, events); e.Status != "PAID" {
			t.Fatalf("SSE event %+v, want PAID", e)
		}
	})
}

// openSSE posts query with vars as token's subscription over server-sent events to the
// server at base, fails unless the stream opens (200, text/event-stream), and returns the
// data of its events as they arrive; the stream is closed when the test ends.
func openSSE(t *testing.T, base, token, query string, vars map[string]any) <-chan string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("SSE: HTTP %d, content type %q", resp.StatusCode, ct)
	}
	events := make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- data
			}
		}
	}()
	return events
}

// nextSSEEvent returns the next orderStatusChanged event of an openSSE stream, failing after
// 10 s without one.
func nextSSEEvent(t *testing.T, events <-chan string) liveEvent {
	t.Helper()
	select {
	case data := <-events:
		var p struct {
			Data struct{ OrderStatusChanged liveEvent }
		}
		if err := json.Unmarshal([]byte(data), &p); err != nil {
			t.Fatalf("SSE event %s: %v", data, err)
		}
		return p.Data.OrderStatusChanged
	case <-time.After(10 * time.Second):
		t.Fatal("no SSE event within 10 s")
	}
	return liveEvent{}
}

// A stream of server-sent events ends when the token it was opened with expires.
func TestSSEStreamEndsWhenItsTokenExpires(t *testing.T) {
	t.Parallel()
	env := newLiveEnv(t, func(c *config) { c.TokenTTL = 2 * time.Second })
	events := openSSE(t, env.srv.URL, env.signUp("CUSTOMER").Token, subMine, nil)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, open := <-events:
			if !open {
				return
			}
		case <-deadline:
			t.Fatal("the stream is still open 5s after its 2s token was issued")
		}
	}
}
