package checkout

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/shop/api/store"
)

// The saga's steps are River jobs, written in the transaction of the change that asks for
// them (store.Jobs): an order's expiry, due at its reservedUntil, and a payment's
// cancel and refund at the provider, retried with backoff.
// One client type serves both backends: its transactions are database/sql's, the store's
// own (gorm runs on database/sql), on the embedded SQLite (riversqlite) and on PostgreSQL
// (riverdatabasesql, with a pgx pool for LISTEN/NOTIFY).

// expireOrderArgs asks for an order's expiry.
type expireOrderArgs struct {
	OrderID int64 `json:"order_id"`
}

func (expireOrderArgs) Kind() string { return "expire_order" }

// cancelPaymentArgs asks for a payment to be cancelled at its provider.
type cancelPaymentArgs struct {
	PaymentID int64 `json:"payment_id"`
}

func (cancelPaymentArgs) Kind() string { return "cancel_payment" }

// refundPaymentArgs asks for a payment to be refunded at its provider.
type refundPaymentArgs struct {
	PaymentID int64 `json:"payment_id"`
}

func (refundPaymentArgs) Kind() string { return "refund_payment" }

// driver returns River's driver for the store's database handle.
func driver(db *sql.DB, pool *pgxpool.Pool) riverdriver.Driver[*sql.Tx] {
	if pool != nil {
		return riverdatabasesql.NewWithPgxListener(db, pool)
	}
	return riversqlite.New(db)
}

// migrate applies River's migrations (its job tables) to the store's database.
func migrate(ctx context.Context, drv riverdriver.Driver[*sql.Tx]) error {
	m, err := rivermigrate.New(drv, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("job queue migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("job queue migrations: %w", err)
	}
	return nil
}

// queue is the store's Jobs on a River client.
type queue struct {
	client *river.Client[*sql.Tx]
	// insertExpiry is the statement that writes an order's expiry jobs on this backend.
	insertExpiry string
	// postgres: timestamps are bound as time.Time; on SQLite, as River's text format.
	postgres    bool
	maxAttempts int
}

// newQueue returns the store's Jobs on client, on PostgreSQL or SQLite.
func newQueue(client *river.Client[*sql.Tx], postgres bool, maxAttempts int) queue {
	q := queue{client: client, insertExpiry: insertExpirySQLite, maxAttempts: maxAttempts}
	if postgres {
		q.insertExpiry, q.postgres = insertExpiryPostgres, true
	}
	return q
}

// expiryQueue is the River queue of expiry jobs on PostgreSQL: their own workers, so
// provider calls that hang until their timeout never hold an expiry back. The embedded
// SQLite store is one process on one database connection, which each queue's polling
// would share with every request: there expiries go to River's default queue.
const expiryQueue = "expiry"

// queues returns the River queues a process works, with workers each.
func queues(postgres bool, workers int) map[string]river.QueueConfig {
	q := map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}}
	if postgres {
		q[expiryQueue] = river.QueueConfig{MaxWorkers: workers}
	}
	return q
}

// expiryBackup is how long after an order's expiry job its second one is due. The second
// does the work only when the first did not: when the process that fetched the first was
// killed before its transaction committed. It is longer than a live process takes to
// fetch and work the first (a poll, 500 ms, and one transaction), so it is usually a no-op.
const expiryBackup = 2 * time.Second

// An order's expiry is two River jobs, written by one plain statement in placeOrder's
// transaction, each as state 'available' with a future scheduled_at. River's fetch
// (JobGetAvailable, in riverdatabasesql and riversqlite alike) takes available jobs whose
// scheduled_at has come, so any live process takes them on its next poll. A job inserted
// as 'scheduled' instead waits for River's leader, whose scheduler moves due jobs to
// 'available': when the leader is SIGKILLed, that waits for the next leader, up to 15 s.
// A job a killed process had fetched stays 'running' until the leader's rescuer finds it
// (30 s and more); the second job, due expiryBackup later, is then taken by a live
// process. Nothing else in River reads available jobs (the scheduler and the rescuer
// read other states; unique inserts are not used), so these rows are River's own kind.
//
// The statement is also cheaper than River's InsertTx, which placeOrder pays on every
// order: through database/sql River encodes a dozen array parameters through lib/pq's
// text encoding, which made placeOrder cost a quarter more server CPU. The columns left
// out take the table's defaults (priority 1, no tags, no metadata), the values River
// writes.
const (
	insertExpiryPostgres = `INSERT INTO river_job (args, kind, max_attempts, queue, scheduled_at, state) VALUES
($1, 'expire_order', $2, 'expiry', $3, 'available'), ($1, 'expire_order', $2, 'expiry', $4, 'available')`
	// SQLite keeps args as JSONB and times as text that River compares as text: its
	// format exactly (sqliteTime), in UTC.
	insertExpirySQLite = `INSERT INTO river_job (args, created_at, kind, max_attempts, queue, scheduled_at, state) VALUES
(jsonb(?1), datetime('now', 'subsec'), 'expire_order', ?2, 'default', ?3, 'available'),
(jsonb(?1), datetime('now', 'subsec'), 'expire_order', ?2, 'default', ?4, 'available')`
)

// sqliteTime is t as riversqlite writes and compares times.
func sqliteTime(t time.Time) string {
	return t.UTC().Round(time.Millisecond).Format("2006-01-02 15:04:05.000")
}

var _ store.Jobs = queue{}

// Each job is written by a change that happens once (an order is placed once, a payment
// cancelled once, a refund asked for once), so it is unique by construction: River's unique
// insert, which doubled the insert's cost in placeOrder, is not used. Working a job twice
// (a process died after its work, before River marked it done), or an order's two expiry
// jobs, is harmless too: each worker does nothing to an order or payment already past that
// step, and the provider calls carry idempotency keys.

