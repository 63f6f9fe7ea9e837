// Package api is the HTTP face of the service: the middleware every GraphQL request passes
// through, how errors are shown to clients, and the health endpoints.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"time"
)

type requestIDKey struct{}

// RequestID returns the request's ID, as set by WithRequestID.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// WithRequestID gives every request an ID, the caller's X-Request-Id when it is sane, and
// returns it in the X-Request-Id response header so a client can quote it.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// LimitBody refuses request bodies over max bytes with 413, before anything parses them.
func LimitBody(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				tooLarge(w)
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				// Bodies without a length (chunked) are read up to the limit here.
				body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
				if err != nil {
					http.Error(w, "could not read the request body", http.StatusBadRequest)
					return
				}
				if int64(len(body)) > max {
					tooLarge(w)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			next.ServeHTTP(w, r)
		})
	}
}

func tooLarge(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_, _ = w.Write([]byte(`{"errors":[{"message":"request body too large","extensions":{"code":"BAD_USER_INPUT"}}]}`))
}

// Chain wraps h in middleware, the first outermost.
func Chain(h http.Handler, mw ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Check is a readiness probe of one dependency.
type Check struct {
	Name string
	Ping func(context.Context) error
}

const readyTimeout = 2 * time.Second

// Healthz answers 200 while the process runs.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Readyz answers 200 when every check passes and 503 naming the failing ones otherwise.
func Readyz(log *slog.Logger, checks ...Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		status, body := http.StatusOK, `{"status":"ready"}`
		for _, c := range checks {
			if err := c.Ping(ctx); err != nil {
				log.WarnContext(ctx, "not ready", "check", c.Name, "err", err)
				status, body = http.StatusServiceUnavailable, `{"status":"unavailable","failing":"`+c.Name+`"}`
				break
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body + "\n"))
	}
}
