package tests

import (
	"slices"
	"testing"

	"github.com/shop/api/loaders"
	"github.com/shop/api/store/storetest"
)

// TestStorefrontReadsAheadWhileThePageChanges: a storefront's page and its merchants are read
// in one round trip but not in one snapshot, which costs two statements more. A page that
// changes between the two is harmless: here the merchants' statement waits on a lock while
// the page's first product (the newest) goes out of stock, so that it reads the merchants of another page;
// the merchant it misses is read by Product.merchant as it would be without the read-ahead.
func TestStorefrontReadsAheadWhileThePageChanges(t *testing.T) {
	t.Parallel()
	url, redisURL := storetest.PostgresURL(t), storetest.RedisURL(t)
	// One connection: the statements, prepared on it by the first read, are not prepared
	// again (which would wait on the lock before the page is read).
	env := newCostEnv(t, config{DatabaseURL: url, RedisURL: redisURL, RedisPrefix: storetest.RedisPrefix(t, redisURL), DBMaxConns: 1}, true)
	shop := storetest.Seed(t, env.svc.Store, storetest.Shop{Merchants: 3, ProductsPerMerchant: 1, Stock: 10})
	const query = `{ products(first: 2, filter: {inStock: true}) { nodes { id merchant { id name } } } }`
	type page struct {
		Products struct {
			Nodes []struct {
				ID       string
				Merchant struct{ ID, Name string }
			}
		}
	}
	var before page
	env.anon().must(query, nil, &before)
	if len(before.Products.Nodes) != 2 {
		t.Fatalf("page %+v, want 2 products", before)
	}
	dropCache(t, env)
	var r struct {
		resp gqlResponse
		rep  loaders.Report
	}
	storetest.WriteWhileWaiting(t, url, "users", "FROM users WHERE id IN", func() {
		r.resp, r.rep = env.cost(t, "", query, nil)
	}, "UPDATE products SET stock = 0 WHERE id = $1", slices.Max(shop.ProductIDs))
	if len(r.resp.Errors) > 0 {
		t.Fatalf("errors: %+v", r.resp.Errors)
	}
	var got page
	r.resp.Decode(t, &got)
	if a, b := mustJSON(got), mustJSON(before); a != b {
		t.Fatalf("page read while it changed: %s, want %s", a, b)
	}
	// The missed merchant was read by the level below: the page's merchants did not do.
	if r.rep.RoundTrips != 2 {
		t.Fatalf("%d round trips, want the batch's and the missed merchant's; SQL:\n%s", r.rep.RoundTrips, jsonLines(r.rep.SQL))
	}
}
