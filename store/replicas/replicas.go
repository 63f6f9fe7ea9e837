// Package replicas routes the store's replica reads (store.ReadReplicas): a connection pool
// that sends each read to a PostgreSQL streaming replica that may serve it, or else to the
// primary, with read-your-writes marks kept in Redis for every process.
package replicas

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/shop/api/store"
)

// Read replicas. The store splits its statements (gorm's dbresolver): writes, transactions
// and locking reads go to the primary, and the reads the store sends through its reads
// handle (loaders' batches, list pages, counts) to one "replica" connection pool, Set, which
// picks per statement a PostgreSQL streaming replica that may serve it, or else the primary:
//
//   - A background probe compares, every ReplicaCheckInterval, each replica's replayed WAL
//     position (pg_last_wal_replay_lsn) with the positions the primary had at earlier
//     probes. A replica that has replayed the position of the probe at time t has every
//     transaction committed before t, so its lag is at most now − t. One lagging beyond
//     ReplicaMaxLag, unreachable or not in recovery is skipped until a probe finds it well.
//   - Read-your-writes: after a caller's write commits, the store reads the primary's WAL
//     insert position and keeps the highest per user in Redis (every process sees it) and in
//     the operation's context. That caller's reads go only to a replica whose last probe had
//     replayed it: to the primary for at most a probe interval plus the replica's lag, and
//     never stale, whichever process serves them.
//   - A statement that fails on a replica runs again on the primary, and when the replica
//     itself failed (connection lost, shutting down) it is skipped until the next probe
//     finds it well: the client sees no error.
//
// Only operations that opt in with WithReads read replicas; everything else, the
// subscriptions' event reads and background work included, reads the primary.

// The defaults of Config's fields.
const (
	defaultMaxLag        = 2 * time.Second
	defaultCheckInterval = 500 * time.Millisecond
	defaultMaxConns      = 20
)

// Config says which replicas serve reads and how they are judged.
type Config struct {
	// URLs are postgres:// URLs of streaming replicas of the store's primary.
	URLs []string
	// MaxLag is how far behind the primary a replica may be and still serve reads; 0 means
	// 2s. CheckInterval is how often the lag is measured; 0 means 500ms.
	MaxLag, CheckInterval time.Duration
	// MaxConns caps each replica's connection pool; 0 means 20, the store's default.
	MaxConns int
	// Log receives the replicas' changes of health; nil discards them.
	Log *slog.Logger
}

// replicaReadsKey carries a *replicaReads in an operation's context.
type replicaReadsKey struct{}

// replicaReads is one operation's permission to read replicas, with what it needs to see.
type replicaReads struct {
	caller func() int64
	// wrote is the highest primary WAL position after this operation's own writes.
	wrote atomic.Int64

	mu       sync.Mutex
	markUser int64 // whose mark was looked up (the caller may sign in mid-operation)
	mark     int64 // their mark; unknownPosition when it could not be read
	marked   bool
}

// WithReads returns ctx in which the store may send the reads of loaders and lists to
// a read replica, on behalf of the user caller returns (0: anonymous), asked when a read
// needs it: their reads never miss their own writes. Give it to queries and mutations;
// without it every read goes to the primary.
func WithReads(ctx context.Context, caller func() int64) context.Context {
	return context.WithValue(ctx, replicaReadsKey{}, &replicaReads{caller: caller})
}

// unknownPosition is a WAL position no replica reaches: the caller's reads stay on the
// primary (a write whose position could not be read, a mark that could not be looked up).
const unknownPosition = int64(1<<63 - 1)

// replica is one read replica and what the last probe found.
type replica struct {
	name  string // host:port, never the URL's credentials
	db    *sql.DB
	state atomic.Pointer[replicaState]
	reads atomic.Int64
	// failures counts statements that failed on it and ran again on the primary.
	failures atomic.Int64
}

type replicaState struct {
	healthy bool
	replay  int64         // replayed WAL position, when probed
	lag     time.Duration // upper bound on how far behind the primary it is
	reason  string        // why it is skipped; "" when healthy
}

// lsnSample is the primary's WAL insert position at a probe.
type lsnSample struct {
	at  time.Time
	lsn int64
}

