// Package redisconn opens the service's Redis connection, to one server or to the master
// its Sentinels name: short timeouts and a circuit breaker, or an in-process stand-in in
// embedded mode.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
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

// ErrUnavailable is returned at once, without touching the network, by every Redis
// command while the circuit breaker is open.
var ErrUnavailable = errors.New("redis unavailable (circuit open)")

// Config says which Redis to use and how long to leave it alone after it failed.
type Config struct {
	// URL is a redis:// URL of one server, or a redis-sentinel:// URL naming the Sentinels
	// that monitor a master (see parseSentinelURL); empty starts an in-process stand-in
	// (embedded mode).
	URL string
	// BreakerOpen is how long Redis is skipped after failing; 0 means 5s.
	BreakerOpen time.Duration
}

func (c Config) withDefaults() Config {
	if c.BreakerOpen <= 0 {
		c.BreakerOpen = 5 * time.Second
	}
	return c
}

// Conn is a Redis client with short timeouts and a circuit breaker.
type Conn struct {
	redis.UniversalClient
	breaker *redisBreaker
	// newClient makes a client of the same Redis (the same Sentinels), for connections
	// of their own (pub/sub).
	newClient func() *redis.Client
	closers   []func()
	// replicated: the master has replicas a Sentinel may promote.
	replicated bool
}

// Replicated reports whether Redis is a master with replicas that Sentinel may promote: writes
// that must survive a failover (cache invalidations) should wait for a replica to hold them.
func (c *Conn) Replicated() bool { return c.replicated }

// Open connects to cfg.URL, or starts the in-process stand-in when it is empty. The client
// has short timeouts, one retry, and a circuit breaker: after a few consecutive failures
// every command fails immediately for cfg.BreakerOpen, so an outage costs callers no
// latency; the breaker then lets one probe through and closes when it succeeds. Through
// Sentinel, every new connection goes to the master the Sentinels name at that moment, so
// after a failover the client reaches the new master once the breaker lets it.
func Open(cfg Config, log *slog.Logger) (*Conn, error) {
	cfg = cfg.withDefaults()
	c := &Conn{}
	switch {
	case cfg.URL == "":
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		c.closers = append(c.closers, mr.Close)
		c.newClient = standalone(&redis.Options{Addr: mr.Addr()})
	case strings.HasPrefix(cfg.URL, sentinelScheme+"://"):
		opts, err := parseSentinelURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		c.newClient = failover(opts)
		c.replicated = true
	default:
		opts, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		c.newClient = standalone(opts)
	}
	rdb := c.newClient()
	c.breaker = newRedisBreaker(cfg.BreakerOpen, func(from, to gobreaker.State) {
		log.Warn("redis circuit breaker", "from", from.String(), "to", to.String())
	})
	rdb.AddHook(c.breaker)
	c.UniversalClient = rdb
	return c, nil
}

// standalone returns a maker of clients of one server, with the service's deadlines.
func standalone(opts *redis.Options) func() *redis.Client {
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = redisDialTimeout, redisIOTimeout, redisIOTimeout
	opts.PoolTimeout = redisPoolTimeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = 1
	opts.DialerRetries = 1 // the breaker, not a dial loop, handles a server that is gone
	// Maintenance notifications serve Redis Enterprise clusters; on other servers they only
	// log a failed handshake.
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return func() *redis.Client {
		o := *opts
		return redis.NewClient(&o)
	}
}

// failover returns a maker of clients of the master the Sentinels name, with the service's
// deadlines on the master's connections and the Sentinels' alike. Each client
// asks the Sentinels for the master's address whenever it dials, and follows their
// +switch-master announcements, so no address of a data server is configured anywhere.
func failover(opts *redis.FailoverOptions) func() *redis.Client {
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = redisDialTimeout, redisIOTimeout, redisIOTimeout
	opts.PoolTimeout = redisPoolTimeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = 1
	opts.DialerRetries = 1
	return func() *redis.Client {
		o := *opts
		return redis.NewFailoverClient(&o)
	}
}

// NewClient returns a client of its own to the same Redis (through the same Sentinels),
// without the breaker: for pub/sub, which holds a connection for the process's life, and
// for work that handles outages itself. The caller closes it.
func (c *Conn) NewClient() *redis.Client { return c.newClient() }

// Close closes the client and stops the stand-in.
func (c *Conn) Close() error {
	err := c.UniversalClient.Close()
	for _, f := range c.closers {
		f()
	}
	return err
}

// Collectors returns the breaker's metrics: its state and how many commands it refused.
func (c *Conn) Collectors() []prometheus.Collector {
	b := c.breaker
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shop_redis_breaker_state",
			Help: "The Redis circuit breaker: 0 closed (healthy), 1 half-open (probing), 2 open (Redis skipped).",
		}, func() float64 { return float64(b.cb.State()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shop_redis_breaker_rejected_total",
			Help: "Redis commands failed at once because the circuit breaker was open.",
		}, func() float64 { return float64(b.rejected.Load()) }),
	}
}

// redisBreaker is a go-redis hook that fails commands fast while Redis is known to be down.
type redisBreaker struct {
	cb       *gobreaker.CircuitBreaker[struct{}]
	rejected atomic.Int64
}

func newRedisBreaker(open time.Duration, onChange func(from, to gobreaker.State)) *redisBreaker {
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

func (b *redisBreaker) reject(err error) error {
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		b.rejected.Add(1)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
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
