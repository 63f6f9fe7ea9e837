// Package storetest gives tests real backing services: a fresh PostgreSQL database, a Redis
// namespace, or an embedded SQLite file. Tests that need a service which is not configured
// skip with a one-line reason, unless SHOP_TEST_REQUIRE_SERVICES=1 (as in CI) turns the skip
// into a failure.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Require skips the test with reason, or fails it when services are required.
func Require(tb testing.TB, ok bool, reason string) {
	tb.Helper()
	if ok {
		return
	}
	if os.Getenv("SHOP_TEST_REQUIRE_SERVICES") == "1" {
		tb.Fatalf("required in this run (SHOP_TEST_REQUIRE_SERVICES=1): %s", reason)
	}
	tb.Skip(reason)
}

// RequireCommand skips (or fails) unless the named programs are on PATH.
func RequireCommand(tb testing.TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		_, err := exec.LookPath(n)
		Require(tb, err == nil, n+" is not installed")
	}
}

// Name returns a short random name for test resources.
func Name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// PostgresURL returns the URL of a new, empty PostgreSQL database, dropped when the test
// ends. It needs DATABASE_URL to point at a server where it may create databases.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("DATABASE_URL")
	Require(tb, base != "", "DATABASE_URL is not set: PostgreSQL tests skipped")
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("DATABASE_URL: %v", err)
	}
	name := Name("test_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	Require(tb, err == nil, fmt.Sprintf("PostgreSQL at DATABASE_URL is unreachable: %v", err))
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("drop database %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// SQLitePath returns the path of a new embedded database file in the test's temp dir.
func SQLitePath(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "shop.db")
}

// RedisURL returns REDIS_URL after checking the server answers.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("REDIS_URL")
	Require(tb, u != "", "REDIS_URL is not set: Redis tests skipped")
	opts, err := redis.ParseURL(u)
	if err != nil {
		tb.Fatalf("REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = rdb.Ping(ctx).Err()
	Require(tb, err == nil, fmt.Sprintf("Redis at REDIS_URL is unreachable: %v", err))
	return u
}

// RedisPrefix returns a fresh key namespace; its keys are deleted when the test ends.
func RedisPrefix(tb testing.TB, redisURL string) string {
	tb.Helper()
	prefix := Name("test:") + ":"
	if redisURL == "" {
		return prefix
	}
	tb.Cleanup(func() {
		opts, err := redis.ParseURL(redisURL)
		if err != nil {
			return
		}
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return strings.TrimSuffix(prefix, ":") + ":"
}
