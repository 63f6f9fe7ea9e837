package tests

import (
	"context"
	"log/slog"
	"time"

	"github.com/shop/api/api"
)

// config is the service's configuration, api.Config: zero fields take the packages'
// defaults, except that rate limits and the subscription caps are off unless set.
type config = api.Config

// service is the service as server.go runs it, built by api.New.
type service = api.Service

// startService builds the service with api.New, the one wiring server.go also uses. Tokens
// revoked on another process are noticed within 200ms instead of 2s, so tests need not wait.
func startService(ctx context.Context, cfg config, log *slog.Logger) (*service, error) {
	if cfg.RevocationInterval == 0 {
		cfg.RevocationInterval = 200 * time.Millisecond
	}
	return api.New(ctx, cfg, log)
}