// Set is the connection pool the store sends replica reads to: per statement, a replica that
// may serve it, else the primary. It implements store.ReadReplicas.
type Set struct {
	primary  *sql.DB
	replicas []*replica
	maxLag   time.Duration
	interval time.Duration
	log      *slog.Logger
	next     atomic.Uint64 // round robin among the replicas that may serve a read

	marks atomic.Pointer[writeMarks]
	// marksFailedUntil (Unix nanoseconds): a mark could not be written; until then this
	// process sends every signed-in caller's reads to the primary.
	marksFailedUntil atomic.Int64
	primaryReads     atomic.Int64

	samples   []lsnSample // only the probe goroutine touches it (and Start before starting it)
	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

var _ store.ReadReplicas = (*Set)(nil)

// New opens pools to the replicas of cfg (lazily: a replica that is down at start is skipped
// until it answers). Give it to store.Config's Replicas: the store starts it with its
// primary and closes it.
func New(cfg Config) (*Set, error) {
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = defaultMaxLag
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = defaultCheckInterval
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = defaultMaxConns
	}
	rs := &Set{maxLag: cfg.MaxLag, interval: cfg.CheckInterval, log: cfg.Log, done: make(chan struct{})}
	if rs.log == nil {
		rs.log = slog.New(slog.DiscardHandler)
	}
	for _, u := range cfg.URLs {
		pc, err := pgx.ParseConfig(u)
		if err != nil {
			rs.Close()
			return nil, fmt.Errorf("DATABASE_REPLICA_URLS: %w", err)
		}
		r := &replica{name: pc.Host + ":" + strconv.Itoa(int(pc.Port)), db: stdlib.OpenDB(*pc)}
		r.db.SetMaxOpenConns(cfg.MaxConns)
		r.db.SetMaxIdleConns(cfg.MaxConns)
		r.db.SetConnMaxIdleTime(5 * time.Minute)
		r.state.Store(&replicaState{reason: "not probed yet"})
		rs.replicas = append(rs.replicas, r)
	}
	return rs, nil
}

// Start measures the replicas against primary, the store's pool, once, and starts the
// background probe. Call it once.
func (rs *Set) Start(ctx context.Context, primary *sql.DB) error {
	rs.primary = primary
	rs.probe(ctx)
	watchCtx, stop := context.WithCancel(context.Background())
	rs.stop = stop
	go rs.watch(watchCtx)
	return nil
}

// watch probes the replicas every interval until ctx ends.
func (rs *Set) watch(ctx context.Context) {
	defer close(rs.done)
	t := time.NewTicker(rs.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rs.probe(ctx)
		}
	}
}

// Close stops the probe and closes the replicas' pools.
func (rs *Set) Close() {
	rs.closeOnce.Do(func() {
		if rs.stop != nil {
			rs.stop()
			<-rs.done
		}
		for _, r := range rs.replicas {
			_ = r.db.Close()
		}
	})
}

// probe samples the primary's WAL position and measures every replica against the samples.
// Its statements bypass gorm: they are not the service's work, and are not counted.
func (rs *Set) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(rs.interval, time.Second))
	defer cancel()
	var lsn int64
	if err := rs.primary.QueryRowContext(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&lsn); err == nil {
		now := time.Now()
		// Keep what measures lags up to the bound, and one sample older than it.
		keep := 0
		for i, s := range rs.samples {
			if now.Sub(s.at) > rs.maxLag+rs.interval {
				keep = i
			}
		}
		rs.samples = append(rs.samples[keep:], lsnSample{at: now, lsn: lsn})
	}
	var wg sync.WaitGroup
	for _, r := range rs.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs.measure(ctx, r)
		}()
	}
	wg.Wait()
}

