package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/shop/api/api/guard"
)

// twoProcesses starts two services that share their database and Redis, as two processes
// behind a load balancer would. In embedded mode they share a SQLite file and a stand-in
// Redis server the test runs.
func twoProcesses(t *testing.T, b backend, cfg config) (*testEnv, *testEnv) {
	t.Helper()
	base := b.config(t)
	cfg.DatabaseURL, cfg.SQLitePath, cfg.RedisURL, cfg.RedisPrefix = base.DatabaseURL, base.SQLitePath, base.RedisURL, base.RedisPrefix
	if cfg.RedisURL == "" {
		cfg.RedisURL = "redis://" + miniredis.RunT(t).Addr()
		cfg.RedisPrefix = "test:"
	}
	return newTestEnv(t, cfg), newTestEnv(t, cfg)
}

// forEachBackendPair runs test with two processes per backend.
func forEachBackendPair(t *testing.T, cfg config, test func(t *testing.T, a, b *testEnv)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			p, q := twoProcesses(t, b, cfg)
			test(t, p, q)
		})
	}
}

func throttle(r gqlResponse) map[string]any {
	cost, _ := r.Extensions["cost"].(map[string]any)
	th, _ := cost["throttle"].(map[string]any)
	return th
}

func TestRateLimitIsSharedByProcesses(t *testing.T) {
	t.Parallel()
	// 1 + 100 × (1 + 2) = 301 points a request: after a sign-up (510), three fit in 1,500,
	// the fourth does not.
	const query = `{ products(first: 100) { nodes { id name } } }`
	forEachBackendPair(t, config{RateLimit: guard.RateLimit{PointsPerMinute: 1500}}, func(t *testing.T, a, b *testEnv) {
		customer := a.signUp("CUSTOMER") // before the anonymous budget is spent
		prev := 1500.0 - 510
		for i, env := range []*testEnv{a, b, a} {
			r := env.anon().post(query, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("request %d: %v", i+1, r.Errors)
			}
			// Each request takes 301 from what the last one left, and the bucket leaks
			// back 25 points a second.
			got, _ := throttle(r)["currentlyAvailable"].(float64)
			if got > prev-301+50 || got < prev-301-120 {
				t.Errorf("request %d: currentlyAvailable %v after %v", i+1, got, prev)
			}
			prev = got
		}
		r := b.anon().post(query, nil)
		if r.Code() != guard.CodeRateLimited || r.Status != http.StatusTooManyRequests {
			t.Fatalf("fourth request: status %d, errors %v; want 429 RATE_LIMITED", r.Status, r.Errors)
		}
		if len(r.Data) > 0 && string(r.Data) != "null" {
			t.Errorf("refused request returned data %s", r.Data)
		}
		// A signed-in user has a budget of their own, but spends their address's too: at
		// this spent address they wait as well (else an address could sign up account
		// after account for fresh budgets).
		if r := b.as(customer.Token).post(query, nil); r.Code() != guard.CodeRateLimited {
			t.Errorf("signed-in user at a spent address: %v; want RATE_LIMITED", r.Errors)
		}
	})
}

func TestRateLimitSendsRetryAfter(t *testing.T) {
	t.Parallel()
	env := embedded(t, config{RateLimit: guard.RateLimit{PointsPerMinute: 2000}})
	// 1 + 100 × 11 = 1,101 points: the second request in a row does not fit.
	big := `{ products(first: 100) { nodes { id name description stock merchant { id name } price { amount currency } } } }`
	var last *http.Response
	for range 2 {
		last = send(t, http.MethodPost, env.srv.URL+"/graphql", "application/json", `{"query":"`+big+`"}`)
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 429 with Retry-After", last.StatusCode, last.Header.Get("Retry-After"))
	}
}

