package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/api/observe"
	"github.com/shop/api/auth"
)

// RateLimit configures the cost-based rate limit and the sign-in throttle. Both are kept in
// Redis, so the limits hold across every process of the service. A zero field turns its
// limit off; server.go sets the production defaults.
type RateLimit struct {
	// PointsPerMinute is how many cost points (see costModel) a signed-in caller may spend
	// per minute, and an anonymous one too unless AnonymousPointsPerMinute is set. It is also
	// the largest burst, and must be at least Limits.MaxCost for the costliest operation to be
	// possible at all.
	PointsPerMinute int
	// AnonymousPointsPerMinute is the budget of all anonymous callers at one client address
	// (an IPv6 client's /64) together; 0 means PointsPerMinute.
	AnonymousPointsPerMinute int
	// LoginFailuresPerAccount and LoginFailuresPerIP are how many failed logIn attempts are
	// allowed per LoginWindow for one email address and from one client address.
	LoginFailuresPerAccount int
	LoginFailuresPerIP      int
	// LoginWindow is the period of the sign-in throttle; 0 means 15 minutes.
	LoginWindow time.Duration
}

// DefaultRateLimit is the production budget server.go applies where the environment is
// silent; the zero RateLimit turns every limit off. README's "Rate limits" section gives
// the reasoning behind each number: one person signed in, a carrier-grade NAT's worth of
// shoppers on one anonymous address.
var DefaultRateLimit = RateLimit{PointsPerMinute: 30_000, AnonymousPointsPerMinute: 300_000,
	LoginFailuresPerAccount: 10, LoginFailuresPerIP: 100, LoginWindow: 15 * time.Minute}

func (r RateLimit) withDefaults() RateLimit {
	if r.AnonymousPointsPerMinute <= 0 {
		r.AnonymousPointsPerMinute = r.PointsPerMinute
	}
	if r.LoginWindow <= 0 {
		r.LoginWindow = 15 * time.Minute
	}
	return r
}

// throttleStatus is a caller's rate-limit budget, in cost points.
type throttleStatus struct {
	MaximumAvailable   int     `json:"maximumAvailable"`
	CurrentlyAvailable int     `json:"currentlyAvailable"`
	RestoreRate        float64 `json:"restoreRate"` // points per second
}

// Budget charges operations to their caller's rate-limit bucket and throttles failed
// sign-ins, in Redis so that the limits hold across every process of the service.
type Budget struct {
	cfg     RateLimit
	limiter *redis_rate.Limiter
	rdb     redis.UniversalClient
	leases  leases
	prefix  string
	metrics *observe.Metrics
}

// NewBudget returns the budgets of cfg kept in rdb under prefix.
func NewBudget(rdb redis.UniversalClient, prefix string, cfg RateLimit, m *observe.Metrics) *Budget {
	return &Budget{cfg: cfg.withDefaults(), limiter: redis_rate.NewLimiter(rdb), rdb: rdb, prefix: prefix, metrics: m}
}

// callerBucket names the rate-limit bucket of the caller and its budget per minute: their
// user ID, or, when anonymous, their client address.
func (s *Budget) callerBucket(ctx context.Context) (key string, perMinute int) {
	if v := auth.ViewerFrom(ctx); !v.Anonymous() {
		return "user:" + strconv.FormatInt(v.UserID, 10), s.cfg.PointsPerMinute
	}
	return s.addressBucket(ctx)
}

// addressBucket is the budget of the caller's client address, which anonymous callers spend
// alone and signed-in ones beside their account's.
func (s *Budget) addressBucket(ctx context.Context) (key string, perMinute int) {
	return "ip:" + addressKey(ClientIP(ctx)), s.cfg.AnonymousPointsPerMinute
}

// ClientAddress is the client address of ctx as the limits count it: the address, or for
// IPv6 its /64.
func ClientAddress(ctx context.Context) string { return addressKey(ClientIP(ctx)) }

// addressKey is what the budgets of one client address are kept under: the address, or for
// IPv6 its /64, since one device or home network gets a whole /64 and picks addresses from
// it at will.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() {
		return ip
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// chargeCost takes cost points from the caller's bucket, from this process's lease of it
// where it can (see leases), and for a signed-in caller from their address's bucket too: an
// address that signs up account after account gets no fresh budget with each, only the
// address's. It returns what is left of the caller's own bucket, or a RATE_LIMITED error
// (and the request's HTTP status becomes 429 with Retry-After). When Redis cannot be asked
// the operation is allowed: a Redis outage must not stop the shop.
func (s *Budget) chargeCost(ctx context.Context, cost int) (*throttleStatus, *gqlerror.Error) {
	key, perMinute := s.callerBucket(ctx)
	status, err := s.charge(ctx, key, perMinute, cost)
	if err != nil || strings.HasPrefix(key, "ip:") {
		return status, err
	}
	key, perMinute = s.addressBucket(ctx)
	if _, err := s.charge(ctx, key, perMinute, cost); err != nil {
		return status, err
	}
	return status, nil
}

