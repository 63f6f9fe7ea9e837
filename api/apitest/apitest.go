// Package apitest runs the service for the tests of the packages it is made of (api/guard,
// api/observe, ...): built by api.New, the wiring server.go runs, on a fresh embedded store,
// behind an httptest server. The system tests, on both backends and several processes, are
// in tests/.
package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shop/api/api"
	"github.com/shop/api/store/storetest"
)

// Secret is the token key Start gives the service.
const Secret = "test-secret-of-at-least-32-bytes!!"

// Server is a running service and the URL of its HTTP server.
type Server struct {
	*api.Service
	URL string
}

// Start runs the service with cfg on a fresh embedded store until the test ends; a nil log
// discards. The playground and introspection are on, as in development, and sign-ups use
// bcrypt's lowest cost.
func Start(tb testing.TB, cfg api.Config, log *slog.Logger) *Server {
	tb.Helper()
	cfg.SQLitePath = storetest.SQLitePath(tb)
	cfg.JWTSecret, cfg.PasswordCost = []byte(Secret), 4
	cfg.Playground, cfg.Introspection = true, true
	svc, err := api.New(tb.Context(), cfg, log)
	if err != nil {
		tb.Fatalf("start service: %v", err)
	}
	srv := httptest.NewServer(svc.Handler())
	tb.Cleanup(func() { srv.Close(); svc.Close() })
	return &Server{Service: svc, URL: srv.URL}
}

// Response is a GraphQL response; Data stays raw.
type Response struct {
	Status     int
	Data       json.RawMessage `json:"data"`
	Errors     []Error         `json:"errors"`
	Extensions map[string]any  `json:"extensions"`
}

// Error is one of a response's errors.
type Error struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// Code returns the extensions.code of the response's first error, "" when there is none.
func (r Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Post sends query with POST, as the holder of token unless it is empty, and returns the
// decoded response, failing the test when it is not JSON.
func (s *Server) Post(tb testing.TB, token, query string) Response {
	tb.Helper()
	return s.PostVars(tb, token, query, nil)
}

// PostVars is Post with variables.
func (s *Server) PostVars(tb testing.TB, token, query string, vars map[string]any) Response {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := Response{Status: resp.StatusCode}
	if err := json.Unmarshal(raw, &out); err != nil {
		tb.Fatalf("status %d, body not JSON: %s", resp.StatusCode, raw)
	}
	return out
}

// Must is PostVars that fails the test on any error and decodes the data into v (unless nil).
func (s *Server) Must(tb testing.TB, token, query string, vars map[string]any, v any) {
	tb.Helper()
	r := s.PostVars(tb, token, query, vars)
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		tb.Fatalf("status %d, errors %+v", r.Status, r.Errors)
	}
	if v != nil {
		if err := json.Unmarshal(r.Data, v); err != nil {
			tb.Fatalf("data %s: %v", r.Data, err)
		}
	}
}