// measure probes one replica and records whether it may serve reads.
func (rs *Set) measure(ctx context.Context, r *replica) {
	var inRecovery bool
	var replay sql.NullInt64
	err := r.db.QueryRowContext(ctx, "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0')::bigint").Scan(&inRecovery, &replay)
	now := time.Now()
	st := &replicaState{replay: replay.Int64}
	switch {
	case err != nil:
		st.reason = "unreachable: " + err.Error()
	case !inRecovery || !replay.Valid:
		st.reason = "not a standby (pg_is_in_recovery() is false): it does not follow the primary"
	case len(rs.samples) == 0:
		st.reason = "the primary's WAL position is unknown"
	default:
		found := false
		for i := len(rs.samples) - 1; i >= 0 && !found; i-- {
			if rs.samples[i].lsn <= replay.Int64 {
				st.lag, found = now.Sub(rs.samples[i].at), true
			}
		}
		switch {
		case !found:
			st.lag = now.Sub(rs.samples[0].at)
			st.reason = fmt.Sprintf("has not replayed what the primary wrote %s ago", st.lag.Round(time.Millisecond))
		case st.lag > rs.maxLag:
			st.reason = fmt.Sprintf("lagging %s behind the primary, more than %s", st.lag.Round(time.Millisecond), rs.maxLag)
		default:
			st.healthy = true
		}
	}
	prev := r.state.Swap(st)
	switch {
	case st.healthy && !prev.healthy:
		rs.log.Info("read replica serves reads", "replica", r.name, "lag", st.lag)
	case !st.healthy && (prev.healthy || prev.reason == "not probed yet"):
		rs.log.Warn("read replica skipped: reads go to the primary", "replica", r.name, "reason", st.reason)
	}
}

// pick returns the replica that serves a read in ctx, or nil for the primary.
func (rs *Set) pick(ctx context.Context) *replica {
	rr, _ := ctx.Value(replicaReadsKey{}).(*replicaReads)
	if rr == nil {
		return nil
	}
	var healthy [8]*replica
	candidates := healthy[:0]
	for _, r := range rs.replicas {
		if r.state.Load().healthy {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	need := rr.wrote.Load()
	if user := rr.caller(); user != 0 {
		need = max(need, rs.markOf(ctx, rr, user))
	}
	start := rs.next.Add(1)
	for i := range candidates {
		if r := candidates[(start+uint64(i))%uint64(len(candidates))]; r.state.Load().replay >= need {
			return r
		}
	}
	return nil
}

// markOf returns the WAL position user's reads must see, looked up once per operation.
func (rs *Set) markOf(ctx context.Context, rr *replicaReads, user int64) int64 {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.marked && rr.markUser == user {
		return rr.mark
	}
	m := rs.marks.Load()
	switch {
	case m == nil, time.Now().UnixNano() < rs.marksFailedUntil.Load():
		rr.mark = unknownPosition
	default:
		rr.mark = m.get(ctx, user)
	}
	rr.marked, rr.markUser = true, user
	return rr.mark
}

// Wrote records, after a write of user (0: nobody signed in) committed, the primary's WAL
// position, which position reads: the operation's later reads, and user's anywhere, must
// see it.
func (rs *Set) Wrote(ctx context.Context, user int64, position func() (int64, error)) {
	rr, _ := ctx.Value(replicaReadsKey{}).(*replicaReads)
	if rr == nil && user == 0 {
		return
	}
	lsn := unknownPosition
	if at, err := position(); err == nil && at > 0 {
		lsn = at
	}
	if rr != nil {
		for cur := rr.wrote.Load(); lsn > cur && !rr.wrote.CompareAndSwap(cur, lsn); cur = rr.wrote.Load() {
		}
	}
	if user == 0 {
		return
	}
	if m := rs.marks.Load(); m == nil || !m.set(ctx, user, lsn) {
		rs.marksFailedUntil.Store(time.Now().Add(rs.markTTL()).UnixNano())
	}
}

// markTTL is how long a user's mark lives: well past the time any replica that serves reads
// takes to replay it (the lag bound plus a probe), after which it no longer matters.
func (rs *Set) markTTL() time.Duration {
	return max(time.Minute, 2*(rs.maxLag+rs.interval))
}

// QueryContext runs a read on the replica pick chooses, or on the primary; a read that fails
// on a replica runs again on the primary, unless its context ended.
func (rs *Set) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if r := rs.pick(ctx); r != nil {
		rows, err := r.db.QueryContext(ctx, query, args...)
		if err == nil || ctx.Err() != nil {
			r.reads.Add(1)
			return rows, err
		}
		rs.replicaFault(r, err)
	}
	rs.primaryReads.Add(1)
	return rs.primary.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a single-row read like QueryContext, without the second try: its
// error only shows when the row is scanned. (The store's routed reads do not use it.)
func (rs *Set) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if r := rs.pick(ctx); r != nil {
		r.reads.Add(1)
		return r.db.QueryRowContext(ctx, query, args...)
	}
	rs.primaryReads.Add(1)
	return rs.primary.QueryRowContext(ctx, query, args...)
}

// ExecContext and PrepareContext never reach replicas: dbresolver sends writes to the
// primary, and anything else that gets here goes there too.
func (rs *Set) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return rs.primary.ExecContext(ctx, query, args...)
}

