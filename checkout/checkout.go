// Package checkout takes payments for orders and runs the purchase's durable steps:
// providers (the built-in test one and Stripe) behind one small interface, a timeout and a
// circuit breaker; and River jobs for the steps that talk to the provider or wait for time
// (an order's expiry, a payment's cancel and refund), written in the transaction of the
// change that asks for them.
package checkout

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/shop/api/store"
)

// Provider names of PAYMENT_PROVIDER.
const (
	ProviderTest   = store.ProviderTest
	ProviderStripe = "stripe"
	ProviderNone   = "none"
)

// Config configures checkout.
type Config struct {
	// Provider is "test", "stripe" or "none" (payments only marked by hand).
	Provider string
	// Stripe configures the stripe provider.
	Stripe StripeConfig
	// DatabaseURL is the store's PostgreSQL URL, for the job queue's LISTEN/NOTIFY
	// connection; empty with the embedded store.
	DatabaseURL string
	// Workers is how many jobs of each queue a process works at once (on PostgreSQL
	// expiries have a queue of their own, beside the provider calls'); 0 means 10.
	Workers int
	// PollInterval is how often a process looks for due jobs; 0 means 500ms. (An order's
	// expiry is worked within about this much of its reservedUntil, and within
	// expiryBackup plus this much when the process that took it was killed.)
	PollInterval time.Duration
	// MaxAttempts is how often a job is tried before it is discarded; 0 means 25 (River's
	// backoff then spans about three weeks).
	MaxAttempts int
	// ProviderTimeout bounds each call to the provider; 0 means 10s. BreakerOpen is how long
	// the breaker keeps the provider from being called after repeated failures; 0 means 10s.
	ProviderTimeout, BreakerOpen time.Duration
	// Log receives the job queue's and the breaker's messages; nil discards them.
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Provider == "" {
		c.Provider = ProviderTest
	}
	if c.Workers <= 0 {
		c.Workers = 10
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 25
	}
	if c.ProviderTimeout <= 0 {
		c.ProviderTimeout = 10 * time.Second
	}
	if c.BreakerOpen <= 0 {
		c.BreakerOpen = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Checkout takes payments and works the purchase's jobs. Start it to work jobs; jobs are
// written (and the service answers) before that.
type Checkout struct {
	store    *store.Store
	provider Provider // nil: payments are off
	test     *TestProvider
	stripe   *Stripe
	client   *river.Client[*sql.Tx]
	pool     *pgxpool.Pool
	log      *slog.Logger
	counts   counts
	outcomes *prometheus.CounterVec
	events   <-chan *river.Event
	unsub    func()
}

// New builds checkout on st: it applies the job queue's migrations, builds the provider
// cfg names, and makes st write its jobs through the queue.
func New(ctx context.Context, st *store.Store, cfg Config) (*Checkout, error) {
	cfg = cfg.withDefaults()
	c := &Checkout{store: st, log: cfg.Log, counts: counts{store: st}, outcomes: newOutcomes()}
	switch cfg.Provider {
	case ProviderTest:
		c.test = &TestProvider{}
		c.provider = c.test
	case ProviderStripe:
		s, err := NewStripe(cfg.Stripe)
		if err != nil {
			return nil, err
		}
		c.stripe, c.provider = s, s
	case ProviderNone:
	default:
		return nil, fmt.Errorf("PAYMENT_PROVIDER: want test, stripe or none, got %q", cfg.Provider)
	}
	if c.provider != nil {
		c.provider = guard(c.provider, cfg.ProviderTimeout, cfg.BreakerOpen, func(to string) {
			c.log.Warn("payment provider breaker", "state", to)
		})
	}
	db, err := st.DB()
	if err != nil {
		return nil, err
	}
	if cfg.DatabaseURL != "" {
		if c.pool, err = pgxpool.New(ctx, cfg.DatabaseURL); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
	}
	drv := driver(db, c.pool)
	if err := migrate(ctx, drv); err != nil {
		c.Close()
		return nil, err
	}
	if c.client, err = newClient(drv, c.pool != nil, st, c.provider, cfg); err != nil {
		c.Close()
		return nil, err
	}
	st.SetJobs(newQueue(c.client, c.pool != nil, cfg.MaxAttempts))
	c.events, c.unsub = c.client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed,
		river.EventKindJobCancelled, river.EventKindJobSnoozed)
	go countOutcomes(c.events, c.outcomes)
	return c, nil
}

// Migrate applies the job queue's migrations to st's database (the migrate command).
func Migrate(ctx context.Context, st *store.Store, databaseURL string) error {
	db, err := st.DB()
	if err != nil {
		return err
	}
	var pool *pgxpool.Pool
	if databaseURL != "" {
		if pool, err = pgxpool.New(ctx, databaseURL); err != nil {
			return fmt.Errorf("job queue: %w", err)
		}
		defer pool.Close()
	}
	return migrate(ctx, driver(db, pool))
}

// Start starts working jobs until Stop.
func (c *Checkout) Start(ctx context.Context) error {
	if err := c.client.Start(ctx); err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	return nil
}

// Stop lets running jobs finish (until ctx ends) and stops working jobs; a job cut short
// is worked again later, by this process or another.
func (c *Checkout) Stop(ctx context.Context) error {
	if err := c.client.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Close releases the job queue's connections; call it after Stop.
func (c *Checkout) Close() {
	if c.unsub != nil {
		c.unsub()
	}
	if c.pool != nil {
		c.pool.Close()
	}
}

// Enabled reports whether payments are taken (PAYMENT_PROVIDER is not none).
func (c *Checkout) Enabled() bool { return c.provider != nil }

// Test returns the test provider, nil unless PAYMENT_PROVIDER=test.
func (c *Checkout) Test() *TestProvider { return c.test }

// Stripe returns the Stripe provider, nil unless PAYMENT_PROVIDER=stripe.
func (c *Checkout) Stripe() *Stripe { return c.stripe }

// Jobs returns the River client, for metrics and tests.
func (c *Checkout) Jobs() *river.Client[*sql.Tx] { return c.client }

// ErrDisabled answers payOrder when payments are off (PAYMENT_PROVIDER=none).
var ErrDisabled = errors.New("payments are not taken by this shop (PAYMENT_PROVIDER=none): mark orders paid with updateOrderStatus")

// PayOrder starts (or returns, see store.StartPayment) the viewer's payment of an order
// with idempotency key key, created at the provider before it is returned. It returns
// ErrDisabled when payments are off, PAYMENT_PROVIDER_UNAVAILABLE when the provider cannot
// be reached (nothing is left half-done: the key may be sent again), and the store's codes.
func (c *Checkout) PayOrder(ctx context.Context, v store.Viewer, orderID int64, key string) (store.Payment, error) {
	if c.provider == nil {
		return store.Payment{}, ErrDisabled
	}
	p, err := c.store.StartPayment(ctx, v, store.NewPayment{OrderID: orderID, IdempotencyKey: key, Provider: c.provider.Name()})
	if err != nil || p.Status != store.PaymentPending || p.ProviderReference != nil {
		return p, err
	}
	// Created at the provider after the payment is written, under a key derived from the
	// order and the client's key: a racing repeat, or a retry after a lost answer, gets
	// the same intent.
	intent, err := c.provider.Create(ctx, p, c.providerKey(p))
	if err != nil {
		c.log.WarnContext(ctx, "payment provider create failed", "payment", p.ID, "err", err)
		if err := c.store.AbandonPayment(context.WithoutCancel(ctx), p.ID); err != nil {
			c.log.ErrorContext(ctx, "abandon payment", "payment", p.ID, "err", err)
		}
		return store.Payment{}, &store.Error{Code: store.CodePaymentProviderUnavailable,
			Message: "the payment provider cannot be reached; send the same request again later"}
	}
	return c.store.AttachPaymentReference(ctx, p.ID, intent.Reference, intent.Secret)
}

// providerKey is the provider's idempotency key of a payment: its order and client key,
// under the database's namespace so two shops on one Stripe account never meet.
func (c *Checkout) providerKey(p store.Payment) string {
	h := sha256.Sum256([]byte(p.IdempotencyKey))
	return fmt.Sprintf("shop-%s-order-%d-%s", c.store.Namespace(), p.OrderID, hex.EncodeToString(h[:12]))
}

// ConfirmTestPayment settles a test payment as its card would (store.SettleTestPayment);
// FORBIDDEN when the provider is not the test one.
func (c *Checkout) ConfirmTestPayment(ctx context.Context, v store.Viewer, paymentID int64, succeed bool) (store.Payment, error) {
	if v.Anonymous() {
		return store.Payment{}, &store.Error{Code: store.CodeUnauthenticated, Message: "sign in first"}
	}
	if c.test == nil {
		return store.Payment{}, &store.Error{Code: store.CodeForbidden, Message: "test payments are confirmed only with PAYMENT_PROVIDER=test"}
	}
	return c.store.SettleTestPayment(ctx, v, paymentID, succeed)
}
