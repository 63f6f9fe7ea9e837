// Package auth issues and verifies the shop's bearer tokens and carries the caller's
// identity through a request's context.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shop/api/store"
)

// ErrInvalidToken is returned for a malformed, forged or expired token.
var ErrInvalidToken = errors.New("invalid or expired token")

// Tokens signs and verifies HS256 tokens with one secret.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// NewTokens returns a signer whose tokens expire after ttl.
func NewTokens(secret []byte, ttl time.Duration) *Tokens {
	return &Tokens{secret: secret, ttl: ttl, now: time.Now}
}

type claims struct {
	Role store.Role `json:"role"`
	jwt.RegisteredClaims
}

// Issue returns a token for user.
func (t *Tokens) Issue(user store.User) (string, error) {
	now := t.now()
	c := claims{Role: user.Role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   strconv.FormatInt(user.ID, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return s, nil
}

// Verify returns the viewer a token speaks for, or ErrInvalidToken.
func (t *Tokens) Verify(token string) (store.Viewer, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return store.Viewer{}, ErrInvalidToken
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || id <= 0 {
		return store.Viewer{}, ErrInvalidToken
	}
	switch c.Role {
	case store.RoleCustomer, store.RoleMerchant, store.RoleAdmin:
	default:
		return store.Viewer{}, ErrInvalidToken
	}
	return store.Viewer{UserID: id, Role: c.Role}, nil
}

// FromHeader returns the viewer of an `Authorization: Bearer <token>` value: the anonymous
// viewer when it is empty, ErrInvalidToken when it is not a valid bearer token.
func (t *Tokens) FromHeader(header string) (store.Viewer, error) {
	if header == "" {
		return store.Viewer{}, nil
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return store.Viewer{}, ErrInvalidToken
	}
	return t.Verify(strings.TrimSpace(token))
}

type viewerKey struct{}

// session is the viewer of one request; signing in during the request replaces it.
type session struct{ viewer atomic.Pointer[store.Viewer] }

// WithViewer returns ctx carrying v.
func WithViewer(ctx context.Context, v store.Viewer) context.Context {
	s := &session{}
	s.viewer.Store(&v)
	return context.WithValue(ctx, viewerKey{}, s)
}

// ViewerFrom returns the viewer in ctx, anonymous when there is none.
func ViewerFrom(ctx context.Context) store.Viewer {
	if s, ok := ctx.Value(viewerKey{}).(*session); ok {
		return *s.viewer.Load()
	}
	return store.Viewer{}
}

// SignedIn makes v the viewer for the rest of the request whose context is ctx, so that a
// sign-up or log-in payload shows the new user what only they may see. Mutations run one
// after another, so no field of the request reads the viewer while it changes.
func SignedIn(ctx context.Context, v store.Viewer) {
	if s, ok := ctx.Value(viewerKey{}).(*session); ok {
		s.viewer.Store(&v)
	}
}

// Middleware puts the caller's viewer in each request's context. A request with an invalid
// token is refused with 401 and a GraphQL UNAUTHENTICATED error before anything runs, except
// a WebSocket upgrade: the socket protocol reports it itself (close code 4403), so the
// request goes on with the token error in its context.
func (t *Tokens) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := t.FromHeader(r.Header.Get("Authorization"))
		if err != nil {
			if isWebSocketUpgrade(r) {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenErrKey{}, err)))
				return
			}
			w.Header().Set("Content-Type", "application/graphql-response+json")
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"message":"invalid or expired token","extensions":{"code":"UNAUTHENTICATED"}}]}`))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithViewer(r.Context(), v)))
	})
}

type tokenErrKey struct{}

// TokenError returns the error of an invalid token sent with a WebSocket upgrade, or nil.
func TokenError(ctx context.Context) error {
	err, _ := ctx.Value(tokenErrKey{}).(error)
	return err
}

func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}
