package tests

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/shop/api/store/storetest"
)

// lockedBuffer is a log destination written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestMalformedBodyIsNeitherLoggedNorEchoed: a logIn whose JSON is cut short, over POST and
// over SSE, is HTTP 400 with an error that does not quote the body, and the password reaches
// neither the service's log nor the standard logger (gqlgen's SSE transport printed it there).
// Not parallel: it captures the standard logger.
func TestMalformedBodyIsNeitherLoggedNorEchoed(t *testing.T) {
	const password = "hunter2-never-in-a-log"
	var std, service lockedBuffer
	log.SetOutput(&std)
	defer log.SetOutput(io.Discard)
	cfg := config{SQLitePath: storetest.SQLitePath(t), JWTSecret: []byte("test-secret-of-at-least-32-bytes!!"), PasswordCost: 4}
	svc, err := startService(context.Background(), cfg, slog.New(slog.NewTextHandler(&service, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	defer func() { srv.Close(); svc.Close() }()

	bodies := map[string]string{
		"cut short":  `{"query":"mutation { logIn(input: {email: \"a@example.com\", password: \"` + password + `\"}) { token } }",`,
		"wrong type": `{"query":"mutation { logIn(input: {email: \"a@example.com\", password: \"` + password + `\"}) { token } }","variables":"` + password + `"}`,
	}
	for name, body := range bodies {
		for _, accept := range []string{"application/json", "text/event-stream"} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", accept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(got), "could not be decoded") {
				t.Errorf("%s, %s: status %d, body %s; want 400 saying it could not be decoded", name, accept, resp.StatusCode, got)
			}
			if strings.Contains(string(got), password) {
				t.Errorf("%s, %s: the response quotes the password: %s", name, accept, got)
			}
		}
	}
	for name, logged := range map[string]string{"standard logger": std.String(), "service log": service.String()} {
		if strings.Contains(logged, password) {
			t.Errorf("the %s has the password: %s", name, logged)
		}
	}
}
