package tests

import (
	"fmt"
	"testing"

	"github.com/shop/api/store/storetest"
)

// TestLedgerUnderRacingStockChanges hammers one product with racing orders, cancels,
// adjustments and updates (absolute, and with expectedStock) through two server processes
// sharing PostgreSQL (one process on the embedded store), then checks the ledger: the
// deltas add up to the stock, every movement's stockAfter is the one before plus its delta,
// none is below zero, and every product of the database keeps the invariant.
func TestLedgerUnderRacingStockChanges(t *testing.T) {
	t.Parallel()
	forEachBackendProcesses(t, func(t *testing.T, envs []*testEnv) {
		env := envs[0]
		merchant := env.signUp("MERCHANT")
		product := env.createProduct(merchant, "Contended", 100, 60)
		other := env.createProduct(merchant, "Neighbour", 100, 1000)
		buyers := []account{env.signUp("CUSTOMER"), env.signUp("CUSTOMER"), env.signUp("CUSTOMER")}
		// Orders to cancel while the others race.
		var toCancel []string
		for i := range 10 {
			toCancel = append(toCancel, env.placeOrder(buyers[i%len(buyers)], line{product, 1 + i%3}, line{other, 1}))
		}
		const n = 120
		results := raceAll(n, func(i int) raceResult {
			url := envs[i%len(envs)].srv.URL
			switch i % 6 {
			case 0, 1: // an order, sometimes of two products
				items := orderItems(product, 1+i%4)
				if i%4 == 0 {
					items = orderItems(other, 2, product, 1)
				}
				return raceMutation(url, buyers[i%len(buyers)].Token, "placeOrder", opPlaceOrder, map[string]any{"in": map[string]any{"items": items}})
			case 2: // a cancel
				return raceMutation(url, merchant.Token, "cancelOrder", opCancelOrder, map[string]any{"id": toCancel[(i/6)%len(toCancel)]})
			case 3: // an adjustment either way
				delta := 5
				if i%12 == 3 {
					delta = -7
				}
				return raceMutation(url, merchant.Token, "adjustStock", opAdjustStock,
					map[string]any{"in": map[string]any{"productId": product, "delta": delta, "reason": fmt.Sprintf("race %d", i)}})
			case 4: // an absolute update
				return raceMutation(url, merchant.Token, "updateProduct", opUpdateProduct,
					map[string]any{"in": map[string]any{"id": product, "stock": 40 + i%20}})
			default: // an update that expects a stock it probably no longer is
				return raceMutation(url, merchant.Token, "updateProduct", opUpdateProduct,
					map[string]any{"in": map[string]any{"id": product, "stock": 50, "expectedStock": 40 + i%20}})
			}
		})
		codes := map[string]int{}
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("request %d: %v", i, r.err)
			}
			codes[r.userError]++
		}
		for code := range codes {
			switch code {
			case "", "INSUFFICIENT_STOCK", "INVALID_TRANSITION", "STOCK_CHANGED":
			default:
				t.Fatalf("unexpected userError %s (all: %v)", code, codes)
			}
		}
		if codes[""] < n/4 {
			t.Fatalf("too few changes went through to prove anything: %v", codes)
		}
		t.Logf("outcomes: %v", codes)

		for _, p := range []string{product, other} {
			stock := env.stock(p)
			ms := walkLedger(t, env.as(merchant.Token), p)
			// Oldest first: each stockAfter is the previous one plus the delta.
			after := 0
			for i := len(ms) - 1; i >= 0; i-- {
				m := ms[i]
				after += m.Delta
				if m.StockAfter != after || m.StockAfter < 0 || (m.Delta == 0 && m.Reason != "CREATED") {
					t.Fatalf("movement %+v: running sum %d", m, after)
				}
			}
			if after != stock {
				t.Fatalf("product %s: deltas add up to %d, stock %d", p, after, stock)
			}
		}
		bad := storetest.Count(t, env.svc.Store, `SELECT COUNT(*) FROM products p
			WHERE p.stock <> (SELECT COALESCE(SUM(m.delta), 0) FROM stock_movements m WHERE m.product_id = p.id)`)
		if bad != 0 {
			t.Fatalf("%d products whose stock is not the sum of their movements", bad)
		}
	})
}

// walkLedger returns every movement of a product, newest first, walking pages of 100.
func walkLedger(t *testing.T, c *client, product string) []movementView {
	t.Helper()
	var all []movementView
	var after any
	for {
		var out struct {
			Product struct {
				StockMovements struct {
					TotalCount int
					PageInfo   struct {
						HasNextPage bool
						EndCursor   string
					}
					Nodes []movementView
				}
			}
		}
		c.must(`query($id: ID!, $after: String) { product(id: $id) { stockMovements(first: 100, after: $after) {
			totalCount pageInfo { hasNextPage endCursor } nodes { id delta stockAfter reason } } } }`,
			map[string]any{"id": product, "after": after}, &out)
		sm := out.Product.StockMovements
		all = append(all, sm.Nodes...)
		if !sm.PageInfo.HasNextPage {
			if len(all) != sm.TotalCount {
				t.Fatalf("walked %d movements, totalCount %d", len(all), sm.TotalCount)
			}
			return all
		}
		after = sm.PageInfo.EndCursor
	}
}
