// Package auth issues and verifies the shop's bearer tokens and carries the caller's
// identity through a request's context.
package auth

import (
	"context"
	"errors"
	"fmt"
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

// NewTokens returns a signer whose tokens expire after ttl (0: 24 hours).
func NewTokens(secret []byte, ttl time.Duration) *Tokens {
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	return &Tokens{secret: secret, ttl: ttl, now: time.Now}
}

type claims struct {
	Role store.Role `json:"role"`
	// Version is the account's token version when it was issued (see Revocations).
	Version int64 `json:"ver,omitempty"`
	jwt.RegisteredClaims
}

// Issue returns a token for user.
func (t *Tokens) Issue(user store.User) (string, error) {
	now := t.now()
	c := claims{Role: user.Role, Version: user.TokenVersion, RegisteredClaims: jwt.RegisteredClaims{
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
	s, err := t.Parse(token)
	return s.Viewer, err
}

// Session is what a valid token says: who the caller is, and until when.
type Session struct {
	Viewer  store.Viewer
	Expires time.Time
	// Version is the account's token version when the token was issued.
	Version int64
}

// Parse returns the session of a token, or ErrInvalidToken.
func (t *Tokens) Parse(token string) (Session, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return Session{}, ErrInvalidToken
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || id <= 0 {
		return Session{}, ErrInvalidToken
	}
	switch c.Role {
	case store.RoleCustomer, store.RoleMerchant, store.RoleAdmin:
	default:
		return Session{}, ErrInvalidToken
	}
	return Session{Viewer: store.Viewer{UserID: id, Role: c.Role}, Expires: c.ExpiresAt.Time, Version: c.Version}, nil
}

// FromHeader returns the session of an `Authorization: Bearer <token>` value: anonymous
// when it is empty, ErrInvalidToken when it is not a valid bearer token.
func (t *Tokens) FromHeader(header string) (Session, error) {
	if header == "" {
		return Session{}, nil
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Session{}, ErrInvalidToken
	}
	return t.Parse(strings.TrimSpace(token))
}

type viewerKey struct{}

// session is the viewer of one request or socket, and when its token expires (zero:
// anonymous); signing in during the request replaces the viewer.
type session struct {
	viewer  atomic.Pointer[store.Viewer]
	expires time.Time
	version int64
}

// WithViewer returns ctx carrying v.
func WithViewer(ctx context.Context, v store.Viewer) context.Context {
	return WithSession(ctx, Session{Viewer: v})
}

// WithSession returns ctx carrying the session's viewer and expiry.
func WithSession(ctx context.Context, se Session) context.Context {
	s := &session{expires: se.Expires, version: se.Version}
	s.viewer.Store(&se.Viewer)
	return context.WithValue(ctx, viewerKey{}, s)
}

// ExpiresAt returns when the token ctx's viewer came with expires; zero for none.
func ExpiresAt(ctx context.Context) time.Time { return SessionFrom(ctx).Expires }

// SessionFrom returns the session in ctx: its viewer as it is now, and its token's expiry
// and version (zero when anonymous).
func SessionFrom(ctx context.Context) Session {
	if s, ok := ctx.Value(viewerKey{}).(*session); ok {
		return Session{Viewer: *s.viewer.Load(), Expires: s.expires, Version: s.version}
	}
	return Session{}
}

// Expired reports whether the token ctx's viewer came with has expired by now. A socket
// lives longer than its token: its operations ask this.
func Expired(ctx context.Context, now time.Time) bool {
	s, ok := ctx.Value(viewerKey{}).(*session)
	return ok && !s.expires.IsZero() && !now.Before(s.expires)
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

type tokenErrKey struct{}

// WithTokenError returns ctx carrying err, the error of an invalid token sent with a
// WebSocket upgrade: the socket protocol reports it (close code 4403), not the HTTP layer.
func WithTokenError(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, tokenErrKey{}, err)
}

// Carry returns dst carrying the viewer (a copy: signing in later changes only one of
// them) and the token error of src.
func Carry(dst, src context.Context) context.Context {
	if s, ok := src.Value(viewerKey{}).(*session); ok {
		dst = WithSession(dst, Session{Viewer: *s.viewer.Load(), Expires: s.expires, Version: s.version})
	}
	if err := TokenError(src); err != nil {
		dst = WithTokenError(dst, err)
	}
	return dst
}

// TokenError returns the error of an invalid token sent with a WebSocket upgrade, or nil.
func TokenError(ctx context.Context) error {
	err, _ := ctx.Value(tokenErrKey{}).(error)
	return err
}
