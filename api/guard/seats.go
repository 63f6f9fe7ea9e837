package guard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/auth"
)

// SeatLimit caps the live subscriptions (over WebSocket and server-sent events) held at
// once across every process of the service. A zero field turns its cap off.
type SeatLimit struct {
	// PerUser is how many subscriptions one signed-in account may hold.
	PerUser int
	// PerAddress is how many subscriptions one client address (an IPv6 client's /64) may
	// hold, signed-in or not: an address that signs up account after account gets no fresh
	// seats with each.
	PerAddress int
}

// DefaultSeatLimit is what server.go applies where the environment is silent: a phone
// watches a handful of orders, a merchant's dashboard a few dozen; an address is a
// carrier-grade NAT's worth of shoppers.
var DefaultSeatLimit = SeatLimit{PerUser: 200, PerAddress: 2000}

// Seats counts live subscriptions per user and per address in Redis, so that the caps hold
// across processes. Each key is a hash with a field per process holding that process's
// count, changed by increments; a field of a process that stopped refreshing its liveness
// (it crashed) is ignored and deleted, so the counts of a dead process free up within
// seatTTL. Each process also keeps its own counts: after Redis missed a change, its next
// heartbeat writes them back. When Redis cannot be asked, a subscription is allowed, as the
// rate limits allow operations.
type Seats struct {
	rdb    redis.UniversalClient
	prefix string
	cfg    SeatLimit
	proc   string
	log    *slog.Logger
	// unavailable is told each time Redis could not be asked.
	unavailable func(error)

	mu     sync.Mutex
	held   map[string]int // this process's seats per key
	given  map[string]int // seats given back, not yet taken off in Redis
	repair bool           // Redis missed a change: the next heartbeat writes the counts
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

const (
	// seatTTL is how long a process's counts outlive its last heartbeat.
	seatTTL = 30 * time.Second
	// seatBeat is how often a process refreshes its liveness and its counts.
	seatBeat = seatTTL / 3
)

// NewSeats starts counting seats under prefix; Close stops it and frees its seats.
// unavailable, when set, is told each time Redis could not be asked.
func NewSeats(rdb redis.UniversalClient, prefix string, cfg SeatLimit, log *slog.Logger, unavailable func(error)) *Seats {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if unavailable == nil {
		unavailable = func(error) {}
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	s := &Seats{rdb: rdb, prefix: prefix, cfg: cfg, proc: hex.EncodeToString(b), log: log, unavailable: unavailable,
		held: map[string]int{}, given: map[string]int{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.PerUser <= 0 && cfg.PerAddress <= 0 {
		close(s.done)
		return s
	}
	s.beat(context.Background())
	go s.run()
	return s
}

// procs is the sorted set of the processes' liveness: member the process, score the Unix
// time in milliseconds until which its counts hold.
func (s *Seats) procs() string { return s.prefix + "live:procs" }

// keys are the seat keys of ctx's caller with their caps.
func (s *Seats) keys(ctx context.Context) (keys []string, caps []int) {
	if v := auth.ViewerFrom(ctx); !v.Anonymous() && s.cfg.PerUser > 0 {
		keys = append(keys, s.prefix+"live:user:"+strconv.FormatInt(v.UserID, 10))
		caps = append(caps, s.cfg.PerUser)
	}
	if s.cfg.PerAddress > 0 {
		keys = append(keys, s.prefix+"live:ip:"+addressKey(ClientIP(ctx)))
		caps = append(caps, s.cfg.PerAddress)
	}
	return keys, caps
}

// take checks every key's total over the live processes against its cap and, when all have
// room, adds one to this process's field of each: increments, which concurrent takes of one
// process may apply in any order. KEYS[1] is the processes' liveness, KEYS[2..] the seat
// keys; ARGV: this process, now (ms), the keys' TTL (ms), then each key's cap. It returns
// 0, or the position of the first full key (1-based).
var take = redis.NewScript(`
local proc, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for k = 2, #KEYS do
  local total = 1
  local fields = redis.call("HGETALL", KEYS[k])
  for i = 1, #fields, 2 do
    local p = fields[i]
    local alive = p == proc or (tonumber(redis.call("ZSCORE", KEYS[1], p)) or 0) >= now
    if alive then
      total = total + tonumber(fields[i+1])
    else
      redis.call("HDEL", KEYS[k], p)
    end
  end
  if total > tonumber(ARGV[2 + k]) then return k - 1 end
end
for k = 2, #KEYS do
  redis.call("HINCRBY", KEYS[k], proc, 1)
  redis.call("PEXPIRE", KEYS[k], ttl)
end
return 0
`)

// giveBackSeats takes ARGV[2] seats off process ARGV[1]'s field of KEYS[1], deleting the
// field at zero: a decrement, which commutes with concurrent takes.
var giveBackSeats = redis.NewScript(`
if redis.call("HINCRBY", KEYS[1], ARGV[1], -tonumber(ARGV[2])) <= 0 then
  redis.call("HDEL", KEYS[1], ARGV[1])
end
return 0
`)

// Take takes a seat for a subscription of ctx's caller, and returns the function that gives
// it back (call it once; it never blocks on Redis), or a RATE_LIMITED error when a cap is
// reached.
func (s *Seats) Take(ctx context.Context) (release func(), err error) {
	keys, caps := s.keys(ctx)
	if len(keys) == 0 {
		return func() {}, nil
	}
	args := make([]any, 0, 3+len(keys))
	args = append(args, s.proc, time.Now().UnixMilli(), seatTTL.Milliseconds())
	for _, c := range caps {
		args = append(args, c)
	}
	full, err := take.Run(ctx, s.rdb, append([]string{s.procs()}, keys...), args...).Int()
	if err == nil && full > 0 {
		what := "account"
		if strings.Contains(keys[full-1], "live:ip:") {
			what = "address"
		}
		return nil, seatsFull(what, caps[full-1])
	}
	s.mu.Lock()
	for _, k := range keys {
		s.held[k]++
	}
	if err != nil {
		s.repair = true // Redis did not count it: the next heartbeat writes the counts
	}
	s.mu.Unlock()
	if err != nil {
		s.unavailable(err)
	}
	return func() { s.give(keys) }, nil
}

func seatsFull(what string, limit int) *gqlerror.Error {
	err := gqlerror.Errorf("too many live subscriptions for this %s: at most %d at once; end one first", what, limit)
	errcode.Set(err, CodeRateLimited)
	return err
}

// give returns a seat of each key; the flusher takes it off the counts in Redis.
func (s *Seats) give(keys []string) {
	s.mu.Lock()
	for _, k := range keys {
		s.held[k]--
		s.given[k]++
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Seats) run() {
	defer close(s.done)
	tick := time.NewTicker(seatBeat)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
			s.flush(context.Background())
		case <-tick.C:
			s.beat(context.Background())
		}
	}
}

// flush takes the seats given back off this process's fields in Redis.
func (s *Seats) flush(ctx context.Context) {
	s.mu.Lock()
	given := s.given
	s.given = map[string]int{}
	for k := range given {
		if s.held[k] <= 0 {
			delete(s.held, k)
		}
	}
	s.mu.Unlock()
	if len(given) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, n := range given {
			giveBackSeats.Eval(ctx, p, []string{k}, s.proc, n)
		}
		return nil
	})
	if err != nil {
		// Redis missed it: the next heartbeat writes the counts, zeros included.
		s.mu.Lock()
		s.repair = true
		for k := range given {
			s.held[k] += 0
		}
		s.mu.Unlock()
		s.unavailable(err)
	}
}

// beat renews this process's liveness and its keys' lives, forgets dead processes, and
// after a Redis failure writes this process's counts back.
func (s *Seats) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	now := time.Now()
	s.mu.Lock()
	repair := s.repair
	s.repair = false
	held := make(map[string]int, len(s.held))
	for k, n := range s.held {
		held[k] = n
		if repair {
			delete(s.given, k) // the counts written include them
			if n <= 0 {
				delete(s.held, k)
			}
		}
	}
	s.mu.Unlock()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, s.procs(), redis.Z{Score: float64(now.Add(seatTTL).UnixMilli()), Member: s.proc})
		p.ZRemRangeByScore(ctx, s.procs(), "-inf", fmt.Sprint(now.UnixMilli()-1))
		p.PExpire(ctx, s.procs(), 2*seatTTL)
		for k, n := range held {
			switch {
			case repair && n <= 0:
				p.HDel(ctx, k, s.proc)
				continue
			case repair:
				p.HSet(ctx, k, s.proc, n)
			}
			p.PExpire(ctx, k, seatTTL)
		}
		return nil
	})
	if err != nil {
		s.mu.Lock()
		s.repair = true
		s.mu.Unlock()
		s.unavailable(err)
	}
}

// Close stops the heartbeat and gives back this process's seats.
func (s *Seats) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.stop)
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.mu.Lock()
	keys := make([]string, 0, len(s.held))
	for k := range s.held {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.HDel(ctx, k, s.proc)
		}
		p.ZRem(ctx, s.procs(), s.proc)
		return nil
	})
}
