package tests

import (
	"slices"
	"strings"
	"testing"
)

// The contract's "Shipments and the stock ledger" section, through the HTTP handler on
// both backends.

const (
	opShipOrder = `mutation($in: ShipOrderInput!) { shipOrder(input: $in) {
		shipment { id carrier trackingNumber trackingUrl shippedAt deliveredAt merchant { id } order { id status }
			items { quantity product { id } } }
		userErrors { field message code } } }`
	opMarkDelivered = `mutation($id: ID!) { markShipmentDelivered(id: $id) {
		shipment { id deliveredAt order { id status } } userErrors { field message code } } }`
	opAdjustStock = `mutation($in: AdjustStockInput!) { adjustStock(input: $in) {
		product { id stock } userErrors { field message code } } }`
	opLedger = `query($id: ID!, $first: Int, $after: String) { product(id: $id) { id stock lowStockThreshold
		stockMovements(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor }
			edges { cursor node { id delta stockAfter reason note at order { id } } } } } }`
)

// shipmentView is a Shipment as these tests select it.
type shipmentView struct {
	ID             string
	Carrier        string
	TrackingNumber string
	TrackingURL    *string
	ShippedAt      string
	DeliveredAt    *string
	Merchant       struct{ ID string }
	Order          struct{ ID, Status string }
	Items          []struct {
		Quantity int
		Product  struct{ ID string }
	}
}

// shipmentPayload is a ShipmentPayload as these tests select it.
type shipmentPayload struct {
	Shipment   *shipmentView
	UserErrors []userError
}

// movementView is a StockMovement as these tests select it.
type movementView struct {
	ID         string
	Delta      int
	StockAfter int
	Reason     string
	Note       *string
	At         string
	Order      *struct{ ID string }
}

// ship sends shipOrder as c and returns the response and payload.
func (c *client) ship(order, carrier, tracking string, url any) (gqlResponse, *shipmentPayload) {
	c.env.t.Helper()
	in := map[string]any{"orderId": order, "carrier": carrier, "trackingNumber": tracking}
	if url != nil {
		in["trackingUrl"] = url
	}
	r := c.post(opShipOrder, map[string]any{"in": in})
	return r, shipmentPayloadOf(c.env.t, r, "shipOrder")
}

func (c *client) deliver(shipment string) (gqlResponse, *shipmentPayload) {
	c.env.t.Helper()
	r := c.post(opMarkDelivered, map[string]any{"id": shipment})
	return r, shipmentPayloadOf(c.env.t, r, "markShipmentDelivered")
}

func (c *client) adjust(product string, delta int, reason string) (gqlResponse, *mutationPayload) {
	c.env.t.Helper()
	return c.mutate("adjustStock", opAdjustStock, map[string]any{"in": map[string]any{"productId": product, "delta": delta, "reason": reason}})
}

func shipmentPayloadOf(t *testing.T, r gqlResponse, field string) *shipmentPayload {
	t.Helper()
	if len(r.Data) == 0 || string(r.Data) == "null" {
		return nil
	}
	var data map[string]*shipmentPayload
	r.Decode(t, &data)
	return data[field]
}

// requireShipErrors fails unless p carries exactly the wanted userErrors and no shipment.
func requireShipErrors(t *testing.T, r gqlResponse, p *shipmentPayload, want ...wantUserError) {
	t.Helper()
	if len(r.Errors) > 0 || p == nil {
		t.Fatalf("want userErrors %v, got errors %+v, payload %+v", want, r.Errors, p)
	}
	got := make([]wantUserError, len(p.UserErrors))
	for i, e := range p.UserErrors {
		got[i] = wantUserError{Code: e.Code, Field: e.Field}
	}
	if !slices.EqualFunc(got, want, func(a, b wantUserError) bool { return a.Code == b.Code && slices.Equal(a.Field, b.Field) }) {
		t.Fatalf("userErrors = %+v, want %+v", got, want)
	}
	if p.Shipment != nil {
		t.Fatalf("a payload with userErrors carries its shipment: %+v", p.Shipment)
	}
}

