package guard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shop/api/api/guard"
)

// The client's address is the right-most X-Forwarded-For entry that is not a trusted proxy,
// and only a trusted peer's header is read at all.
func TestClientAddressBehindTrustedProxies(t *testing.T) {
	t.Parallel()
	trusted, err := guard.ParseTrustedProxies("10.0.0.0/8, 192.168.1.7, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		trusted bool // TRUSTED_PROXIES as above, or none
		peer    string
		xff     []string // header lines
		want    string
	}{
		{"no proxies trusted: the peer, whatever it sends", false, "10.1.2.3:4000", []string{"203.0.113.9"}, "10.1.2.3"},
		{"untrusted peer: a spoofed header is ignored", true, "198.51.100.4:4000", []string{"1.2.3.4"}, "198.51.100.4"},
		{"trusted peer: the entry it appended", true, "10.1.2.3:4000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"trusted peer without a header: the peer", true, "10.1.2.3:4000", nil, "10.1.2.3"},
		{"what the client prepended is never believed", true, "10.1.2.3:4000", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"a chain of trusted proxies is walked past", true, "10.1.2.3:4000", []string{"1.2.3.4, 203.0.113.9, 192.168.1.7, 10.9.9.9"}, "203.0.113.9"},
		{"a bare address trusts that address only", true, "10.1.2.3:4000", []string{"1.2.3.4, 192.168.1.8, 192.168.1.7"}, "192.168.1.8"},
		{"several header lines are one list", true, "10.1.2.3:4000", []string{"1.2.3.4, 203.0.113.9", "10.9.9.9"}, "203.0.113.9"},
		{"all trusted: the left-most", true, "10.1.2.3:4000", []string{"10.4.4.4, 10.9.9.9"}, "10.4.4.4"},
		{"garbage stops the walk at the hop that reported it", true, "10.1.2.3:4000", []string{"1.2.3.4, not-an-ip, 10.9.9.9"}, "10.9.9.9"},
		{"garbage from the peer itself: the peer", true, "10.1.2.3:4000", []string{"unknown"}, "10.1.2.3"},
		{"entries with ports and spaces", true, "10.1.2.3:4000", []string{" 203.0.113.9:5555 ,10.9.9.9"}, "203.0.113.9"},
		{"IPv6 peer and client", true, "[fd00::1]:4000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 entry in brackets with a port", true, "[fd00::1]:4000", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"IPv4-mapped peer matches the IPv4 prefix", true, "[::ffff:10.1.2.3]:4000", []string{"203.0.113.9"}, "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := guard.HTTPConfig{}
			if tc.trusted {
				cfg.TrustedProxies = trusted
			}
			var got string
			h := guard.NewHTTP(cfg).Protect(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				got = guard.ClientIP(r.Context())
			}))
			req := httptest.NewRequest(http.MethodGet, "/graphql?query={me{id}}", nil)
			req.RemoteAddr = tc.peer
			for _, line := range tc.xff {
				req.Header.Add("X-Forwarded-For", line)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got != tc.want {
				t.Errorf("client %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	got, err := guard.ParseTrustedProxies(" 10.1.2.3/8,, 127.0.0.1 ,::1, fd00::/8 ")
	if err != nil {
		t.Fatal(err)
	}
	// Prefixes are masked; bare addresses are full-length prefixes.
	want := "[10.0.0.0/8 127.0.0.1/32 ::1/128 fd00::/8]"
	if s := fmt.Sprint(got); s != want {
		t.Errorf("parsed %s, want %s", s, want)
	}
	if got, err := guard.ParseTrustedProxies(""); err != nil || got != nil {
		t.Errorf("empty list: %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "10.0.0.0/", "nginx", "10.0.0.1, 10.0.0.256", "10.0.0.1:80"} {
		if _, err := guard.ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