// PrepareContext prepares on the primary; see ExecContext.
func (rs *Set) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return rs.primary.PrepareContext(ctx, query)
}

// replicaFault counts a statement that failed on r and will run again on the primary, and
// skips r until a probe finds it well when the failure is the server's rather than the
// statement's: the connection failed, or the server is shutting down or short of
// resources. Any other error runs again too: a replica that has not yet replayed a
// migration fails on a table or column the primary has, and a recovery conflict cancels a
// statement there; a statement that is wrong fails on the primary as well.
func (rs *Set) replicaFault(r *replica, err error) {
	r.failures.Add(1)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57", "58":
		default:
			return
		}
	}
	if prev := r.state.Swap(&replicaState{reason: "failed: " + err.Error()}); prev.healthy {
		rs.log.Warn("read replica failed: reads go to the primary", "replica", r.name, "err", err)
	}
}

// writeMarks keeps, per user, the primary's WAL position after their latest write, in Redis
// for every process of the service.
type writeMarks struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	timeout time.Duration
	log     *slog.Logger
}

// raiseMark sets KEYS[1] to ARGV[1] unless it holds a higher position, for ARGV[2] ms: two
// processes writing for one user never lower each other's mark.
var raiseMark = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then
  return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`)

func (m *writeMarks) key(user int64) string {
	return m.prefix + "replica:wrote:" + strconv.FormatInt(user, 10)
}

// set raises user's mark to lsn; false when Redis failed.
func (m *writeMarks) set(ctx context.Context, user, lsn int64) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
	defer cancel()
	err := raiseMark.Run(ctx, m.rdb, []string{m.key(user)}, strconv.FormatInt(lsn, 10), m.ttl.Milliseconds()).Err()
	if err != nil {
		m.log.Warn("read-your-writes mark not stored: this process reads the primary for signed-in callers a while", "err", err)
		return false
	}
	return true
}

// get returns user's mark, 0 when they wrote nothing lately, and unknownPosition when Redis
// failed (their reads go to the primary).
func (m *writeMarks) get(ctx context.Context, user int64) int64 {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	v, err := m.rdb.Get(ctx, m.key(user)).Int64()
	switch {
	case errors.Is(err, redis.Nil):
		return 0
	case err != nil:
		return unknownPosition
	}
	return v
}

// SetWriteMarks makes the set keep its callers' read-your-writes marks in rdb under prefix
// (a Redis call giving up after timeout), so every process of the service sees them. Without
// it signed-in callers read the primary. Call it before the store is used concurrently.
func (rs *Set) SetWriteMarks(rdb redis.UniversalClient, prefix string, timeout time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rs.marks.Store(&writeMarks{rdb: rdb, prefix: prefix, ttl: rs.markTTL(), timeout: timeout, log: log})
}

// Stats returns what each replica did, and how many reads replicas could have served went
// to the primary.
func (rs *Set) Stats() ([]store.ReplicaStats, int64) {
	out := make([]store.ReplicaStats, len(rs.replicas))
	for i, r := range rs.replicas {
		st := r.state.Load()
		out[i] = store.ReplicaStats{Name: r.name, Healthy: st.healthy, Lag: st.lag, Reads: r.reads.Load(), Failures: r.failures.Load()}
	}
	return out, rs.primaryReads.Load()
}
