package guard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shop/api/api/guard"
)

// Protect reads a POST's body whole, and hands it to the transport (Body) only while
// nothing has read it: a handler that read some of it reads the rest, never the whole again.
func TestProtectHandsTheBodyOnce(t *testing.T) {
	t.Parallel()
	const sent = `{"query":"{ products(first: 1) { nodes { id } } }"}`
	for _, readFirst := range []int{0, 1} {
		var whole []byte
		var ok bool
		var rest string
		h := guard.NewHTTP(guard.HTTPConfig{}).Protect(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadFull(r.Body, make([]byte, readFirst))
			whole, ok = guard.Body(r)
			b, _ := io.ReadAll(r.Body)
			rest = string(b)
		}))
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(sent))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(httptest.NewRecorder(), req)
		if want := readFirst == 0; ok != want || ok && string(whole) != sent {
			t.Errorf("read %d first: Body = %q, %v; want the body: %v", readFirst, whole, ok, want)
		}
		if rest != sent[readFirst:] {
			t.Errorf("read %d first: the rest is %q", readFirst, rest)
		}
	}
}
