package tests

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// The contract's lowStock subscription: once per crossing of a product's threshold from
// above to at or below, to its merchant and to admins, whichever process made the change.

const subLowStock = `subscription { lowStock { id name stock lowStockThreshold merchant { id } } }`

// lowStockEvent is a lowStock event as these tests select it.
type lowStockEvent struct {
	ID                string
	Stock             int
	LowStockThreshold int
	Merchant          struct{ ID string }
}

// lowStock returns the next lowStock event of operation id, failing on anything else.
func (c *wsClient) lowStock(id string) lowStockEvent {
	c.T.Helper()
	m := c.Next(10 * time.Second)
	if (m.Type != "next" && m.Type != "data") || m.ID != id {
		c.T.Fatalf("want a lowStock event of %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	var p struct {
		Data   struct{ LowStock *lowStockEvent }
		Errors []gqlError
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 || p.Data.LowStock == nil {
		c.T.Fatalf("bad lowStock payload %s (%v)", m.Payload, err)
	}
	return *p.Data.LowStock
}

// createWatchedProduct creates a product with a low-stock threshold as merchant.
func (e *testEnv) createWatchedProduct(merchant account, stock, threshold int) string {
	e.t.Helper()
	r, p := e.as(merchant.Token).mutate("createProduct", opCreateProduct, map[string]any{"in": map[string]any{
		"name": "Watched", "price": 100, "stock": stock, "lowStockThreshold": threshold}})
	requireOK(e.t, r, p)
	return p.Product.ID
}

func TestLowStockOncePerCrossing(t *testing.T) {
	t.Parallel()
	forEachLiveBackend(t, func(t *testing.T, env *testEnv) {
		admin := env.liveAdmin()
		m1, m2, customer := env.signUp("MERCHANT"), env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		p := env.createWatchedProduct(m1, 20, 5)
		q := env.createWatchedProduct(m2, 10, 3)
		unwatched := env.createProduct(m1, "No threshold", 100, 3)

		c := env.connectSocket(customer.Token)
		c.Subscribe("1", subLowStock, nil)
		if code := c.ErrorCode("1"); code != "FORBIDDEN" {
			t.Fatalf("customer: %s, want FORBIDDEN", code)
		}
		anon := env.connectSocket("")
		anon.Subscribe("1", subLowStock, nil)
		if code := anon.ErrorCode("1"); code != "UNAUTHENTICATED" {
			t.Fatalf("anonymous: %s, want UNAUTHENTICATED", code)
		}

		w1, w2, wa := env.connectSocket(m1.Token), env.connectSocket(m2.Token), env.connectSocket(admin.Token)
		for _, w := range []*wsClient{w1, w2, wa} {
			w.Subscribe("low", subLowStock, nil)
		}
		env.waitSubscribers(3)

		env.placeOrder(customer, line{p, 10})                    // 20 → 10: above 5
		env.placeOrder(customer, line{p, 5}, line{unwatched, 3}) // 10 → 5: a crossing; 3 → 0 has no threshold
		for _, w := range []*wsClient{w1, wa} {
			if e := w.lowStock("low"); e.ID != p || e.Stock != 5 || e.LowStockThreshold != 5 || e.Merchant.ID != m1.ID {
				t.Fatalf("alert %+v", e)
			}
		}
		env.placeOrder(customer, line{p, 1})               // 5 → 4: still below, no new crossing
		r, pl := env.as(m1.Token).adjust(p, 10, "restock") // 4 → 14: back above
		requireOK(t, r, pl)
		w1.Quiet(300 * time.Millisecond)
		r, pl = env.as(m1.Token).adjust(p, -9, "breakage") // 14 → 5: the second crossing
		requireOK(t, r, pl)
		if e := w1.lowStock("low"); e.ID != p || e.Stock != 5 {
			t.Fatalf("second alert %+v", e)
		}
		if e := wa.lowStock("low"); e.ID != p {
			t.Fatalf("admin's second alert %+v", e)
		}
		// m2's product through updateProduct: m2 and the admin hear, m1 does not.
		r, pl = env.as(m2.Token).mutate("updateProduct", opUpdateProduct, map[string]any{"in": map[string]any{"id": q, "stock": 3}})
		requireOK(t, r, pl)
		if e := w2.lowStock("low"); e.ID != q || e.Stock != 3 {
			t.Fatalf("m2's alert %+v", e)
		}
		if e := wa.lowStock("low"); e.ID != q {
			t.Fatalf("admin's alert of q %+v", e)
		}
		for _, w := range []*wsClient{w1, w2, wa} {
			w.Quiet(500 * time.Millisecond) // once a crossing, though the relay runs too
		}
		// A completed subscription is forgotten.
		w1.Send(map[string]any{"type": "complete", "id": "low"})
		eventually(t, 5*time.Second, func() bool { return env.svc.LiveStats().Subscribers == 2 }, "2 subscribers left")
	})
}

// TestLowStockFromAnotherProcess: a merchant watching through process A hears of a crossing
// made through process B; one whose publication failed (as when Redis blinks) is relayed.
func TestLowStockFromAnotherProcess(t *testing.T) {
	t.Parallel()
	cfg := sharedLiveConfig(t, "")
	a, b := newTestEnv(t, cfg), newTestEnv(t, cfg)
	merchant, customer := b.signUp("MERCHANT"), b.signUp("CUSTOMER")
	p := b.createWatchedProduct(merchant, 10, 4)
	w := a.connectSocket(merchant.Token)
	w.Subscribe("low", subLowStock, nil)
	a.waitSubscribers(1)

	b.placeOrder(customer, line{p, 6}) // 10 → 4
	if e := w.lowStock("low"); e.ID != p || e.Stock != 4 {
		t.Fatalf("alert %+v", e)
	}
	// As if that publication had failed: the relays of both processes find it once.
	r, pl := b.as(merchant.Token).adjust(p, 10, "restock")
	requireOK(t, r, pl)
	storetest.Exec(t, b.svc.Store, "UPDATE low_stock_alerts SET published_at = NULL")
	w.Quiet(time.Second) // the alert seen before is not delivered again
	// A third process that commits a crossing and dies before publishing it (a store of its
	// own, without live delivery): the relays of A and B publish it, once.
	st, err := store.Open(context.Background(), store.Config{DatabaseURL: cfg.DatabaseURL})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AdjustStock(context.Background(), store.Viewer{UserID: dbID(t, merchant.ID), Role: store.RoleMerchant},
		store.StockChange{ProductID: dbID(t, p), Delta: -11, Reason: "inventory count"}); err != nil { // 14 → 3
		t.Fatal(err)
	}
	if e := w.lowStock("low"); e.ID != p || e.Stock != 3 {
		t.Fatalf("relayed alert %+v", e)
	}
	w.Quiet(time.Second)
	if n := storetest.Count(t, b.svc.Store, "SELECT COUNT(*) FROM low_stock_alerts WHERE published_at IS NULL"); n != 0 {
		t.Fatalf("%d alerts left unpublished", n)
	}
}
