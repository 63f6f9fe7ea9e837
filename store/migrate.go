package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrations are applied in order and never edited once released: add a new one instead.
// Placeholders: {{id}} is an auto-increment primary key, {{time}} a timestamp with time zone,
// {{random}} a random 12-digit hex string.
var migrations = []struct{ id, sql string }{
	{"0001_users", `
CREATE TABLE users (
  id {{id}},
  email TEXT NOT NULL,
  email_key TEXT NOT NULL,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('CUSTOMER', 'MERCHANT', 'ADMIN')),
  password_hash TEXT NOT NULL,
  created_at {{time}} NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email_key);`},
	{"0002_products", `
CREATE TABLE products (
  id {{id}},
  merchant_id BIGINT NOT NULL REFERENCES users (id),
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  price BIGINT NOT NULL CHECK (price >= 0),
  stock INTEGER NOT NULL CHECK (stock >= 0),
  created_at {{time}} NOT NULL,
  updated_at {{time}} NOT NULL
);
CREATE INDEX products_merchant ON products (merchant_id, id);
CREATE INDEX products_price ON products (price, id);
CREATE INDEX products_name ON products (name, id);`},
	{"0003_orders", `
CREATE TABLE orders (
  id {{id}},
  customer_id BIGINT NOT NULL REFERENCES users (id),
  status TEXT NOT NULL CHECK (status IN ('PENDING', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
  total BIGINT NOT NULL,
  created_at {{time}} NOT NULL,
  updated_at {{time}} NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, id);
CREATE INDEX orders_customer_status ON orders (customer_id, status, id);
CREATE INDEX orders_status ON orders (status, id);
CREATE TABLE order_items (
  id {{id}},
  order_id BIGINT NOT NULL REFERENCES orders (id),
  position INTEGER NOT NULL,
  product_id BIGINT NOT NULL REFERENCES products (id),
  merchant_id BIGINT NOT NULL REFERENCES users (id),
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  unit_price BIGINT NOT NULL
);
CREATE UNIQUE INDEX order_items_order ON order_items (order_id, position);
CREATE INDEX order_items_merchant ON order_items (merchant_id, order_id);
CREATE INDEX order_items_product ON order_items (product_id);
CREATE TABLE order_status_events (
  id {{id}},
  order_id BIGINT NOT NULL REFERENCES orders (id),
  status TEXT NOT NULL,
  previous_status TEXT,
  note TEXT,
  at {{time}} NOT NULL,
  published_at {{time}}
);
CREATE INDEX order_status_events_order ON order_status_events (order_id, id);
CREATE INDEX order_status_events_unpublished ON order_status_events (id) WHERE published_at IS NULL;
CREATE TABLE idempotency_keys (
  user_id BIGINT NOT NULL REFERENCES users (id),
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  order_id BIGINT REFERENCES orders (id),
  created_at {{time}} NOT NULL,
  PRIMARY KEY (user_id, key)
);`},
	{"0004_namespace", `
CREATE TABLE service_namespace (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  namespace TEXT NOT NULL
);
INSERT INTO service_namespace (id, namespace) VALUES (1, {{random}});`},
	// Order lists sort by (created_at, id), not id alone.
	{"0005_orders_by_creation", `
CREATE INDEX orders_created ON orders (created_at, id);
CREATE INDEX orders_customer_created ON orders (customer_id, created_at, id);
CREATE INDEX orders_customer_status_created ON orders (customer_id, status, created_at, id);
CREATE INDEX orders_status_created ON orders (status, created_at, id);
DROP INDEX orders_customer;
DROP INDEX orders_customer_status;
DROP INDEX orders_status;`},
	// Checkout: reservations that expire and payments through a provider. At most one
	// PENDING payment an order, and an idempotency key names one payment of its order.
	{"0006_checkout", `
ALTER TABLE orders ADD COLUMN reserved_until {{time}};
CREATE TABLE payments (
  id {{id}},
  order_id BIGINT NOT NULL REFERENCES orders (id),
  customer_id BIGINT NOT NULL REFERENCES users (id),
  idempotency_key TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'CANCELED', 'REFUNDED')),
  provider TEXT NOT NULL,
  provider_reference TEXT,
  client_secret TEXT,
  failure_reason TEXT,
  amount BIGINT NOT NULL,
  refund_requested_at {{time}},
  created_at {{time}} NOT NULL,
  updated_at {{time}} NOT NULL
);
CREATE UNIQUE INDEX payments_order_key ON payments (order_id, idempotency_key);
CREATE UNIQUE INDEX payments_order_pending ON payments (order_id) WHERE status = 'PENDING';
CREATE UNIQUE INDEX payments_provider_reference ON payments (provider, provider_reference);
CREATE TABLE payment_provider_events (
  provider TEXT NOT NULL,
  event_id TEXT NOT NULL,
  received_at {{time}} NOT NULL,
  PRIMARY KEY (provider, event_id)
);`},
	// The stock ledger (every product opens with a CREATED movement of its stock, at its last
	// change), low-stock alerts (an outbox like order_status_events) and shipments.
	{"0007_stock_ledger", `
ALTER TABLE products ADD COLUMN low_stock_threshold INTEGER NOT NULL DEFAULT 0;
CREATE TABLE stock_movements (
  id {{id}},
  product_id BIGINT NOT NULL REFERENCES products (id),
  delta INTEGER NOT NULL,
  stock_after INTEGER NOT NULL CHECK (stock_after >= 0),
  reason TEXT NOT NULL CHECK (reason IN ('CREATED', 'ORDER_PLACED', 'ORDER_CANCELLED', 'RESERVATION_EXPIRED', 'ADJUSTMENT', 'PRODUCT_UPDATE')),
  note TEXT,
  order_id BIGINT REFERENCES orders (id),
  at {{time}} NOT NULL
);
CREATE INDEX stock_movements_product ON stock_movements (product_id, id);
INSERT INTO stock_movements (product_id, delta, stock_after, reason, at)
  SELECT id, stock, stock, 'CREATED', updated_at FROM products ORDER BY id;
CREATE TABLE low_stock_alerts (
  id {{id}},
  product_id BIGINT NOT NULL REFERENCES products (id),
  merchant_id BIGINT NOT NULL REFERENCES users (id),
  stock INTEGER NOT NULL,
  at {{time}} NOT NULL,
  published_at {{time}}
);
CREATE INDEX low_stock_alerts_unpublished ON low_stock_alerts (id) WHERE published_at IS NULL;
CREATE INDEX low_stock_alerts_at ON low_stock_alerts (at);
CREATE TABLE shipments (
  id {{id}},
  order_id BIGINT NOT NULL REFERENCES orders (id),
  merchant_id BIGINT NOT NULL REFERENCES users (id),
  carrier TEXT NOT NULL,
  tracking_number TEXT NOT NULL,
  tracking_url TEXT,
  shipped_at {{time}} NOT NULL,
  delivered_at {{time}}
);
CREATE INDEX shipments_order ON shipments (order_id, id);
CREATE TABLE shipment_items (
  shipment_id BIGINT NOT NULL REFERENCES shipments (id),
  order_id BIGINT NOT NULL REFERENCES orders (id),
  position INTEGER NOT NULL,
  PRIMARY KEY (shipment_id, position)
);
CREATE UNIQUE INDEX shipment_items_line ON shipment_items (order_id, position);`},
	// Changing a password moves its account's token version on: tokens of an earlier one are
	// refused. tokens_revoked_at lets every process find recent changes with one indexed read.
	{"0008_token_revocation", `
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN tokens_revoked_at {{time}};
CREATE INDEX users_tokens_revoked ON users (tokens_revoked_at) WHERE tokens_revoked_at IS NOT NULL;`},
}

