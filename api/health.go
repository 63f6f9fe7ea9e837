package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

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
