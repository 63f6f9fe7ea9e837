package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/store/storetest"
)

// The reference graphql-ws client from npm, driven through tests/testdata/node/subscribe.mjs.

type nodeLine struct {
	Connected bool                       `json:"connected"`
	Event     map[string]json.RawMessage `json:"event"`
	Error     json.RawMessage            `json:"error"`
	Closed    int                        `json:"closed"`
	Complete  bool                       `json:"complete"`
	Timeout   bool                       `json:"timeout"`
}

// nodeSubscribe starts the graphql-ws client and returns the lines it prints.
func nodeSubscribe(t *testing.T, url, token string, count int, query string, vars map[string]any) <-chan nodeLine {
	t.Helper()
	storetest.RequireCommand(t, "node")
	dir, _ := filepath.Abs("testdata/node")
	_, err := os.Stat(filepath.Join(dir, "node_modules", "graphql-ws"))
	storetest.Require(t, err == nil, "tests/testdata/node/node_modules is missing: run npm ci --prefix tests/testdata/node")
	if token == "" {
		token = "-"
	}
	v, _ := json.Marshal(vars)
	return startNode[nodeLine](t, dir, 30*time.Second, "subscribe.mjs",
		strings.Replace(url, "http", "ws", 1)+"/graphql", token, strconv.Itoa(count), query, string(v))
}

type nodeLogWriter struct{ t *testing.T }

func (w *nodeLogWriter) Write(p []byte) (int, error) { w.t.Logf("node: %s", p); return len(p), nil }

// nextNodeLine returns the next line that is not "connected".
func nextNodeLine(t *testing.T, lines <-chan nodeLine) nodeLine {
	t.Helper()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the node client exited")
			}
			if l.Connected {
				continue
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("the node client printed nothing")
		}
	}
}

func TestGraphQLWSReferenceClient(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		s := env.newLiveShop()
		created := env.eventIDs(s.customer, s.order)[0]
		// From the creation event: the replay makes the test independent of when the client
		// gets its subscription in.
		lines := nodeSubscribe(t, env.srv.URL, s.customer.Token, 3, subOrder, map[string]any{"id": s.order, "after": created})
		for _, st := range []string{"PAID", "SHIPPED", "DELIVERED"} {
			env.moveOrderTo(s.merchant, s.order, st)
		}
		for _, want := range []string{"PAID", "SHIPPED", "DELIVERED"} {
			l := nextNodeLine(t, lines)
			var e liveEvent
			if l.Event == nil || json.Unmarshal(l.Event["orderStatusChanged"], &e) != nil || e.Status != want {
				t.Fatalf("want %s, got %+v", want, l)
			}
		}

		// A stranger gets NOT_FOUND; a forged token closes with 4403.
		stranger := env.signUp("CUSTOMER")
		l := nextNodeLine(t, nodeSubscribe(t, env.srv.URL, stranger.Token, 1, subOrder, map[string]any{"id": s.order}))
		if !strings.Contains(string(l.Error), `"NOT_FOUND"`) {
			t.Fatalf("stranger: %+v (%s)", l, l.Error)
		}
		l = nextNodeLine(t, nodeSubscribe(t, env.srv.URL, s.customer.Token+"x", 1, subMine, nil))
		if l.Closed != 4403 {
			t.Fatalf("forged token: %+v", l)
		}
	})
}