// Migrate applies the migrations the database lacks. It is safe to run from several
// processes at once on PostgreSQL: an advisory lock serialises them.
func (s *Store) Migrate(ctx context.Context) error {
	db := s.db.WithContext(context.WithValue(ctx, untimed{}, true))
	if s.Postgres() {
		// A session-level advisory lock needs one connection for lock, migrate and unlock.
		return db.Connection(func(conn *gorm.DB) error {
			if err := conn.Exec("SELECT pg_advisory_lock(7266001)").Error; err != nil {
				return fmt.Errorf("migrate: lock: %w", err)
			}
			defer conn.Exec("SELECT pg_advisory_unlock(7266001)")
			return s.migrate(conn)
		})
	}
	return s.migrate(db)
}

func (s *Store) migrate(db *gorm.DB) error {
	idType, timeType, random := "INTEGER PRIMARY KEY AUTOINCREMENT", "DATETIME", "lower(hex(randomblob(6)))"
	if s.Postgres() {
		idType, timeType = "BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ"
		random = "substr(md5(random()::text || clock_timestamp()::text), 1, 12)"
	}
	list := make([]*gormigrate.Migration, len(migrations))
	for i, m := range migrations {
		sql := strings.NewReplacer("{{id}}", idType, "{{time}}", timeType, "{{random}}", random).Replace(m.sql)
		list[i] = &gormigrate.Migration{
			ID: m.id,
			Migrate: func(tx *gorm.DB) error {
				for _, stmt := range strings.Split(sql, ";") {
					if stmt = strings.TrimSpace(stmt); stmt != "" {
						if err := tx.Exec(stmt).Error; err != nil {
							return fmt.Errorf("%s: %w", m.id, err)
						}
					}
				}
				return nil
			},
		}
	}
	opts := *gormigrate.DefaultOptions
	opts.TableName = "schema_migrations"
	opts.UseTransaction = true
	if err := gormigrate.New(db, &opts, list).Migrate(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
