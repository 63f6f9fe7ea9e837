package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shop/api/auth"
	"github.com/shop/api/store"
)

var secret = []byte("test-secret-of-32-bytes-or-more!")

// mustIssue returns a token for user from tokens.
func mustIssue(tb testing.TB, tokens *auth.Tokens, user store.User) string {
	tb.Helper()
	tok, err := tokens.Issue(user)
	if err != nil {
		tb.Fatalf("issue: %v", err)
	}
	return tok
}

// signed returns an HS256 token of claims under key, as a forger would make one.
func signed(tb testing.TB, key []byte, claims jwt.MapClaims) string {
	tb.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestIssuedTokensVerify(t *testing.T) {
	t.Parallel()
	tokens := auth.NewTokens(secret, time.Hour)
	for _, u := range []store.User{{ID: 1, Role: store.RoleCustomer}, {ID: 42, Role: store.RoleMerchant}, {ID: 7, Role: store.RoleAdmin}} {
		v, err := tokens.Verify(mustIssue(t, tokens, u))
		if err != nil || v != (store.Viewer{UserID: u.ID, Role: u.Role}) {
			t.Errorf("user %d %s: viewer %+v, %v", u.ID, u.Role, v, err)
		}
	}
}

func TestBadTokensAreRefused(t *testing.T) {
	t.Parallel()
	tokens := auth.NewTokens(secret, time.Hour)
	good := mustIssue(t, tokens, store.User{ID: 1, Role: store.RoleCustomer})
	later := time.Now().Add(time.Hour).Unix()
	type tokenCase struct {
		name  string
		token string
	}
	for _, c := range []tokenCase{
		{"empty", ""},
		{"not a JWT", "abc.def"},
		{"expired", mustIssue(t, auth.NewTokens(secret, -time.Minute), store.User{ID: 1, Role: store.RoleCustomer})},
		{"another secret", mustIssue(t, auth.NewTokens([]byte("another-secret-of-32-bytes-long!"), time.Hour), store.User{ID: 1, Role: store.RoleCustomer})},
		{"tampered payload", tamper(good)},
		{"no expiry", signed(t, secret, jwt.MapClaims{"sub": "1", "role": "CUSTOMER"})},
		{"unknown role", signed(t, secret, jwt.MapClaims{"sub": "1", "role": "ROOT", "exp": later})},
		{"subject not a number", signed(t, secret, jwt.MapClaims{"sub": "alice", "role": "ADMIN", "exp": later})},
		{"subject zero", signed(t, secret, jwt.MapClaims{"sub": "0", "role": "ADMIN", "exp": later})},
		{"alg none", noneToken(t)},
	} {
		if v, err := tokens.Verify(c.token); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s: viewer %+v, %v; want ErrInvalidToken", c.name, v, err)
		}
	}
}

// tamper makes the token's payload claim another user, keeping its signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	claims, _ := json.Marshal(map[string]any{"sub": "2", "role": "ADMIN", "exp": time.Now().Add(time.Hour).Unix()})
	parts[1] = base64.RawURLEncoding.EncodeToString(claims)
	return strings.Join(parts, ".")
}

func noneToken(tb testing.TB) string {
	tb.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "1", "role": "ADMIN", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestFromHeader(t *testing.T) {
	t.Parallel()
	tokens := auth.NewTokens(secret, time.Hour)
	tok := mustIssue(t, tokens, store.User{ID: 5, Role: store.RoleMerchant})
	merchant := store.Viewer{UserID: 5, Role: store.RoleMerchant}
	type headerCase struct {
		header string
		want   store.Viewer
		ok     bool
	}
	for _, c := range []headerCase{
		{"", store.Viewer{}, true},
		{"Bearer " + tok, merchant, true},
		{"bearer " + tok, merchant, true},
		{"  Bearer   " + tok + "  ", merchant, true},
		{"Bearer", store.Viewer{}, false},
		{"Bearer ", store.Viewer{}, false},
		{"Basic dXNlcjpwYXNz", store.Viewer{}, false},
		{tok, store.Viewer{}, false},
		{"Bearer " + tok + "x", store.Viewer{}, false},
	} {
		v, err := tokens.FromHeader(c.header)
		if (err == nil) != c.ok || v.Viewer != c.want {
			t.Errorf("%q: viewer %+v, %v; want %+v (ok %v)", c.header, v, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%q: %v, want ErrInvalidToken", c.header, err)
		}
	}
}

// SignedIn replaces the viewer for the rest of the request, wherever its context went.
func TestSignedIn(t *testing.T) {
	t.Parallel()
	ctx := auth.WithViewer(context.Background(), store.Viewer{})
	child, cancel := context.WithCancel(ctx) // a context derived from the request's
	defer cancel()
	auth.SignedIn(child, store.Viewer{UserID: 3, Role: store.RoleCustomer})
	if v := auth.ViewerFrom(ctx); v.UserID != 3 {
		t.Errorf("viewer after signing in: %+v", v)
	}
	if v := auth.ViewerFrom(context.Background()); !v.Anonymous() {
		t.Errorf("a context without a viewer: %+v", v)
	}
	auth.SignedIn(context.Background(), store.Viewer{UserID: 4}) // no session: nothing to change, no panic
}
