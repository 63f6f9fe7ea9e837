// Package store is the shop's domain: its types, its rules, and their persistence in
// PostgreSQL (production) or an embedded pure-Go SQLite file (development).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/shop/api/store/internal/handle"
)

// Store reads and writes the shop's data. It is safe for concurrent use.
type Store struct {
	db           *gorm.DB
	replicaDB    *gorm.DB     // the reads replicas may serve (db when there are none)
	replicas     ReadReplicas // nil: no replicas
	now          func() time.Time
	passwordCost int
	sink         EventSink
	cache        EntityCache // nil: none
	namespace    string
	statements   atomic.Int64 // SQL statements issued, see countStatements
	in           instrumentation
	reservation  time.Duration
	jobs         Jobs
}

// Config says where the data lives and how the store runs.
type Config struct {
	// DatabaseURL is a postgres:// URL; empty selects the embedded SQLite file at SQLitePath.
	DatabaseURL string
	// SQLitePath is the embedded database file; empty means "shop.db" (":memory:" is not
	// supported: use a temp file).
	SQLitePath string
	// MaxConns caps the PostgreSQL connection pool; 0 means 20. (The embedded SQLite store
	// always uses one connection.)
	MaxConns int
	// PasswordCost is the bcrypt cost of new password hashes; 0 means bcrypt's default.
	// Tests lower it to keep sign-ups fast.
	PasswordCost int
	// Cache, when set, serves users and products by ID and is invalidated on every write.
	// SetCache sets it after Open, e.g. under a prefix made from Namespace.
	Cache EntityCache
	// StatementTimeout bounds every SQL statement whose context has no earlier deadline;
	// 0 means 5s.
	StatementTimeout time.Duration
	// Tracer, when set, gives every SQL statement a client span ("sql SELECT" and the like)
	// with the statement's text, placeholders only; nil means no spans.
	Tracer trace.TracerProvider
	// Replicas, when set, routes the reads of loaders and lists to streaming replicas of
	// DatabaseURL (store/replicas); nil: the primary serves every read. Open starts it and
	// Close closes it (Open too, when it fails). Refused with the embedded SQLite store.
	Replicas ReadReplicas
	// ReservationTTL is how long a placed order holds its stock unpaid before it expires
	// (ORDER_RESERVATION_TTL); 0: orders never expire.
	ReservationTTL time.Duration
	// Currency is the shop's currency code (CURRENCY), every Money's; empty means
	// DefaultCurrency.
	Currency string
}

// withDefaults fills in the zero fields that have a default.
func (c Config) withDefaults() Config {
	if c.SQLitePath == "" {
		c.SQLitePath = "shop.db"
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 20
	}
	if c.PasswordCost == 0 {
		c.PasswordCost = bcrypt.DefaultCost
	}
	if c.StatementTimeout <= 0 {
		c.StatementTimeout = 5 * time.Second
	}
	if c.Currency == "" {
		c.Currency = DefaultCurrency
	}
	return c
}

// Open connects to the database and applies pending migrations. Every statement the store
// sends from then on has cfg's deadline and, with a tracer, a span.
func Open(ctx context.Context, cfg Config) (_ *Store, err error) {
	cfg = cfg.withDefaults()
	currency.Store(&cfg.Currency)
	if cfg.Replicas != nil {
		defer func() {
			if err != nil {
				cfg.Replicas.Close()
			}
		}()
	}
	if cfg.Replicas != nil && cfg.DatabaseURL == "" {
		return nil, errors.New("read replicas (DATABASE_REPLICA_URLS) need PostgreSQL (DATABASE_URL): the embedded SQLite store has none")
	}
	var dialector gorm.Dialector
	if cfg.DatabaseURL != "" {
		dialector = postgres.Open(cfg.DatabaseURL)
	} else {
		if err := registerSQLiteFunctions(); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		// One connection: SQLite has one writer, and a single connection turns lock
		// contention into queueing instead of SQLITE_BUSY errors.
		dialector = sqlite.Open("file:" + cfg.SQLitePath + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if cfg.DatabaseURL == "" {
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(cfg.MaxConns)
		sqlDB.SetMaxIdleConns(cfg.MaxConns)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	s := &Store{
		db:           db,
		replicaDB:    db,
		now:          func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		passwordCost: cfg.PasswordCost,
		cache:        cfg.Cache,
		reservation:  cfg.ReservationTTL,
	}
	in := instrumentation{timeout: cfg.StatementTimeout, system: "sqlite", count: s.countStatement}
	if s.Postgres() {
		in.system = "postgresql"
	}
	if cfg.Tracer != nil {
		in.tracer = cfg.Tracer.Tracer("github.com/shop/api/store")
	}
	s.in = in
	if err := in.register(db); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	if cfg.Replicas != nil {
		if err := cfg.Replicas.Start(ctx, sqlDB); err != nil {
			_ = sqlDB.Close()
			return nil, err
		}
		err := db.Use(dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.New(postgres.Config{Conn: cfg.Replicas})}}))
		if err != nil {
			_ = sqlDB.Close()
			return nil, fmt.Errorf("open replicas: %w", err)
		}
		s.replicas = cfg.Replicas
		// Every statement goes to the primary unless it asks for a replica (s.reads).
		s.db = db.Clauses(dbresolver.Write).Session(&gorm.Session{})
		s.replicaDB = db.Clauses(dbresolver.Read).Session(&gorm.Session{})
	}
	if err := s.Migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.db.WithContext(ctx).Raw("SELECT namespace FROM service_namespace WHERE id = 1").Scan(&s.namespace).Error; err != nil || s.namespace == "" {
		_ = s.Close()
		return nil, fmt.Errorf("read namespace: %v", err)
	}
	return s, nil
}

// Namespace returns a random name chosen once for this database: every process that opens
// it, under whatever URL, gets the same one, and another database a different one. Shared
// infrastructure (Redis keys and channels) is namespaced with it.
func (s *Store) Namespace() string { return s.namespace }

// SetCache makes the store read users and products through c (store/cache), and invalidate
// them there after its writes. Call it before the store is used concurrently.
func (s *Store) SetCache(c EntityCache) { s.cache = c }

// Internal returns the store's database handle for store/storetest; no package outside
// store/ can open it.
func (s *Store) Internal() handle.Handle { return handle.New(s.db) }

// Postgres reports whether the store runs on PostgreSQL rather than the embedded SQLite.
func (s *Store) Postgres() bool { return s.db.Dialector.Name() == "postgres" }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close stops the replicas' probe and releases the connection pools.
func (s *Store) Close() error {
	if s.replicas != nil {
		s.replicas.Close()
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// translate turns driver errors into coded ones and wraps the rest with the operation's name.
func translate(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return newError(CodeNotFound, "not found")
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return newError(CodeConflict, "already exists")
	}
	var coded *Error
	var codedList Errors
	if errors.As(err, &coded) || errors.As(err, &codedList) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// likePattern escapes s for a LIKE pattern matching it anywhere, case-insensitively
// once both sides are lowered.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + strings.ToLower(r.Replace(s)) + "%"
}

// DB returns the database/sql handle under the store, for the job queue, whose jobs are
// written in the store's own transactions (see Jobs).
func (s *Store) DB() (*sql.DB, error) { return s.db.DB() }