// ExpireOrder implements store.Jobs: the order's two expiry jobs, at at and expiryBackup
// later.
func (q queue) ExpireOrder(ctx context.Context, tx *sql.Tx, orderID int64, at time.Time) error {
	args := `{"order_id":` + strconv.FormatInt(orderID, 10) + `}`
	var first, second any = at, at.Add(expiryBackup)
	if !q.postgres {
		first, second = sqliteTime(at), sqliteTime(at.Add(expiryBackup))
	}
	_, err := tx.ExecContext(ctx, q.insertExpiry, args, q.maxAttempts, first, second)
	return err
}

// CancelPayment implements store.Jobs.
func (q queue) CancelPayment(ctx context.Context, tx *sql.Tx, paymentID int64) error {
	_, err := q.client.InsertTx(ctx, tx, cancelPaymentArgs{PaymentID: paymentID}, nil)
	return err
}

// RefundPayment implements store.Jobs.
func (q queue) RefundPayment(ctx context.Context, tx *sql.Tx, paymentID int64) error {
	_, err := q.client.InsertTx(ctx, tx, refundPaymentArgs{PaymentID: paymentID}, nil)
	return err
}

// expireWorker expires orders.
type expireWorker struct {
	river.WorkerDefaults[expireOrderArgs]
	store *store.Store
}

// Work expires the order, or waits for its reservation when it came early: a short wait
// in place, a longer one by snoozing. (A job is fetched once the database's clock passes
// its time; the order's reservation is on this process's clock. Jobs written as
// 'scheduled' by an earlier version may also come up to River's scheduler interval early.)
func (w *expireWorker) Work(ctx context.Context, job *river.Job[expireOrderArgs]) error {
	for {
		wait, err := w.store.ExpireOrder(ctx, job.Args.OrderID)
		if err != nil || wait <= 0 {
			return err
		}
		if wait > 10*time.Second {
			return river.JobSnooze(wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// cancelWorker cancels payments at their provider.
type cancelWorker struct {
	river.WorkerDefaults[cancelPaymentArgs]
	store    *store.Store
	provider Provider
}

// NextRetry implements river.Worker: see providerBackoff.
func (w *cancelWorker) NextRetry(job *river.Job[cancelPaymentArgs]) time.Time {
	return time.Now().Add(providerBackoff(job.Attempt))
}

// Work cancels the payment at its provider; an error retries with backoff.
func (w *cancelWorker) Work(ctx context.Context, job *river.Job[cancelPaymentArgs]) error {
	p, err := w.store.FindPayment(ctx, job.Args.PaymentID)
	if err != nil || w.provider == nil || p.Provider != w.provider.Name() || p.ProviderReference == nil {
		return err // nothing the provider knows of, or another provider's
	}
	return w.provider.Cancel(ctx, p)
}

// refundWorker refunds payments at their provider.
type refundWorker struct {
	river.WorkerDefaults[refundPaymentArgs]
	store    *store.Store
	provider Provider
}

// NextRetry implements river.Worker: see providerBackoff.
func (w *refundWorker) NextRetry(job *river.Job[refundPaymentArgs]) time.Time {
	return time.Now().Add(providerBackoff(job.Attempt))
}

// Work refunds the payment at its provider, and marks it REFUNDED when the provider says
// the refund is done; an error retries with backoff.
func (w *refundWorker) Work(ctx context.Context, job *river.Job[refundPaymentArgs]) error {
	p, err := w.store.FindPayment(ctx, job.Args.PaymentID)
	if err != nil || p.Status != store.PaymentSucceeded {
		return err
	}
	if w.provider == nil || p.Provider != w.provider.Name() {
		return fmt.Errorf("refund payment %d: its provider %q is not configured", p.ID, p.Provider)
	}
	done, err := w.provider.Refund(ctx, p)
	if err != nil || !done {
		return err
	}
	_, err = w.store.MarkPaymentRefunded(ctx, p.ID, "")
	return err
}

// providerBackoff is the wait before retry attempt+1 of a provider call: doubling from 2 s
// and capped at an hour, so an outage of seconds (or the breaker's open time) costs seconds,
// and the 25 attempts span about a day. (River's default, attempt⁴ seconds, waits 81 s
// after the third failure.)
func providerBackoff(attempt int) time.Duration {
	d := time.Hour
	if attempt < 12 {
		d = min(d, time.Second<<attempt)
	}
	return d + time.Duration(rand.Int64N(int64(d/10)+1))
}

// newClient builds the River client that inserts and works the checkout's jobs.
func newClient(drv riverdriver.Driver[*sql.Tx], postgres bool, st *store.Store, p Provider, cfg Config) (*river.Client[*sql.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &expireWorker{store: st})
	river.AddWorker(workers, &cancelWorker{store: st, provider: p})
	river.AddWorker(workers, &refundWorker{store: st, provider: p})
	client, err := river.NewClient(drv, &river.Config{
		Queues:            queues(postgres, cfg.Workers),
		Workers:           workers,
		FetchPollInterval: cfg.PollInterval,
		FetchCooldown:     min(cfg.PollInterval, 100*time.Millisecond),
		MaxAttempts:       cfg.MaxAttempts,
		// A job is a provider call (10 s timeout) or one transaction.
		JobTimeout: 20 * time.Second,
		// A job that a process fetched and then died with (SIGKILL) runs again this long
		// after it started (plus up to River's rescuer interval), not River's default hour.
		RescueStuckJobsAfter: 30 * time.Second,
		Logger:               cfg.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	return client, nil
}