func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	const logIn = `mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token userErrors { code } } }`
	forEachBackendPair(t, config{RateLimit: guard.RateLimit{LoginFailuresPerAccount: 3, LoginFailuresPerIP: 5}}, func(t *testing.T, a, b *testEnv) {
		victim, other := a.signUp("CUSTOMER"), a.signUp("CUSTOMER")
		attempt := func(env *testEnv, email, password string) gqlResponse {
			return env.anon().post(logIn, map[string]any{"e": email, "p": password})
		}
		for i, env := range []*testEnv{a, b, a} {
			if r := attempt(env, victim.Email, "wrong-password"); len(r.Errors) > 0 {
				t.Fatalf("failure %d: %v", i+1, r.Errors)
			}
		}
		// The account is locked for now, on every process, even with the right password.
		r := attempt(b, victim.Email, "password123")
		if r.Code() != guard.CodeRateLimited || r.Status != http.StatusTooManyRequests {
			t.Fatalf("after 3 failures: status %d, %v; want 429 RATE_LIMITED", r.Status, r.Errors)
		}
		// Other accounts still sign in; two more failures from this address lock the address.
		if r := attempt(a, other.Email, "password123"); len(r.Errors) > 0 {
			t.Fatalf("other account: %v", r.Errors)
		}
		for range 2 {
			attempt(a, other.Email, "wrong-password")
		}
		if r := attempt(b, other.Email, "password123"); r.Code() != guard.CodeRateLimited {
			t.Fatalf("after 5 failures from one address: %v; want RATE_LIMITED", r.Errors)
		}
	})
}

// TestLoginThrottleHoldsUnderConcurrency: the throttle reserves an attempt before the
// password is checked, so 50 parallel wrong passwords for one account across two processes
// get at most the limit of checks, and the rest RATE_LIMITED; a sign-in that succeeds gives
// its attempt back, so signing in correctly never locks an account.
func TestLoginThrottleHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	const logIn = `mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token userErrors { code } } }`
	const limit = 5
	forEachBackendPair(t, config{RateLimit: guard.RateLimit{LoginFailuresPerAccount: limit, LoginFailuresPerIP: 1000}}, func(t *testing.T, a, b *testEnv) {
		regular, victim := a.signUp("CUSTOMER"), a.signUp("CUSTOMER")
		for i := range 3 * limit {
			if r := a.anon().post(logIn, map[string]any{"e": regular.Email, "p": "password123"}); len(r.Errors) > 0 {
				t.Fatalf("correct sign-in %d: %v", i+1, r.Errors)
			}
		}
		var checked, limited atomic.Int32
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				env := []*testEnv{a, b}[i%2]
				r := env.anon().post(logIn, map[string]any{"e": victim.Email, "p": "wrong-password"})
				switch {
				case r.Code() == guard.CodeRateLimited:
					limited.Add(1)
				case len(r.Errors) == 0 && strings.Contains(string(r.Data), "INVALID_CREDENTIALS"):
					checked.Add(1)
				default:
					t.Errorf("status %d, errors %v, data %s", r.Status, r.Errors, r.Data)
				}
			})
		}
		wg.Wait()
		t.Logf("50 parallel wrong passwords: %d checked, %d rate limited", checked.Load(), limited.Load())
		if checked.Load() > limit || checked.Load()+limited.Load() != 50 {
			t.Errorf("%d passwords checked and %d refused, want at most %d checked and the rest refused", checked.Load(), limited.Load(), limit)
		}
	})
}

