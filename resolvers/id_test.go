package resolvers

import (
	"encoding/base64"
	"testing"
)

// kinds are the kinds of global IDs the schema hands out.
var kinds = []string{kindUser, kindProduct, kindOrder, kindEvent}

// TestGlobalIDRoundTrip checks that every kind's IDs parse back to what made them and that
// localID refuses an ID of another kind (so it matches nothing).
func TestGlobalIDRoundTrip(t *testing.T) {
	for _, kind := range kinds {
		for _, id := range []int64{1, 42, 1 << 31, 1<<63 - 1} {
			gid := globalID(kind, id)
			k, n, ok := parseGlobalID(gid)
			if !ok || k != kind || n != id {
				t.Fatalf("parseGlobalID(globalID(%s, %d)) = %q, %d, %v", kind, id, k, n, ok)
			}
			if got := localID(kind, gid); got != id {
				t.Fatalf("localID(%s, %s) = %d, want %d", kind, gid, got, id)
			}
			for _, other := range kinds {
				if other != kind && localID(other, gid) != 0 {
					t.Fatalf("localID(%s) accepted a %s ID", other, kind)
				}
			}
		}
	}
}

// TestParseGlobalIDRefuses lists IDs that must not parse: they would otherwise alias a real
// object under a second ID, or name ID 0 or a negative one.
func TestParseGlobalIDRefuses(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	refused := map[string]string{
		"empty":            "",
		"not base64":       "%%%",
		"no colon":         enc("Product1"),
		"no number":        enc("Product:"),
		"zero":             enc("Product:0"),
		"negative":         enc("Product:-1"),
		"leading zero":     enc("Product:01"),
		"plus sign":        enc("Product:+1"),
		"spaces":           enc("Product: 1"),
		"overflow":         enc("Product:9223372036854775808"),
		"padded base64":    base64.URLEncoding.EncodeToString([]byte("Product:12")),
		"standard base64":  base64.StdEncoding.EncodeToString([]byte("Order:1023")),
		"trailing newline": enc("Product:12") + "\n",
		"inner newline":    enc("Product:12")[:4] + "\r\n" + enc("Product:12")[4:],
	}
	if alias := aliasOf(enc("Product:12")); alias != "" {
		refused["other trailing bits"] = alias
	}
	for name, gid := range refused {
		if k, n, ok := parseGlobalID(gid); ok {
			t.Errorf("%s: parseGlobalID(%q) = %q, %d, ok", name, gid, k, n)
		}
	}
}

// aliasOf returns another base64 spelling of the same bytes as s (differing only in unused
// trailing bits), or "" when s has none.
func aliasOf(s string) string {
	if len(s)%4 == 0 {
		return ""
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := s[len(s)-1]
	for i := 0; i < len(alphabet); i++ {
		c := alphabet[i]
		if c == last {
			continue
		}
		alias := s[:len(s)-1] + string(c)
		if b, err := base64.RawURLEncoding.DecodeString(alias); err == nil {
			if orig, _ := base64.RawURLEncoding.DecodeString(s); string(b) == string(orig) {
				return alias
			}
		}
	}
	return ""
}

// FuzzGlobalID checks that parseGlobalID never panics, and that whatever it accepts is the
// one canonical ID of that object: encoding the result again gives the same string, so no
// object is reachable under two IDs and IDs stay globally unique.
func FuzzGlobalID(f *testing.F) {
	for _, kind := range kinds {
		f.Add(globalID(kind, 1))
		f.Add(globalID(kind, 1<<63-1))
	}
	f.Add("")
	f.Add("UHJvZHVjdDow")   // Product:0
	f.Add("UHJvZHVjdDotMQ") // Product:-1
	f.Add("UHJvZHVjdDowMQ") // Product:01
	f.Add("UHJvZHVjdDo1\n") // Product:5 and a newline
	f.Add("UHJvZHVjdDo1=")  // padding
	f.Add("T3JkZXI6OjE")    // Order::1
	f.Add(":::")
	f.Fuzz(func(t *testing.T, gid string) {
		kind, id, ok := parseGlobalID(gid)
		if !ok {
			if kind != "" || id != 0 {
				t.Fatalf("refused %q but returned %q, %d", gid, kind, id)
			}
			for _, k := range kinds {
				if localID(k, gid) != 0 {
					t.Fatalf("localID(%s, %q) accepted a refused ID", k, gid)
				}
			}
			return
		}
		if id <= 0 {
			t.Fatalf("parseGlobalID(%q) = %d", gid, id)
		}
		if again := globalID(kind, id); again != gid {
			t.Fatalf("parseGlobalID(%q) = %q, %d, whose ID is %q: one object, two IDs", gid, kind, id, again)
		}
		if localID(kind, gid) != id {
			t.Fatalf("localID(%q, %q) != %d", kind, gid, id)
		}
	})
}

// FuzzGlobalIDRoundTrip checks that every positive ID of every kind survives the round trip.
func FuzzGlobalIDRoundTrip(f *testing.F) {
	f.Add(uint8(0), int64(1))
	f.Add(uint8(3), int64(1<<63-1))
	f.Fuzz(func(t *testing.T, k uint8, id int64) {
		if id <= 0 {
			return
		}
		kind := kinds[int(k)%len(kinds)]
		gotKind, gotID, ok := parseGlobalID(globalID(kind, id))
		if !ok || gotKind != kind || gotID != id {
			t.Fatalf("round trip of %s %d gave %q, %d, %v", kind, id, gotKind, gotID, ok)
		}
	})
}
