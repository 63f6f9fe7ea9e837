package tests

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/shop/api/api/guard"
)

// TestMeasureEventAllocations reports the allocations of one subscription event delivered
// over a WebSocket (the server's and this test's client's), with the rate limit on, so that
// each event is charged. A measurement, not an assertion: run it with
// SHOP_MEASURE_EVENT_ALLOCS=1 and -v, before and after a change of the event path.
func TestMeasureEventAllocations(t *testing.T) {
	if os.Getenv("SHOP_MEASURE_EVENT_ALLOCS") == "" {
		t.Skip("a measurement: set SHOP_MEASURE_EVENT_ALLOCS=1")
	}
	const sockets, perSocket = 20, 10
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			liveConfig(&cfg)
			cfg.RateLimit = guard.DefaultRateLimit
			env := newTestEnv(t, cfg)
			s := env.newLiveShop()
			// The same order placed twice more: three orders' worth of status changes.
			orders := []string{s.order, env.placeOrder(s.customer, line{s.product, 1}), env.placeOrder(s.customer, line{s.product, 1})}
			var cs []*wsClient
			for range sockets {
				c := env.connectSocket(s.customer.Token)
				for i := range perSocket {
					c.Subscribe(fmt.Sprint(i), subMine, nil)
				}
				cs = append(cs, c)
			}
			env.waitSubscribers(sockets * perSocket)
			var before, after runtime.MemStats
			measure := func(order string, statuses ...string) (mallocs uint64, events int) {
				runtime.GC()
				runtime.ReadMemStats(&before)
				for _, st := range statuses {
					env.moveOrderTo(s.merchant, order, st)
					for _, c := range cs {
						for range perSocket {
							if m := c.Next(10 * time.Second); m.Type != "next" {
								t.Fatalf("%s %s", m.Type, m.Payload)
							}
						}
					}
				}
				runtime.ReadMemStats(&after)
				return after.Mallocs - before.Mallocs, len(statuses) * sockets * perSocket
			}
			measure(orders[0], "PAID") // warm up
			m, n := measure(orders[1], "PAID", "SHIPPED", "DELIVERED")
			t.Logf("%d events: %.1f allocations an event (server and client, the mutations included)", n, float64(m)/float64(n))
		})
	}
}
