package store

import (
	"encoding/base64"
	"testing"
	"time"
)

// orderings are every cursor ordering the store pages by.
var orderings = []string{orderCursor, "CREATED_AT:ASC", "CREATED_AT:DESC", "PRICE:ASC", "PRICE:DESC", "NAME:ASC", "NAME:DESC"}

// TestCheckPage checks the page size bounds and that a cursor is accepted only by the
// ordering that made it.
func TestCheckPage(t *testing.T) {
	price, name, at := 1500, "Mug", time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	type pageCase struct {
		name  string
		page  PageArgs
		order string
		ok    bool
	}
	for _, c := range []pageCase{
		{"first 0", PageArgs{First: 0}, orderCursor, true},
		{"first 100", PageArgs{First: MaxPageSize}, orderCursor, true},
		{"first 101", PageArgs{First: MaxPageSize + 1}, orderCursor, false},
		{"first -1", PageArgs{First: -1}, orderCursor, false},
		{"own cursor", PageArgs{First: 5, After: cursor{Order: orderCursor, ID: 7, At: &at}.encode()}, orderCursor, true},
		{"order cursor without its time", PageArgs{First: 5, After: cursor{Order: orderCursor, ID: 7}.encode()}, orderCursor, false},
		{"product cursor with a time", PageArgs{First: 5, After: cursor{Order: "CREATED_AT:DESC", ID: 7, At: &at}.encode()}, "CREATED_AT:DESC", false},
		{"price cursor", PageArgs{First: 5, After: cursor{Order: "PRICE:ASC", ID: 7, Int: &price}.encode()}, "PRICE:ASC", true},
		{"name cursor", PageArgs{First: 5, After: cursor{Order: "NAME:DESC", ID: 7, Str: &name}.encode()}, "NAME:DESC", true},
		{"another ordering's cursor", PageArgs{First: 5, After: cursor{Order: "PRICE:ASC", ID: 7, Int: &price}.encode()}, "PRICE:DESC", false},
		{"another list's cursor", PageArgs{First: 5, After: cursor{Order: orderCursor, ID: 7, At: &at}.encode()}, "CREATED_AT:DESC", false},
		{"id 0", PageArgs{First: 5, After: cursor{Order: orderCursor}.encode()}, orderCursor, false},
		{"not base64", PageArgs{First: 5, After: "%%%"}, orderCursor, false},
		{"not JSON", PageArgs{First: 5, After: base64.RawURLEncoding.EncodeToString([]byte("{"))}, orderCursor, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := checkPage(c.page, c.order)
			if c.ok != (err == nil) {
				t.Fatalf("checkPage(%+v, %s) = %v", c.page, c.order, err)
			}
			if err != nil && ErrorCode(err) != CodeInvalid {
				t.Fatalf("code %s, want INVALID", ErrorCode(err))
			}
		})
	}
}

// FuzzCheckPage feeds checkPage arbitrary page sizes and cursors: it must never panic, refuse
// only with INVALID errors, and accept only cursors of the ordering asked for with an ID > 0.
func FuzzCheckPage(f *testing.F) {
	price, name, at := 1500, "Mug", time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	f.Add(20, "", uint8(0))
	f.Add(101, "", uint8(1))
	f.Add(-1, "x", uint8(2))
	f.Add(5, cursor{Order: orderCursor, ID: 7, At: &at}.encode(), uint8(0))
	f.Add(5, cursor{Order: "PRICE:ASC", ID: 7, Int: &price}.encode(), uint8(3))
	f.Add(5, cursor{Order: "NAME:DESC", ID: 7, Str: &name}.encode(), uint8(6))
	f.Add(5, base64.RawURLEncoding.EncodeToString([]byte(`{"o":"PRICE:ASC","i":-3,"n":null}`)), uint8(3))
	f.Add(5, base64.RawURLEncoding.EncodeToString([]byte(`{"o":1,"i":"x"}`)), uint8(0))
	f.Add(5, base64.RawURLEncoding.EncodeToString([]byte(`null`)), uint8(0))
	f.Add(5, base64.RawURLEncoding.EncodeToString([]byte(`[]`)), uint8(0))
	f.Fuzz(func(t *testing.T, first int, after string, o uint8) {
		order := orderings[int(o)%len(orderings)]
		c, err := checkPage(PageArgs{First: first, After: after}, order)
		if err != nil {
			if ErrorCode(err) != CodeInvalid {
				t.Fatalf("checkPage(%d, %q) = %v with code %s, want INVALID", first, after, err, ErrorCode(err))
			}
			if c != nil {
				t.Fatal("a refused page returned a cursor")
			}
			return
		}
		if first < 0 || first > MaxPageSize {
			t.Fatalf("accepted first %d", first)
		}
		if after == "" {
			if c != nil {
				t.Fatal("a cursor without after")
			}
			return
		}
		if c == nil || c.Order != order || c.ID <= 0 {
			t.Fatalf("accepted cursor %+v for %s", c, order)
		}
	})
}
