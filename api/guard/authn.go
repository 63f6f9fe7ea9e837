package guard

import (
	"net/http"

	"github.com/shop/api/auth"
)

// Authenticate puts the caller's viewer in each request's context. A request with an
// invalid token (malformed, forged, expired or revoked) is refused with 401 and
// UNAUTHENTICATED before anything runs, except a WebSocket upgrade: the socket protocol
// reports it itself (close code 4403), so the request goes on with the token error in its
// context (auth.TokenError).
func Authenticate(tokens *auth.Tokens, revoked *auth.Revocations) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			se, err := tokens.FromHeader(r.Header.Get("Authorization"))
			if err == nil && revoked.Revoked(se) {
				err = auth.ErrInvalidToken
			}
			switch {
			case err == nil:
				next.ServeHTTP(w, r.WithContext(auth.WithSession(r.Context(), se)))
			case IsWebSocket(r):
				next.ServeHTTP(w, r.WithContext(auth.WithTokenError(r.Context(), err)))
			default:
				w.Header().Set("Content-Type", "application/graphql-response+json")
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				WriteError(w, http.StatusUnauthorized, CodeUnauthenticated, "invalid or expired token")
			}
		})
	}
}
