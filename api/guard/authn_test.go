package guard_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/auth"
	"github.com/shop/api/store"
)

// Authenticate refuses a bad token with 401 and a GraphQL error before the handler runs,
// except on a WebSocket upgrade, which carries the error on; it gives others their viewer.
func TestAuthenticate(t *testing.T) {
	t.Parallel()
	tokens := auth.NewTokens([]byte("test-secret-of-32-bytes-or-more!"), time.Hour)
	tok, err := tokens.Issue(store.User{ID: 9, Role: store.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		viewer   store.Viewer
		tokenErr error
	}
	var got *seen
	h := guard.Authenticate(tokens, auth.NewRevocations())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = &seen{auth.ViewerFrom(r.Context()), auth.TokenError(r.Context())}
	}))
	serve := func(header string, upgrade bool) *httptest.ResponseRecorder {
		got = nil
		req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		if upgrade {
			req.Header.Set("Upgrade", "websocket")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := serve("Bearer nonsense", false)
	if rec.Code != http.StatusUnauthorized || got != nil {
		t.Fatalf("bad token: status %d, handler ran: %v", rec.Code, got != nil)
	}
	if !strings.Contains(rec.Header().Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
	}
	var body struct {
		Errors []struct {
			Extensions struct{ Code string } `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Extensions.Code != "UNAUTHENTICATED" {
		t.Errorf("body %s (%v), want one UNAUTHENTICATED error", rec.Body, err)
	}

	if rec := serve("Bearer "+tok, false); rec.Code != http.StatusOK || got == nil || got.viewer != (store.Viewer{UserID: 9, Role: store.RoleCustomer}) {
		t.Errorf("good token: status %d, seen %+v", rec.Code, got)
	}
	if serve("", false); got == nil || !got.viewer.Anonymous() || got.tokenErr != nil {
		t.Errorf("no token: seen %+v, want the anonymous viewer", got)
	}
	if rec := serve("Bearer nonsense", true); rec.Code != http.StatusOK || got == nil || !errors.Is(got.tokenErr, auth.ErrInvalidToken) || !got.viewer.Anonymous() {
		t.Errorf("bad token on an upgrade: status %d, seen %+v; want the handler to get the token error", rec.Code, got)
	}
}