// shipped is requireShipped of a call's two results.
func shipped(t *testing.T) func(gqlResponse, *shipmentPayload) shipmentView {
	return func(r gqlResponse, p *shipmentPayload) shipmentView {
		t.Helper()
		return requireShipped(t, r, p)
	}
}

func requireShipped(t *testing.T, r gqlResponse, p *shipmentPayload) shipmentView {
	t.Helper()
	if len(r.Errors) > 0 || p == nil || len(p.UserErrors) > 0 || p.Shipment == nil {
		t.Fatalf("want a shipment, got errors %+v, payload %+v", r.Errors, p)
	}
	return *p.Shipment
}

// requireCode fails unless r failed with the top-level code and a null field.
func requireCode(t *testing.T, r gqlResponse, code string) {
	t.Helper()
	if r.Code() != code {
		t.Fatalf("want top-level %s, got errors %+v, data %s", code, r.Errors, r.Data)
	}
}

// ledger returns a product's stock, threshold and first page of movements as c sees them.
func (c *client) ledger(product string, first int) (gqlResponse, int, []movementView, int) {
	c.env.t.Helper()
	r := c.post(opLedger, map[string]any{"id": product, "first": first})
	var out struct {
		Product struct {
			Stock          int
			StockMovements *struct {
				TotalCount int
				Edges      []struct{ Node movementView }
			}
		}
	}
	r.Decode(c.env.t, &out)
	if out.Product.StockMovements == nil {
		return r, out.Product.Stock, nil, 0
	}
	var ms []movementView
	for _, e := range out.Product.StockMovements.Edges {
		ms = append(ms, e.Node)
	}
	return r, out.Product.Stock, ms, out.Product.StockMovements.TotalCount
}

// markPaid moves an order to PAID as admin.
func (e *testEnv) markPaid(admin account, order string) {
	e.t.Helper()
	r, p := e.as(admin.Token).mutate("updateOrderStatus", opUpdateOrderStatus,
		map[string]any{"in": map[string]any{"id": order, "status": "PAID"}})
	requireOK(e.t, r, p)
}

