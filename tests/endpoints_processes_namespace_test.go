package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/shop/api/store/storetest"
)

// Services that share a Redis server but not a database never see each other's keys or
// events, although their IDs collide (both databases number from 1); processes that share a
// database act as one service even when their URLs are spelled differently.
func TestRedisNamespaceFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	redisURL := storetest.RedisURL(t)
	dbA, dbB := storetest.PostgresURL(t), storetest.PostgresURL(t)
	start := func(dbURL string) *testEnv {
		cfg := config{DatabaseURL: dbURL, RedisURL: redisURL} // no RedisPrefix: derived
		liveConfig(&cfg)
		return newTestEnv(t, cfg)
	}
	a, b := start(dbA), start(dbB)
	shopA, shopB := a.newLiveShop(), b.newLiveShop()
	if shopA.product != shopB.product || shopA.order != shopB.order {
		t.Fatalf("want colliding IDs to prove the point: %s/%s vs %s/%s", shopA.product, shopA.order, shopB.product, shopB.order)
	}
	rename := func(env *testEnv, shop liveShop, name string) {
		t.Helper()
		var out struct {
			UpdateProduct struct{ UserErrors []map[string]any }
		}
		env.as(shop.merchant.Token).must(`mutation($id: ID!, $n: String!) { updateProduct(input: {id: $id, name: $n}) { userErrors { code } } }`,
			map[string]any{"id": shop.product, "n": name}, &out)
		if len(out.UpdateProduct.UserErrors) > 0 {
			t.Fatalf("rename: %v", out.UpdateProduct.UserErrors)
		}
	}
	name := func(env *testEnv, product string) string {
		t.Helper()
		var out struct{ Product struct{ Name string } }
		env.anon().must(`query($id: ID!) { product(id: $id) { name } }`, map[string]any{"id": product}, &out)
		return out.Product.Name
	}
	rename(a, shopA, "Kettle of A")
	rename(b, shopB, "Kettle of B")
	for range 3 { // the second and third reads come from the cache
		if got := name(a, shopA.product); got != "Kettle of A" {
			t.Fatalf("service A reads %q: B's cache entry leaked in", got)
		}
		if got := name(b, shopB.product); got != "Kettle of B" {
			t.Fatalf("service B reads %q: A's cache entry leaked in", got)
		}
	}

	// A's customer watches order 1 of A; order 1 of B changes first, then A's.
	sub := a.connectSocket(shopA.customer.Token)
	a.subscribeOrder(sub, "1", shopA.order, nil)
	b.moveOrderTo(shopB.merchant, shopB.order, "PAID")
	sub.Quiet(500 * time.Millisecond)
	a.moveOrderTo(shopA.merchant, shopA.order, "CANCELLED")
	if ev := sub.event("1"); ev.Status != "CANCELLED" {
		t.Fatalf("A's subscriber got %+v, want A's CANCELLED", ev)
	}

	// A second process on A's database under another spelling of its URL is the same service.
	alias := strings.Replace(dbA, "127.0.0.1", "localhost", 1)
	if alias == dbA {
		alias = strings.Replace(dbA, "localhost", "127.0.0.1", 1)
	}
	storetest.Require(t, alias != dbA, "DATABASE_URL names neither 127.0.0.1 nor localhost")
	a2 := start(alias)
	rename(a2, shopA, "Kettle of A, renamed")
	if got := name(a, shopA.product); got != "Kettle of A, renamed" {
		t.Fatalf("service A reads %q after a rename through its twin: the twin's invalidation missed A's cache", got)
	}
}
