package api

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/sony/gobreaker/v2"
)

// Redis deadlines: every command is bounded by these socket timeouts (go-redis lengthens the
// read deadline by itself for blocking commands), and a caller's context deadline is honoured.
const (
	redisDialTimeout = time.Second
	redisIOTimeout   = time.Second
	redisPoolTimeout = 2 * time.Second
)

// ErrRedisUnavailable is returned at once, without touching the network, by every Redis
// command while the circuit breaker is open.
var ErrRedisUnavailable = errors.New("redis unavailable (circuit open)")

// openRedis connects to url, or starts the in-process stand-in when url is empty. The client
// has short timeouts, one retry, and a circuit breaker: after a few consecutive failures
// every command fails immediately for cfg.RedisBreakerOpen, so an outage costs callers no
// latency; the breaker then lets one probe through and closes when it succeeds.
func (s *Service) openRedis(url string) (redis.UniversalClient, error) {
	var opts *redis.Options
	if url == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		s.closers = append(s.closers, mr.Close)
		opts = &redis.Options{Addr: mr.Addr()}
	} else {
		var err error
		if opts, err = redis.ParseURL(url); err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = redisDialTimeout, redisIOTimeout, redisIOTimeout
	opts.PoolTimeout = redisPoolTimeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = 1
	opts.DialerRetries = 1 // the breaker, not a dial loop, handles a server that is gone
	// Maintenance notifications serve Redis Enterprise clusters; on other servers they only
	// log a failed handshake.
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	rdb := redis.NewClient(opts)
	s.breaker = newRedisBreaker(s.cfg.RedisBreakerOpen, func(from, to gobreaker.State) {
		s.Log.Warn("redis circuit breaker", "from", from.String(), "to", to.String())
	})
	rdb.AddHook(s.breaker)
	s.closers = append(s.closers, func() { _ = rdb.Close() })
	return rdb, nil
}

// redisBreaker is a go-redis hook that fails commands fast while Redis is known to be down.
type redisBreaker struct {
	cb       *gobreaker.CircuitBreaker[struct{}]
	rejected atomic.Int64
}

func newRedisBreaker(open time.Duration, onChange func(from, to gobreaker.State)) *redisBreaker {
	if open <= 0 {
		open = 5 * time.Second
	}
	return &redisBreaker{cb: gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     open,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if onChange != nil {
				onChange(from, to)
			}
		},
		IsSuccessful: redisAnswered,
		// A caller that gave up says nothing about Redis.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	})}
}

// redisAnswered reports whether err still proves Redis is up: no error, a missing key, or
// an error reply from the server.
func redisAnswered(err error) bool {
	var reply redis.Error
	return err == nil || errors.Is(err, redis.Nil) || (errors.As(err, &reply) && !errors.Is(err, context.DeadlineExceeded))
}

// State returns the breaker's state: closed (Redis healthy), half-open or open.
func (b *redisBreaker) State() gobreaker.State { return b.cb.State() }

// Rejected returns how many commands the open breaker failed without trying.
func (b *redisBreaker) Rejected() int64 { return b.rejected.Load() }

func (b *redisBreaker) reject(err error) error {
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		b.rejected.Add(1)
		return fmt.Errorf("%w: %w", ErrRedisUnavailable, err)
	}
	return err
}

// DialHook leaves dialing alone: go-redis's pool already fails fast after dial errors and
// redials in the background, and that redial must get through for Redis to come back.
func (b *redisBreaker) DialHook(next redis.DialHook) redis.DialHook { return next }

// inBreaker marks a context already inside the breaker: commands go-redis sends to set up
// a new connection (HELLO, CLIENT SETINFO) pass the hooks again, and must not count as a
// second call (in the half-open state that second call would be refused).
type inBreaker struct{}

// ProcessHook runs each command through the breaker.
func (b *redisBreaker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(inBreaker{}) != nil {
			return next(ctx, cmd)
		}
		ctx = context.WithValue(ctx, inBreaker{}, true)
		_, err := b.cb.Execute(func() (struct{}, error) {
			return struct{}{}, next(ctx, cmd)
		})
		if err = b.reject(err); err != nil && cmd.Err() == nil {
			// Commands report their result through cmd, not the hook's return value.
			cmd.SetErr(err)
		}
		return err
	}
}

// ProcessPipelineHook runs each pipeline (and MULTI/EXEC) through the breaker as one call.
func (b *redisBreaker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(inBreaker{}) != nil {
			return next(ctx, cmds)
		}
		ctx = context.WithValue(ctx, inBreaker{}, true)
		_, err := b.cb.Execute(func() (struct{}, error) {
			return struct{}{}, next(ctx, cmds)
		})
		if err = b.reject(err); err != nil {
			for _, cmd := range cmds {
				if cmd.Err() == nil {
					cmd.SetErr(err)
				}
			}
		}
		return err
	}
}