// TestShipmentsOfTwoMerchants: each merchant ships their own lines of a PAID order; the
// order stays PAID until the last line ships, then is SHIPPED with the carrier and tracking
// number as the event's note; it is DELIVERED with its last delivery. The customer sees the
// shipments, oldest first, and node(id:) resolves one.
func TestShipmentsOfTwoMerchants(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		m1, m2, customer := env.signUp("MERCHANT"), env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		a, b := env.createProduct(m1, "Lamp", 1000, 10), env.createProduct(m1, "Bulb", 100, 10)
		c := env.createProduct(m2, "Rug", 5000, 10)
		order := env.placeOrder(customer, line{a, 1}, line{c, 2}, line{b, 3})
		env.markPaid(admin, order)

		s1 := shipped(t)(env.as(m1.Token).ship(order, "UPS", "1Z999", "https://ups.example/track?n=1Z999"))
		if s1.Merchant.ID != m1.ID || s1.Order.Status != "PAID" || s1.Carrier != "UPS" || s1.TrackingNumber != "1Z999" ||
			s1.TrackingURL == nil || s1.DeliveredAt != nil || len(s1.Items) != 2 ||
			s1.Items[0].Product.ID != a || s1.Items[1].Product.ID != b || s1.Items[1].Quantity != 3 {
			t.Fatalf("first shipment %+v", s1)
		}
		// Nothing left for m1: INVALID_TRANSITION.
		r, p := env.as(m1.Token).ship(order, "UPS", "again", nil)
		requireShipErrors(t, r, p, wantUserError{"INVALID_TRANSITION", []string{"orderId"}})

		s2 := shipped(t)(env.as(m2.Token).ship(order, "DHL", "JD0002", nil))
		if s2.Order.Status != "SHIPPED" || len(s2.Items) != 1 || s2.Items[0].Product.ID != c || s2.TrackingURL != nil {
			t.Fatalf("last shipment %+v", s2)
		}
		var hist struct {
			Order struct {
				Status  string
				History []struct {
					Status string
					Note   *string
				}
				Shipments []shipmentView
			}
		}
		env.as(customer.Token).must(`query($id: ID!) { order(id: $id) { status history { status note }
			shipments { id carrier trackingNumber merchant { id } items { product { id } } } } }`,
			map[string]any{"id": order}, &hist)
		last := hist.Order.History[len(hist.Order.History)-1]
		if last.Status != "SHIPPED" || last.Note == nil || *last.Note != "DHL JD0002" {
			t.Fatalf("SHIPPED event %+v", last)
		}
		if sh := hist.Order.Shipments; len(sh) != 2 || sh[0].ID != s1.ID || sh[1].ID != s2.ID || len(sh[0].Items) != 2 {
			t.Fatalf("customer sees shipments %+v", sh)
		}
		var node struct {
			Node *struct {
				ID      string
				Carrier string
			}
		}
		env.as(customer.Token).must(`query($id: ID!) { node(id: $id) { id ... on Shipment { carrier } } }`,
			map[string]any{"id": s1.ID}, &node)
		if node.Node == nil || node.Node.Carrier != "UPS" {
			t.Fatalf("node(shipment) = %+v", node.Node)
		}
		stranger := env.signUp("CUSTOMER")
		requireCode(t, env.as(stranger.Token).post(`query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": s1.ID}), "NOT_FOUND")

		// Deliveries: m1 may not deliver m2's shipment; the order is DELIVERED with the last.
		requireCode(t, env.as(m1.Token).post(opMarkDelivered, map[string]any{"id": s2.ID}), "FORBIDDEN")
		requireCode(t, env.as(customer.Token).post(opMarkDelivered, map[string]any{"id": s2.ID}), "FORBIDDEN")
		r, p = env.as(stranger.Token).deliver(s2.ID)
		requireShipErrors(t, r, p, wantUserError{"NOT_FOUND", []string{"id"}})
		d1 := shipped(t)(env.as(m1.Token).deliver(s1.ID))
		if d1.DeliveredAt == nil || d1.Order.Status != "SHIPPED" {
			t.Fatalf("first delivery %+v", d1)
		}
		r, p = env.as(m1.Token).deliver(s1.ID)
		requireShipErrors(t, r, p, wantUserError{"INVALID_TRANSITION", []string{"id"}})
		d2 := shipped(t)(env.as(admin.Token).deliver(s2.ID))
		if d2.Order.Status != "DELIVERED" {
			t.Fatalf("last delivery leaves the order %s", d2.Order.Status)
		}
		if got := env.orderStatus(admin, order); got != "DELIVERED" {
			t.Fatalf("order %s, want DELIVERED", got)
		}
	})
}

// TestShipOrderRules: every validation rule of shipOrder with its code and field, who may
// ship (a merchant who sees the order without a line in it, and its customer, are
// FORBIDDEN; a merchant who cannot see it gets NOT_FOUND), that only PAID orders ship, that
// an ADMIN ships every remaining line as the shipment's merchant, and that updateOrderStatus
// still ships orders without shipments.
func TestShipOrderRules(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		m1, m2, customer := env.signUp("MERCHANT"), env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		a := env.createProduct(m1, "Lamp", 1000, 100)
		order := env.placeOrder(customer, line{a, 1})

		long := strings.Repeat("x", 101)
		for _, tc := range []struct {
			carrier, tracking string
			url               any
			field             string
		}{
			{"", "T1", nil, "carrier"},
			{"  ", "T1", nil, "carrier"},
			{long, "T1", nil, "carrier"},
			{"UPS", "", nil, "trackingNumber"},
			{"UPS", long, nil, "trackingNumber"},
			{"UPS", "T1", "http://ups.example/t", "trackingUrl"},
			{"UPS", "T1", "/track/1", "trackingUrl"},
			{"UPS", "T1", "https://", "trackingUrl"},
			{"UPS", "T1", "ftp://ups.example/t", "trackingUrl"},
		} {
			r, p := env.as(m1.Token).ship(order, tc.carrier, tc.tracking, tc.url)
			requireShipErrors(t, r, p, wantUserError{"INVALID_INPUT", []string{tc.field}})
		}
		// 100 characters are allowed; PENDING is not PAID.
		r, p := env.as(m1.Token).ship(order, strings.Repeat("c", 100), strings.Repeat("t", 100), nil)
		requireShipErrors(t, r, p, wantUserError{"INVALID_TRANSITION", []string{"orderId"}})

		r, p = env.as(m1.Token).ship(gid("Order", 999999), "UPS", "T1", nil)
		requireShipErrors(t, r, p, wantUserError{"NOT_FOUND", []string{"orderId"}})
		r, p = env.as(m2.Token).ship(order, "UPS", "T1", nil) // m2 cannot see it
		requireShipErrors(t, r, p, wantUserError{"NOT_FOUND", []string{"orderId"}})
		requireCode(t, env.as(customer.Token).post(opShipOrder, map[string]any{"in": map[string]any{
			"orderId": order, "carrier": "UPS", "trackingNumber": "T1"}}), "FORBIDDEN")
		requireCode(t, env.anon().post(opShipOrder, map[string]any{"in": map[string]any{
			"orderId": order, "carrier": "UPS", "trackingNumber": "T1"}}), "UNAUTHENTICATED")
		// m2 placed an order of m1's product: m2 sees it but has no line in it.
		own := env.placeOrder(m2, line{a, 1})
		env.markPaid(admin, own)
		requireCode(t, env.as(m2.Token).post(opShipOrder, map[string]any{"in": map[string]any{
			"orderId": own, "carrier": "UPS", "trackingNumber": "T1"}}), "FORBIDDEN")

		// An admin ships every line, as the shipment's merchant.
		s := shipped(t)(env.as(admin.Token).ship(own, "Post", "P1", "https://post.example/P1"))
		if s.Merchant.ID != admin.ID || s.Order.Status != "SHIPPED" || len(s.Items) != 1 {
			t.Fatalf("admin's shipment %+v", s)
		}
		// SHIPPED is not PAID either.
		r, p = env.as(m1.Token).ship(own, "UPS", "T1", nil)
		requireShipErrors(t, r, p, wantUserError{"INVALID_TRANSITION", []string{"orderId"}})

		// updateOrderStatus still moves an order without shipments.
		env.markPaid(admin, order)
		r2, p2 := env.as(m1.Token).mutate("updateOrderStatus", opUpdateOrderStatus,
			map[string]any{"in": map[string]any{"id": order, "status": "SHIPPED"}})
		requireOK(t, r2, p2)
		var out struct {
			Order struct{ Shipments []shipmentView }
		}
		env.as(customer.Token).must(`query($id: ID!) { order(id: $id) { shipments { id } } }`, map[string]any{"id": order}, &out)
		if len(out.Order.Shipments) != 0 {
			t.Fatalf("shipments of an order shipped by hand: %+v", out.Order.Shipments)
		}
	})
}

// TestAdjustStockRules: adjustStock's validation with codes and fields, its authorization,
// and that it is relative.
func TestAdjustStockRules(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		m1, m2, customer := env.signUp("MERCHANT"), env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		p := env.createProduct(m1, "Lamp", 1000, 10)
		for _, tc := range []struct {
			delta  int
			reason string
			want   wantUserError
		}{
			{0, "count", wantUserError{"INVALID_INPUT", []string{"delta"}}},
			{1_000_001, "count", wantUserError{"INVALID_INPUT", []string{"delta"}}},
			{-1_000_001, "count", wantUserError{"INVALID_INPUT", []string{"delta"}}},
			{5, "", wantUserError{"INVALID_INPUT", []string{"reason"}}},
			{5, strings.Repeat("r", 201), wantUserError{"INVALID_INPUT", []string{"reason"}}},
			{-11, "broken", wantUserError{"INSUFFICIENT_STOCK", []string{"delta"}}},
			{1_000_000 - 9, "delivery", wantUserError{"INVALID_INPUT", []string{"delta"}}},
		} {
			r, pl := env.as(m1.Token).adjust(p, tc.delta, tc.reason)
			requireUserErrors(t, r, pl, tc.want)
		}
		r, pl := env.as(m1.Token).adjust(gid("Product", 999999), 1, "x")
		requireUserErrors(t, r, pl, wantUserError{"NOT_FOUND", []string{"productId"}})
		requireCode(t, env.as(m2.Token).post(opAdjustStock, map[string]any{"in": map[string]any{"productId": p, "delta": 1, "reason": "x"}}), "FORBIDDEN")
		requireCode(t, env.as(customer.Token).post(opAdjustStock, map[string]any{"in": map[string]any{"productId": p, "delta": 1, "reason": "x"}}), "FORBIDDEN")
		requireCode(t, env.anon().post(opAdjustStock, map[string]any{"in": map[string]any{"productId": p, "delta": 1, "reason": "x"}}), "UNAUTHENTICATED")
		if got := env.stock(p); got != 10 {
			t.Fatalf("refused adjustments changed the stock to %d", got)
		}
		r, pl = env.as(m1.Token).adjust(p, -10, "stocktake: all broken")
		requireOK(t, r, pl)
		r, pl = env.as(admin.Token).adjust(p, 1_000_000, "warehouse found")
		requireOK(t, r, pl)
		if pl.Product.Stock != 1_000_000 || env.stock(p) != 1_000_000 {
			t.Fatalf("stock %d after -10 and +1,000,000 from 10", pl.Product.Stock)
		}
	})
}

// TestUpdateProductExpectedStock: a stale expectedStock is STOCK_CHANGED on ["stock"] and
// changes nothing; lowStockThreshold is validated and saved.
func TestUpdateProductExpectedStock(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		m, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		p := env.createProduct(m, "Lamp", 1000, 40)
		env.placeOrder(customer, line{p, 3})
		r, pl := env.as(m.Token).mutate("updateProduct", opUpdateProduct,
			map[string]any{"in": map[string]any{"id": p, "stock": 40, "name": "Renamed", "expectedStock": 40}})
		requireUserErrors(t, r, pl, wantUserError{"STOCK_CHANGED", []string{"stock"}})
		if got := env.product(p); got.Stock != 37 || got.Name != "Lamp" {
			t.Fatalf("a refused update changed the product: %+v", got)
		}
		r, pl = env.as(m.Token).mutate("updateProduct", opUpdateProduct,
			map[string]any{"in": map[string]any{"id": p, "lowStockThreshold": -1}})
		requireUserErrors(t, r, pl, wantUserError{"INVALID_INPUT", []string{"lowStockThreshold"}})
		r, pl = env.as(m.Token).mutate("createProduct", opCreateProduct,
			map[string]any{"in": map[string]any{"name": "X", "price": 1, "stock": 1, "lowStockThreshold": 1_000_001}})
		requireUserErrors(t, r, pl, wantUserError{"INVALID_INPUT", []string{"lowStockThreshold"}})

		r, pl = env.as(m.Token).mutate("updateProduct", opUpdateProduct,
			map[string]any{"in": map[string]any{"id": p, "stock": 40, "expectedStock": 37, "lowStockThreshold": 5}})
		requireOK(t, r, pl)
		var out struct {
			Product struct{ Stock, LowStockThreshold int }
		}
		env.as(m.Token).must(`query($id: ID!) { product(id: $id) { stock lowStockThreshold } }`, map[string]any{"id": p}, &out)
		if out.Product.Stock != 40 || out.Product.LowStockThreshold != 5 {
			t.Fatalf("product after update %+v", out.Product)
		}
	})
}

// TestStockLedger: every kind of stock change appends one movement, newest first, with its
// delta, stockAfter, reason, note and order; a write that keeps the stock appends none; the
// deltas add up to the stock; pages walk the whole ledger once; only the product's merchant
// and ADMINs read it.
func TestStockLedger(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		m, other, customer := env.signUp("MERCHANT"), env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		p := env.createProduct(m, "Lamp", 1000, 20)
		order := env.placeOrder(customer, line{p, 3})
		r, pl := env.as(customer.Token).mutate("cancelOrder", opCancelOrder, map[string]any{"id": order})
		requireOK(t, r, pl)
		order2 := env.placeOrder(customer, line{p, 5})
		r, pl = env.as(m.Token).adjust(p, 7, "  delivery from the supplier ")
		requireOK(t, r, pl)
		r, pl = env.as(m.Token).mutate("updateProduct", opUpdateProduct, map[string]any{"in": map[string]any{"id": p, "stock": 30}})
		requireOK(t, r, pl)
		// Same stock, and a name change: no movement.
		r, pl = env.as(m.Token).mutate("updateProduct", opUpdateProduct, map[string]any{"in": map[string]any{"id": p, "stock": 30, "name": "Lamp 2"}})
		requireOK(t, r, pl)

		type want struct {
			delta, after int
			reason       string
			order        string
		}
		wants := []want{{8, 30, "PRODUCT_UPDATE", ""}, {7, 22, "ADJUSTMENT", ""}, {-5, 15, "ORDER_PLACED", order2},
			{3, 20, "ORDER_CANCELLED", order}, {-3, 17, "ORDER_PLACED", order}, {20, 20, "CREATED", ""}}
		for _, who := range []account{m, admin} {
			resp, stock, ms, total := env.as(who.Token).ledger(p, 20)
			if len(resp.Errors) > 0 || stock != 30 || total != len(wants) || len(ms) != len(wants) {
				t.Fatalf("ledger: errors %+v, stock %d, total %d, movements %+v", resp.Errors, stock, total, ms)
			}
			sum := 0
			for i, w := range wants {
				g := ms[i]
				sum += g.Delta
				gotOrder := ""
				if g.Order != nil {
					gotOrder = g.Order.ID
				}
				if g.Delta != w.delta || g.StockAfter != w.after || g.Reason != w.reason || gotOrder != w.order || g.At == "" {
					t.Fatalf("movement %d = %+v, want %+v", i, g, w)
				}
			}
			if sum != stock {
				t.Fatalf("deltas add up to %d, stock %d", sum, stock)
			}
			if n := ms[1].Note; n == nil || *n != "delivery from the supplier" {
				t.Fatalf("adjustment note %v", n)
			}
		}
		// Pages of two walk the ledger once, newest first.
		var seen []string
		after := any(nil)
		for range 10 {
			var out struct {
				Product struct {
					StockMovements struct {
						PageInfo struct {
							HasNextPage bool
							EndCursor   string
						}
						Nodes []struct{ ID string }
					}
				}
			}
			env.as(m.Token).must(`query($id: ID!, $after: String) { product(id: $id) { stockMovements(first: 2, after: $after) {
				pageInfo { hasNextPage endCursor } nodes { id } } } }`, map[string]any{"id": p, "after": after}, &out)
			for _, n := range out.Product.StockMovements.Nodes {
				seen = append(seen, n.ID)
			}
			if !out.Product.StockMovements.PageInfo.HasNextPage {
				break
			}
			after = out.Product.StockMovements.PageInfo.EndCursor
		}
		if len(seen) != len(wants) || len(slices.Compact(slices.Clone(seen))) != len(wants) {
			t.Fatalf("paging saw %v", seen)
		}
		requireCode(t, env.as(m.Token).post(opLedger, map[string]any{"id": p, "first": 101}), "BAD_USER_INPUT")
		// Another merchant, a customer and anonymous callers: null with FORBIDDEN, the rest
		// of the product resolves.
		for _, c := range []*client{env.as(other.Token), env.as(customer.Token), env.anon()} {
			resp, stock, ms, _ := c.ledger(p, 5)
			if resp.Code() != "FORBIDDEN" || ms != nil || stock != 30 {
				t.Fatalf("a stranger's ledger: code %q, movements %+v, stock %d", resp.Code(), ms, stock)
			}
		}
	})
}