// charge takes cost points from bucket key of perMinute points (none: no limit).
func (s *Budget) charge(ctx context.Context, key string, perMinute, cost int) (*throttleStatus, *gqlerror.Error) {
	if perMinute <= 0 {
		return nil, nil
	}
	limit := redis_rate.PerMinute(perMinute)
	status := func(available int) *throttleStatus {
		return &throttleStatus{MaximumAvailable: limit.Burst, CurrentlyAvailable: available,
			RestoreRate: float64(limit.Rate) / limit.Period.Seconds()}
	}
	bucket, now := s.prefix+"cost:"+key, time.Now()
	if available, ok := s.leases.spend(bucket, cost, now); ok {
		return status(available), nil
	}
	c := s.leases.plan(bucket, cost, limit.Burst/leaseShare, limit.Burst/leaseFloor, now)
	res, err := s.limiter.AllowN(ctx, bucket, limit, c.points(cost))
	if err == nil && res.Allowed == 0 && c.lease > 0 {
		// Other processes spent what this one last saw: ask for the cost alone.
		c.lease = 0
		res, err = s.limiter.AllowN(ctx, bucket, limit, c.points(cost))
	}
	if err != nil {
		s.leases.refused(c, -1)
		s.rateLimitUnavailable(ctx, err)
		return nil, nil
	}
	// redis_rate answers Allowed 0 for a request of 0 points: such an operation costs
	// nothing and is never refused.
	if res.Allowed == 0 && c.points(cost) > 0 {
		s.leases.refused(c, res.Remaining)
		retry := res.RetryAfter
		if retry < 0 {
			// The cost exceeds the whole bucket: it can never be allowed.
			retry = limit.Period
		}
		available := res.Remaining + c.leftover
		return status(available), s.rateLimited(ctx, "cost", retry, "rate limit exceeded: the operation costs %d points and %d are available; retry in %s",
			cost, available, retry.Round(time.Second))
	}
	return status(s.leases.paid(c, res.Remaining, now)), nil
}

// rateLimited returns a RATE_LIMITED error and marks the HTTP response 429 with Retry-After.
func (s *Budget) rateLimited(ctx context.Context, limit string, retry time.Duration, format string, args ...any) *gqlerror.Error {
	secs := int(math.Ceil(retry.Seconds()))
	secs = max(secs, 1)
	markRateLimited(ctx, secs)
	s.metrics.RateLimited(limit)
	err := gqlerror.Errorf(format, args...)
	errcode.Set(err, CodeRateLimited)
	err.Extensions["retryAfter"] = secs
	return err
}

func (s *Budget) rateLimitUnavailable(ctx context.Context, err error) {
	s.metrics.Degraded(ctx, "rate_limit", err)
}

// loginBucket is one budget of failed sign-ins.
type loginBucket struct {
	key   string
	limit redis_rate.Limit
}

// loginBuckets are the budgets a sign-in as email from ctx's address spends.
func (s *Budget) loginBuckets(ctx context.Context, email string) []loginBucket {
	rl := s.cfg
	var bs []loginBucket
	if rl.LoginFailuresPerAccount > 0 {
		// Hashed: the key must not carry the address itself.
		sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
		bs = append(bs, loginBucket{s.prefix + "login:account:" + hex.EncodeToString(sum[:12]),
			redis_rate.Limit{Rate: rl.LoginFailuresPerAccount, Burst: rl.LoginFailuresPerAccount, Period: rl.LoginWindow}})
	}
	if rl.LoginFailuresPerIP > 0 {
		bs = append(bs, loginBucket{s.prefix + "login:ip:" + addressKey(ClientIP(ctx)),
			redis_rate.Limit{Rate: rl.LoginFailuresPerIP, Burst: rl.LoginFailuresPerIP, Period: rl.LoginWindow}})
	}
	return bs
}

// ReserveLogin spends one attempt of both sign-in budgets of email (per account, and per
// client address) before the password is checked, and returns RATE_LIMITED when either is
// spent: fifty parallel wrong passwords get at most the budget's worth of checks, where a
// read before the check and a charge after it let all fifty through. refund gives the
// attempt back, for a sign-in that succeeded. When Redis cannot be asked the sign-in is
// allowed.
func (s *Budget) ReserveLogin(ctx context.Context, email string) (refund func(), err error) {
	buckets := s.loginBuckets(ctx, email)
	spent := make([]loginBucket, 0, len(buckets))
	refund = func() {
		for _, b := range spent {
			if err := giveBack.Run(ctx, s.rdb, []string{"rate:" + b.key}, b.limit.Period.Seconds()/float64(b.limit.Rate)).Err(); err != nil {
				s.rateLimitUnavailable(ctx, err)
			}
		}
	}
	for _, b := range buckets {
		res, err := s.limiter.AllowN(ctx, b.key, b.limit, 1)
		if err != nil {
			s.rateLimitUnavailable(ctx, err)
			continue
		}
		if res.Allowed == 0 {
			refund() // the buckets spent before this one
			retry := b.limit.Period / time.Duration(b.limit.Rate)
			return func() {}, s.rateLimited(ctx, "login", retry, "too many failed sign-in attempts; retry in %s", retry.Round(time.Second))
		}
		spent = append(spent, b)
	}
	return refund, nil
}

// giveBack returns one attempt to a redis_rate (GCRA) bucket: its key ("rate:" and the
// limiter's key) holds the bucket's
// theoretical arrival time in seconds since 2017, which moves back one emission interval
// (ARGV[1], seconds). A time no longer ahead of now is a full bucket: the key goes.
// redis_rate's own AllowN with a negative cost cannot do it: it never writes a time that
// is not ahead of now, so the last attempt given back would stay spent.
var giveBack = redis.NewScript(`
local tat = tonumber(redis.call("GET", KEYS[1]))
if not tat then return 0 end
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local back = tat - tonumber(ARGV[1])
if back <= now then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], back, "EX", math.ceil(back - now))
end
return 1
`)
