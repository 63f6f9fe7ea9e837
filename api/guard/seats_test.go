package guard

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/shop/api/auth"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// seatRedis returns the Redis servers seat tests run against: the stand-in always, and
// REDIS_URL's server when set.
func seatRedis(t *testing.T) map[string]redis.UniversalClient {
	out := map[string]redis.UniversalClient{"embedded": redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})}
	if u := storetest.RedisURL(t); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		out["redis"] = redis.NewClient(opt)
	}
	return out
}

// The seats of a process that died (it stopped renewing its liveness) free up: its counts
// are ignored and deleted; those of a live process hold.
func TestSeatsOfADeadProcessFreeUp(t *testing.T) {
	for name, rdb := range seatRedis(t) {
		t.Run(name, func(t *testing.T) {
			prefix := storetest.Name("seats") + ":"
			ctx := auth.WithViewer(context.Background(), store.Viewer{UserID: 7, Role: store.RoleCustomer})
			a := NewSeats(rdb, prefix, SeatLimit{PerUser: 2}, nil, nil)
			b := NewSeats(rdb, prefix, SeatLimit{PerUser: 2}, nil, nil)
			defer b.Close()
			for range 2 {
				if _, err := a.Take(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := b.Take(ctx); err == nil {
				t.Fatal("a 3rd seat on another process was granted")
			}
			// a crashes: no Close, and its liveness runs out.
			close(a.stop)
			<-a.done
			rdb.ZAdd(context.Background(), a.procs(), redis.Z{Score: float64(time.Now().Add(-time.Second).UnixMilli()), Member: a.proc})
			for range 2 {
				if _, err := b.Take(ctx); err != nil {
					t.Fatalf("the dead process's seats still count: %v", err)
				}
			}
			if _, err := b.Take(ctx); err == nil {
				t.Fatal("a 3rd seat was granted")
			}
		})
	}
}
