package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/go-redis/redis_rate/v10"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/auth"
	"github.com/shop/api/graph/model"
)

// CodeRateLimited is the code of an operation refused because its caller spent their budget.
const CodeRateLimited = "RATE_LIMITED"

// RateLimit configures the cost-based rate limit and the sign-in throttle. Both are kept in
// Redis, so the limits hold across every process of the service. A zero field turns its
// limit off; server.go sets the production defaults.
type RateLimit struct {
	// PointsPerMinute is how many cost points (see costModel) a caller, a user or, when
	// anonymous, an IP address, may spend per minute. It is also the largest burst, and must
	// be at least Limits.MaxCost for the costliest operation to be possible at all.
	PointsPerMinute int
	// LoginFailuresPerAccount and LoginFailuresPerIP are how many failed logIn attempts are
	// allowed per LoginWindow for one email address and from one IP address.
	LoginFailuresPerAccount int
	LoginFailuresPerIP      int
	// LoginWindow is the period of the sign-in throttle; 0 means 15 minutes.
	LoginWindow time.Duration
	// TrustForwardedFor takes an anonymous caller's address from the last X-Forwarded-For
	// entry, which the service's own reverse proxy appended. Only set it behind such a proxy.
	TrustForwardedFor bool
}

// throttleStatus is a caller's rate-limit budget, in cost points.
type throttleStatus struct {
	MaximumAvailable   int     `json:"maximumAvailable"`
	CurrentlyAvailable int     `json:"currentlyAvailable"`
	RestoreRate        float64 `json:"restoreRate"` // points per second
}

// limiter returns the shared Redis limiter (a GCRA leaky bucket).
func (s *Service) limiter() *redis_rate.Limiter {
	return s.state().limiter
}

// callerKey names the rate-limit bucket of the caller: their user ID, or their IP address.
func callerKey(ctx context.Context) string {
	if v := auth.ViewerFrom(ctx); !v.Anonymous() {
		return "user:" + strconv.FormatInt(v.UserID, 10)
	}
	return "ip:" + ClientIP(ctx)
}

// chargeCost takes cost points from the caller's bucket. It returns what is left, or a
// RATE_LIMITED error (and the request's HTTP status becomes 429 with Retry-After). When
// Redis cannot be asked the operation is allowed: a Redis outage must not stop the shop.
func (s *Service) chargeCost(ctx context.Context, cost int) (*throttleStatus, *gqlerror.Error) {
	perMinute := s.cfg.RateLimit.PointsPerMinute
	if perMinute <= 0 {
		return nil, nil
	}
	limit := redis_rate.PerMinute(perMinute)
	res, err := s.limiter().AllowN(ctx, s.cfg.RedisPrefix+"cost:"+callerKey(ctx), limit, cost)
	if err != nil {
		s.rateLimitUnavailable(ctx, err)
		return nil, nil
	}
	status := &throttleStatus{
		MaximumAvailable:   limit.Burst,
		CurrentlyAvailable: res.Remaining,
		RestoreRate:        float64(limit.Rate) / limit.Period.Seconds(),
	}
	if res.Allowed == 0 {
		retry := res.RetryAfter
		if retry < 0 {
			// The cost exceeds the whole bucket: it can never be allowed.
			retry = limit.Period
		}
		return status, s.rateLimited(ctx, "cost", retry, "rate limit exceeded: the operation costs %d points and %d are available; retry in %s",
			cost, res.Remaining, retry.Round(time.Second))
	}
	return status, nil
}

// rateLimited returns a RATE_LIMITED error and marks the HTTP response 429 with Retry-After.
func (s *Service) rateLimited(ctx context.Context, limit string, retry time.Duration, format string, args ...any) *gqlerror.Error {
	secs := int(math.Ceil(retry.Seconds()))
	secs = max(secs, 1)
	markRateLimited(ctx, secs)
	s.state().metrics.rateLimited.WithLabelValues(limit).Inc()
	err := gqlerror.Errorf(format, args...)
	errcode.Set(err, CodeRateLimited)
	err.Extensions["retryAfter"] = secs
	return err
}

func (s *Service) rateLimitUnavailable(ctx context.Context, err error) {
	s.degraded(ctx, "rate_limit", err)
}

// addLoginThrottle limits failed logIn attempts per account and per IP address. A logIn
// while either budget is spent is refused with RATE_LIMITED before the password is checked;
// each INVALID_CREDENTIALS answer spends one attempt of both.
func (s *Service) addLoginThrottle(srv *handler.Server) {
	rl := s.cfg.RateLimit
	if rl.LoginFailuresPerAccount <= 0 && rl.LoginFailuresPerIP <= 0 {
		return
	}
	window := rl.LoginWindow
	if window <= 0 {
		window = 15 * time.Minute
	}
	type bucket struct {
		key   string
		limit redis_rate.Limit
	}
	buckets := func(ctx context.Context, email string) []bucket {
		var bs []bucket
		if rl.LoginFailuresPerAccount > 0 {
			// Hashed: the key must not carry the address itself.
			sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
			bs = append(bs, bucket{s.cfg.RedisPrefix + "login:account:" + hex.EncodeToString(sum[:12]),
				redis_rate.Limit{Rate: rl.LoginFailuresPerAccount, Burst: rl.LoginFailuresPerAccount, Period: window}})
		}
		if rl.LoginFailuresPerIP > 0 {
			bs = append(bs, bucket{s.cfg.RedisPrefix + "login:ip:" + ClientIP(ctx),
				redis_rate.Limit{Rate: rl.LoginFailuresPerIP, Burst: rl.LoginFailuresPerIP, Period: window}})
		}
		return bs
	}
	srv.AroundFields(func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || fc.Object != "Mutation" || fc.Field.Name != "logIn" {
			return next(ctx)
		}
		in, ok := fc.Args["input"].(model.LogInInput)
		if !ok {
			return next(ctx)
		}
		bs := buckets(ctx, in.Email)
		for _, b := range bs {
			// n = 0 only reads the bucket.
			res, err := s.limiter().AllowN(ctx, b.key, b.limit, 0)
			if err != nil {
				s.rateLimitUnavailable(ctx, err)
				continue
			}
			if res.Remaining < 1 {
				retry := b.limit.Period / time.Duration(b.limit.Rate)
				return nil, s.rateLimited(ctx, "login", retry, "too many failed sign-in attempts; retry in %s", retry.Round(time.Second))
			}
		}
		res, err := next(ctx)
		if p, ok := res.(*model.AuthPayload); ok && p != nil && hasCode(p.UserErrors, model.UserErrorCodeInvalidCredentials) {
			for _, b := range bs {
				if _, err := s.limiter().AllowN(ctx, b.key, b.limit, 1); err != nil {
					s.rateLimitUnavailable(ctx, err)
				}
			}
		}
		return res, err
	})
}

func hasCode(errs []model.UserError, code model.UserErrorCode) bool {
	for _, e := range errs {
		if e.Code == code {
			return true
		}
	}
	return false
}