// An operation that costs nothing (introspection, as GraphiQL's schema fetch) runs under
// the production budget, however often it is sent: redis_rate answers "not allowed" to a
// request for 0 points, which once refused it with 429.
func TestZeroCostOperationsAreNeverRateLimited(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			cfg.RateLimit = guard.DefaultRateLimit
			env := newTestEnv(t, cfg)
			for i := range 3 {
				r := env.anon().post(`{ __schema { queryType { name } } }`, nil)
				if r.Status != http.StatusOK || len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"Query"`) {
					t.Fatalf("request %d: status %d, errors %v, data %s", i+1, r.Status, r.Errors, r.Data)
				}
			}
		})
	}
}

// Anonymous callers have a budget per client address (an IPv6 client's whole /64); signed-in
// callers have their account's and spend their address's too. Behind a trusted proxy, the
// address is the forwarded one.
func TestAnonymousBudgetPerClientAddress(t *testing.T) {
	t.Parallel()
	// 301 points a request: three fit in 1,100 anonymous points, the fourth does not (and two
	// sign-ups of ~510 fit beside them, from the test's own address).
	const query = `{ products(first: 100) { nodes { id name } } }`
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			cfg.RateLimit = guard.RateLimit{PointsPerMinute: 10_000, AnonymousPointsPerMinute: 1100}
			cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
			env := newTestEnv(t, cfg)
			customer, minted := env.signUp("CUSTOMER"), env.signUp("CUSTOMER")
			fromAs := func(addr, token string) gqlResponse {
				body, _ := json.Marshal(map[string]any{"query": query})
				req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", addr)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				return env.do(req)
			}
			from := func(addr string) gqlResponse { return fromAs(addr, "") }
			// Three addresses of one /64 share one budget...
			for i, addr := range []string{"2001:db8:1:1::1", "2001:db8:1:1::2", "2001:db8:1:1:ffff::3"} {
				if r := from(addr); len(r.Errors) > 0 {
					t.Fatalf("request %d from %s: %v", i+1, addr, r.Errors)
				}
			}
			if r := from("2001:db8:1:1::4"); r.Code() != guard.CodeRateLimited {
				t.Fatalf("fourth request from the same /64: %v; want RATE_LIMITED", r.Errors)
			}
			// ...while the next /64, an IPv4 address and a signed-in user have their own.
			for _, addr := range []string{"2001:db8:1:2::1", "203.0.113.9"} {
				if r := from(addr); len(r.Errors) > 0 {
					t.Errorf("request from %s: %v", addr, r.Errors)
				}
			}
			// A signed-in caller is charged to their account and to their address: a second
			// account at that address finds the address's budget spent by the first, though
			// its own is untouched.
			for i := range 3 {
				if r := fromAs("198.51.100.7", customer.Token); len(r.Errors) > 0 {
					t.Fatalf("signed-in request %d: %v", i+1, r.Errors)
				}
			}
			if r := fromAs("198.51.100.7", minted.Token); r.Code() != guard.CodeRateLimited {
				t.Fatalf("a fresh account at a spent address: %v; want RATE_LIMITED", r.Errors)
			}
		})
	}
}

// costCharges counts the rate-limit scripts env's process runs in Redis for cost buckets.
type costCharges struct{ n atomic.Int64 }

func (*costCharges) DialHook(next redis.DialHook) redis.DialHook { return next }
func (*costCharges) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c *costCharges) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if name := cmd.Name(); (name == "evalsha" || name == "eval") && !redis.HasErrorPrefix(err, "NOSCRIPT") &&
			strings.Contains(fmt.Sprint(cmd.Args()...), ":cost:") {
			c.n.Add(1)
		}
		return err
	}
}

// A caller far from their budget's end is charged in leases: after its first two operations
// a process asks Redis nothing until its lease is spent, the budget it reports still falls by
// each operation's cost, and the other process sees what the lease took.
func TestRateLimitLeases(t *testing.T) {
	t.Parallel()
	// A 60,000-point bucket leaks 1,000 points a second; a lease is 600 of them.
	forEachBackendPair(t, config{RateLimit: guard.RateLimit{PointsPerMinute: 60_000}}, func(t *testing.T, a, b *testEnv) {
		charges := &costCharges{}
		a.svc.Redis.AddHook(charges)
		const query = `{ products(first: 1) { nodes { id } } }`
		costOf := func(r gqlResponse) (cost, available float64) {
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %v", r.Errors)
			}
			c, _ := r.Extensions["cost"].(map[string]any)
			cost, _ = c["requested"].(float64)
			available, _ = throttle(r)["currentlyAvailable"].(float64)
			return cost, available
		}
		prev := 60_000.0
		start := time.Now()
		last := start
		for i := range 30 {
			sent := time.Now()
			cost, got := costOf(a.anon().post(query, nil))
			// What Redis reports grows by what the bucket leaked since the last charge.
			leaked := math.Ceil(time.Since(last).Seconds() * 1000)
			last = sent
			if got > prev-cost+leaked+2 || got < prev-cost-2 { // redis_rate rounds down
				t.Errorf("request %d of cost %v: currentlyAvailable %v after %v", i+1, cost, got, prev)
			}
			prev = got
		}
		if n := charges.n.Load(); n != 2 {
			t.Errorf("30 operations charged Redis %d times; want 2 (the first, then one with a lease)", n)
		}
		// b charges Redis and finds the lease a holds taken from the shared bucket, less what
		// the bucket leaked back meanwhile (a lease is 0.6 s of it).
		cost, got := costOf(b.anon().post(query, nil))
		leaked := math.Ceil(time.Since(start).Seconds() * 1000)
		if got > 60_000-600-3*cost+leaked+2 {
			t.Errorf("the other process sees %v points left %v after a's first charge: a's lease of 600 was not taken from Redis", got, time.Since(start))
		}
	})
}
