package observe

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// A caller's sane X-Request-Id is kept, in the response and the request's context; any
// other gets a fresh one, distinct from request to request.
func TestRequestIDs(t *testing.T) {
	fresh := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for _, tc := range []struct {
		sent string
		kept bool
	}{
		{"abc-DEF_0.9", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"a b", false}, {"a\nb", false}, {"é", false}, {"a/b", false},
	} {
		var inCtx string
		h := WithRequestID(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { inCtx = RequestID(r.Context()) }))
		req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		req.Header.Set("X-Request-Id", tc.sent)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if got != inCtx {
			t.Errorf("%q: header %q, context %q", tc.sent, got, inCtx)
		}
		switch {
		case tc.kept && got != tc.sent:
			t.Errorf("%q: replaced by %q", tc.sent, got)
		case !tc.kept && (!fresh.MatchString(got) || seen[got]):
			t.Errorf("%q: got %q, want a fresh id", tc.sent, got)
		}
		seen[got] = true
	}
}
