package checkout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/shop/api/store"
)

// Provider takes payments: the one small interface every payment service is used through.
// Every call may be retried with the same arguments: key (Create) and the payment's
// reference make the provider do it once.
type Provider interface {
	// Name is the provider's name on payments: "test" or "stripe".
	Name() string
	// Create starts the payment for p.Amount with idempotency key key and returns the
	// provider's reference for it and the client secret its SDK confirms it with.
	Create(ctx context.Context, p store.Payment, key string) (Intent, error)
	// Cancel cancels a payment that has not settled.
	Cancel(ctx context.Context, p store.Payment) error
	// Refund gives a SUCCEEDED payment's money back. done says the refund is final now;
	// otherwise the provider confirms it later (Stripe's charge.refunded).
	Refund(ctx context.Context, p store.Payment) (done bool, err error)
}

// Intent is a payment as the provider created it.
type Intent struct {
	Reference, Secret string
}

// ErrUnavailable says the provider could not be reached (or the breaker keeps it from
// being tried): nothing was done there, and the call may be repeated.
var ErrUnavailable = errors.New("payment provider unavailable")

// TestProvider is the built-in provider for development and tests: payments are settled by
// confirmTestPayment, cancels and refunds are immediate. Fail makes it unreachable, to show
// what a provider outage does.
type TestProvider struct {
	down atomic.Bool
}

// Fail makes every call fail as if the provider could not be reached (true), or not (false).
func (t *TestProvider) Fail(down bool) { t.down.Store(down) }

// Name implements Provider.
func (t *TestProvider) Name() string { return store.ProviderTest }

// Create implements Provider.
func (t *TestProvider) Create(ctx context.Context, p store.Payment, key string) (Intent, error) {
	if t.down.Load() {
		return Intent{}, ErrUnavailable
	}
	return Intent{Reference: "testpay_" + random(), Secret: "testpay_secret_" + random()}, nil
}

// Cancel implements Provider.
func (t *TestProvider) Cancel(ctx context.Context, p store.Payment) error {
	if t.down.Load() {
		return ErrUnavailable
	}
	return nil
}

// Refund implements Provider.
func (t *TestProvider) Refund(ctx context.Context, p store.Payment) (bool, error) {
	if t.down.Load() {
		return false, ErrUnavailable
	}
	return true, nil
}

func random() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// guarded calls a provider with a timeout per call and behind a circuit breaker: after
// consecutive failures calls fail at once with ErrUnavailable until the breaker lets one
// through again.
type guarded struct {
	Provider
	timeout time.Duration
	cb      *gobreaker.CircuitBreaker[Intent]
}

// guard wraps p: each call gets timeout, and failures open the breaker for open.
func guard(p Provider, timeout, open time.Duration, onChange func(to string)) *guarded {
	return &guarded{Provider: p, timeout: timeout, cb: gobreaker.NewCircuitBreaker[Intent](gobreaker.Settings{
		Name:        "payment-provider",
		Timeout:     open,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if onChange != nil {
				onChange(to.String())
			}
		},
	})}
}

func (g *guarded) call(ctx context.Context, op string, f func(context.Context) (Intent, error)) (Intent, error) {
	in, err := g.cb.Execute(func() (Intent, error) {
		ctx, cancel := context.WithTimeout(ctx, g.timeout)
		defer cancel()
		return f(ctx)
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return in, fmt.Errorf("%s: %w (circuit open)", op, ErrUnavailable)
	}
	if err != nil && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	return in, err
}

// Create implements Provider.
func (g *guarded) Create(ctx context.Context, p store.Payment, key string) (Intent, error) {
	return g.call(ctx, "create payment", func(ctx context.Context) (Intent, error) { return g.Provider.Create(ctx, p, key) })
}

// Cancel implements Provider.
func (g *guarded) Cancel(ctx context.Context, p store.Payment) error {
	_, err := g.call(ctx, "cancel payment", func(ctx context.Context) (Intent, error) { return Intent{}, g.Provider.Cancel(ctx, p) })
	return err
}

// Refund implements Provider.
func (g *guarded) Refund(ctx context.Context, p store.Payment) (bool, error) {
	var done bool
	_, err := g.call(ctx, "refund payment", func(ctx context.Context) (Intent, error) {
		var err error
		done, err = g.Provider.Refund(ctx, p)
		return Intent{}, err
	})
	return done, err
}
