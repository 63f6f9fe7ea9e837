package tests

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The contract's "Checkout: reservations and payments" section, on both backends, through
// the HTTP handler with the built-in test provider. The Stripe part is in
// checkout_stripe_test.go.

const (
	paymentFields = `id status amount { amount currency } provider providerReference clientSecret failureReason
		createdAt updatedAt order { id status reservedUntil }`
	opPayOrder = `mutation($in: PayOrderInput!) { payOrder(input: $in) {
		payment { ` + paymentFields + ` } userErrors { field message code } } }`
	opConfirmTestPayment = `mutation($in: ConfirmTestPaymentInput!) { confirmTestPayment(input: $in) {
		payment { ` + paymentFields + ` } userErrors { field message code } } }`
	opOrderCheckout = `query($id: ID!) { order(id: $id) { id status createdAt reservedUntil total { amount }
		items { quantity product { id stock } }
		payments { ` + paymentFields + ` }
		history { status previousStatus note } } }`
)

// paymentView is a Payment as the checkout tests select it.
type paymentView struct {
	ID     string
	Status string
	Amount struct {
		Amount   int
		Currency string
	}
	Provider          string
	ProviderReference *string
	ClientSecret      *string
	FailureReason     *string
	CreatedAt         string
	UpdatedAt         string
	Order             struct {
		ID            string
		Status        string
		ReservedUntil *string
	}
}

// checkoutOrderView is an Order with its checkout fields.
type checkoutOrderView struct {
	ID            string
	Status        string
	CreatedAt     string
	ReservedUntil *string
	Total         struct{ Amount int }
	Payments      []paymentView
	History       []struct {
		Status         string
		PreviousStatus *string
		Note           *string
	}
}

// paymentPayloadView is a PaymentPayload.
type paymentPayloadView struct {
	Payment    *paymentView
	UserErrors []userError
}

// pay sends payOrder as c and returns the response and its payload (nil when null).
func (c *client) pay(orderID, key string) (gqlResponse, *paymentPayloadView) {
	c.env.t.Helper()
	r := c.post(opPayOrder, map[string]any{"in": map[string]any{"orderId": orderID, "idempotencyKey": key}})
	var data struct{ PayOrder *paymentPayloadView }
	if len(r.Data) > 0 && string(r.Data) != "null" {
		r.Decode(c.env.t, &data)
	}
	return r, data.PayOrder
}

// mustPay pays and fails unless a payment comes back.
func (c *client) mustPay(orderID, key string) paymentView {
	c.env.t.Helper()
	r, p := c.pay(orderID, key)
	if len(r.Errors) > 0 || p == nil || p.Payment == nil || len(p.UserErrors) > 0 {
		c.env.t.Fatalf("payOrder(%s, %q): errors %+v, payload %+v", orderID, key, r.Errors, p)
	}
	return *p.Payment
}

// confirm sends confirmTestPayment as c.
func (c *client) confirm(paymentID, outcome string) (gqlResponse, *paymentPayloadView) {
	c.env.t.Helper()
	r := c.post(opConfirmTestPayment, map[string]any{"in": map[string]any{"paymentId": paymentID, "outcome": outcome}})
	var data struct{ ConfirmTestPayment *paymentPayloadView }
	if len(r.Data) > 0 && string(r.Data) != "null" {
		r.Decode(c.env.t, &data)
	}
	return r, data.ConfirmTestPayment
}

// mustConfirm confirms and fails unless a payment comes back.
func (c *client) mustConfirm(paymentID, outcome string) paymentView {
	c.env.t.Helper()
	r, p := c.confirm(paymentID, outcome)
	if len(r.Errors) > 0 || p == nil || p.Payment == nil || len(p.UserErrors) > 0 {
		c.env.t.Fatalf("confirmTestPayment(%s, %s): errors %+v, payload %+v", paymentID, outcome, r.Errors, p)
	}
	return *p.Payment
}

// checkoutOrder reads an order's checkout fields as c.
func (c *client) checkoutOrder(id string) checkoutOrderView {
	c.env.t.Helper()
	var out struct{ Order *checkoutOrderView }
	c.must(opOrderCheckout, map[string]any{"id": id}, &out)
	if out.Order == nil {
		c.env.t.Fatalf("order %s not found", id)
	}
	return *out.Order
}

// requirePaymentErrors fails unless the payload carries exactly want and no payment.
func requirePaymentErrors(t *testing.T, r gqlResponse, p *paymentPayloadView, want ...wantUserError) {
	t.Helper()
	if len(r.Errors) > 0 || p == nil {
		t.Fatalf("want userErrors %v, got errors %+v and payload %+v", want, r.Errors, p)
	}
	if p.Payment != nil || len(p.UserErrors) != len(want) {
		t.Fatalf("want userErrors %v, got %+v", want, p)
	}
	for i, w := range want {
		if p.UserErrors[i].Code != w.Code || strings.Join(p.UserErrors[i].Field, ".") != strings.Join(w.Field, ".") {
			t.Fatalf("userError %d = %+v, want %+v", i, p.UserErrors[i], w)
		}
	}
}

// forEachBackendWith is forEachBackendWithAdmin on a configuration changed by change.
func forEachBackendWith(t *testing.T, change func(*config), test func(t *testing.T, env *testEnv, admin account)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			cfg.AdminEmail, cfg.AdminPassword = testAdminEmail, testAdminPassword
			change(&cfg)
			env := newTestEnv(t, cfg)
			test(t, env, env.logIn(testAdminEmail, testAdminPassword))
		})
	}
}

// shop is a merchant with one product and a customer, on env.
type shop struct {
	merchant, customer account
	product            string
}

func newShop(env *testEnv, price, stock int) shop {
	s := shop{merchant: env.signUp("MERCHANT"), customer: env.signUp("CUSTOMER")}
	s.product = env.createProduct(s.merchant, "Lamp", price, stock)
	return s
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return at
}

// TestCheckoutPaySucceeds: placeOrder reserves for ORDER_RESERVATION_TTL; payOrder starts a
// PENDING payment of the order's total whose client secret only the customer sees; SUCCEED
// makes it SUCCEEDED and the order PAID (reservedUntil null, a PENDING→PAID event); repeats
// of the key return the same payment also once PAID; the settled outcome is final.
func TestCheckoutPaySucceeds(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 1250, 10)
		order := env.placeOrder(s.customer, line{s.product, 2})
		cust := env.as(s.customer.Token)
		o := cust.checkoutOrder(order)
		if o.ReservedUntil == nil {
			t.Fatal("a placed order has no reservedUntil")
		}
		if d := parseTime(t, *o.ReservedUntil).Sub(parseTime(t, o.CreatedAt)); d != 15*time.Minute {
			t.Errorf("reservedUntil - createdAt = %v, want the default 15m", d)
		}
		if len(o.Payments) != 0 {
			t.Fatalf("a new order has payments: %+v", o.Payments)
		}

		p := cust.mustPay(order, "k1")
		if p.Status != "PENDING" || p.Amount.Amount != 2500 || p.Amount.Currency != "USD" || p.Provider != "test" {
			t.Fatalf("payment = %+v, want PENDING 2500 USD test", p)
		}
		if p.ClientSecret == nil || *p.ClientSecret == "" {
			t.Fatal("the customer gets no clientSecret of a PENDING payment")
		}
		// Anyone else who sees the order sees the payment, without its secret.
		for _, who := range []account{admin, s.merchant} {
			var out struct{ Node *paymentView }
			env.as(who.Token).must(`query($id: ID!) { node(id: $id) { ... on Payment { `+paymentFields+` } } }`,
				map[string]any{"id": p.ID}, &out)
			if out.Node == nil || out.Node.ID != p.ID || out.Node.ClientSecret != nil {
				t.Fatalf("node(payment) as %s = %+v, want the payment without clientSecret", who.Email, out.Node)
			}
		}
		if again := cust.mustPay(order, "k1"); again.ID != p.ID {
			t.Fatalf("the same key started another payment: %s, want %s", again.ID, p.ID)
		}

		done := cust.mustConfirm(p.ID, "SUCCEED")
		if done.Status != "SUCCEEDED" || done.ClientSecret != nil || done.Order.Status != "PAID" || done.Order.ReservedUntil != nil {
			t.Fatalf("after SUCCEED: %+v", done)
		}
		o = cust.checkoutOrder(order)
		last := o.History[len(o.History)-1]
		if len(o.History) != 2 || last.Status != "PAID" || last.PreviousStatus == nil || *last.PreviousStatus != "PENDING" {
			t.Fatalf("history = %+v, want PENDING then PENDING→PAID", o.History)
		}
		if again := cust.mustConfirm(p.ID, "SUCCEED"); again.Status != "SUCCEEDED" || again.UpdatedAt != done.UpdatedAt {
			t.Fatalf("repeating SUCCEED changed the payment: %+v", again)
		}
		r, pl := cust.confirm(p.ID, "DECLINE")
		requirePaymentErrors(t, r, pl, wantUserError{Code: "INVALID_TRANSITION", Field: []string{"outcome"}})
		// The key still answers with its payment once the order is PAID; a new key cannot pay.
		if again := cust.mustPay(order, "k1"); again.ID != p.ID || again.Status != "SUCCEEDED" {
			t.Fatalf("repeat after PAID = %+v", again)
		}
		r, pl = cust.pay(order, "k2")
		requirePaymentErrors(t, r, pl, wantUserError{Code: "INVALID_TRANSITION", Field: []string{"orderId"}})
		if n := len(cust.checkoutOrder(order).Payments); n != 1 {
			t.Fatalf("%d payments, want 1", n)
		}
		if got := env.stock(s.product); got != 8 {
			t.Fatalf("stock = %d, want 8", got)
		}
	})
}

// TestCheckoutDeclineThenPayAgain: DECLINE makes the payment FAILED with a reason and leaves
// the order PENDING with the same reservedUntil; a new key starts a new payment, the old key
// still returns the failed one; payments are listed oldest first.
func TestCheckoutDeclineThenPayAgain(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 500, 5)
		order := env.placeOrder(s.customer, line{s.product, 1})
		cust := env.as(s.customer.Token)
		before := cust.checkoutOrder(order)
		p := cust.mustPay(order, "first")
		failed := cust.mustConfirm(p.ID, "DECLINE")
		if failed.Status != "FAILED" || failed.FailureReason == nil || *failed.FailureReason == "" || failed.ClientSecret != nil {
			t.Fatalf("after DECLINE: %+v", failed)
		}
		after := cust.checkoutOrder(order)
		if after.Status != "PENDING" || after.ReservedUntil == nil || *after.ReservedUntil != *before.ReservedUntil {
			t.Fatalf("order after a decline = %+v, want PENDING with reservedUntil %v", after, *before.ReservedUntil)
		}
		if again := cust.mustConfirm(p.ID, "DECLINE"); again.Status != "FAILED" || again.UpdatedAt != failed.UpdatedAt {
			t.Fatalf("repeating DECLINE changed the payment: %+v", again)
		}
		r, pl := cust.confirm(p.ID, "SUCCEED")
		requirePaymentErrors(t, r, pl, wantUserError{Code: "INVALID_TRANSITION", Field: []string{"outcome"}})
		if old := cust.mustPay(order, "first"); old.ID != p.ID || old.Status != "FAILED" {
			t.Fatalf("the failed payment's key = %+v", old)
		}
		second := cust.mustPay(order, "second")
		if second.ID == p.ID || second.Status != "PENDING" {
			t.Fatalf("a new key after FAILED = %+v, want a new PENDING payment", second)
		}
		cust.mustConfirm(second.ID, "SUCCEED")
		o := cust.checkoutOrder(order)
		if o.Status != "PAID" || len(o.Payments) != 2 || o.Payments[0].ID != p.ID || o.Payments[1].Status != "SUCCEEDED" {
			t.Fatalf("order = %+v, want PAID with the failed then the succeeded payment", o)
		}
	})
}

// TestCheckoutOnePendingPayment: an order has at most one PENDING payment, a new key returns
// it, and racing payOrder calls (same key, or different keys) all get the same payment.
func TestCheckoutOnePendingPayment(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 100, 100)
		cust := env.as(s.customer.Token)
		order := env.placeOrder(s.customer, line{s.product, 1})
		p := cust.mustPay(order, "a")
		if other := cust.mustPay(order, "b"); other.ID != p.ID {
			t.Fatalf("a new key with a PENDING payment started %s, want %s", other.ID, p.ID)
		}
		for _, sameKey := range []bool{true, false} {
			order := env.placeOrder(s.customer, line{s.product, 1})
			const n = 8
			ids := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					key := "race"
					if !sameKey {
						key = fmt.Sprintf("race-%d", i)
					}
					r, pl := cust.pay(order, key)
					if len(r.Errors) == 0 && pl != nil && pl.Payment != nil {
						ids[i] = pl.Payment.ID
					}
				})
			}
			wg.Wait()
			for i, id := range ids {
				if id == "" || id != ids[0] {
					t.Fatalf("sameKey=%v: racing payOrder %d got %q, want every one %q", sameKey, i, id, ids[0])
				}
			}
			if got := len(cust.checkoutOrder(order).Payments); got != 1 {
				t.Fatalf("sameKey=%v: %d payments after the race, want 1", sameKey, got)
			}
		}
	})
}

// TestCheckoutAuthorization: who may pay, confirm and see a payment, and the key's bounds.
func TestCheckoutAuthorization(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 100, 100)
		stranger, otherMerchant := env.signUp("CUSTOMER"), env.signUp("MERCHANT")
		order := env.placeOrder(s.customer, line{s.product, 1})

		if r, p := env.anon().pay(order, "k"); r.Code() != "UNAUTHENTICATED" || p != nil {
			t.Fatalf("anonymous payOrder: %+v %+v", r.Errors, p)
		}
		r, p := env.as(stranger.Token).pay(order, "k")
		requirePaymentErrors(t, r, p, wantUserError{Code: "NOT_FOUND", Field: []string{"orderId"}})
		r, p = env.as(otherMerchant.Token).pay(order, "k")
		requirePaymentErrors(t, r, p, wantUserError{Code: "NOT_FOUND", Field: []string{"orderId"}})
		r, p = env.as(s.customer.Token).pay(gid("Order", 999_999), "k")
		requirePaymentErrors(t, r, p, wantUserError{Code: "NOT_FOUND", Field: []string{"orderId"}})
		for _, who := range []account{s.merchant, admin} { // they see the order but did not place it
			if r, _ := env.as(who.Token).pay(order, "k"); r.Code() != "FORBIDDEN" {
				t.Fatalf("payOrder as %s: %+v, want FORBIDDEN", who.Email, r.Errors)
			}
		}
		for _, key := range []string{"", strings.Repeat("k", 101)} {
			r, p := env.as(s.customer.Token).pay(order, key)
			requirePaymentErrors(t, r, p, wantUserError{Code: "INVALID_INPUT", Field: []string{"idempotencyKey"}})
		}
		if got := len(env.as(admin.Token).checkoutOrder(order).Payments); got != 0 {
			t.Fatalf("refused payOrder calls left %d payments", got)
		}

		pay := env.as(s.customer.Token).mustPay(order, strings.Repeat("k", 100))
		r, p = env.as(stranger.Token).confirm(pay.ID, "SUCCEED")
		requirePaymentErrors(t, r, p, wantUserError{Code: "NOT_FOUND", Field: []string{"paymentId"}})
		if r, _ := env.as(s.merchant.Token).confirm(pay.ID, "SUCCEED"); r.Code() != "FORBIDDEN" {
			t.Fatalf("confirmTestPayment by the order's merchant: %+v, want FORBIDDEN", r.Errors)
		}
		r = env.as(stranger.Token).post(`query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": pay.ID})
		if r.Code() != "NOT_FOUND" {
			t.Fatalf("node(payment) of a stranger: %+v, want NOT_FOUND", r.Errors)
		}
		if done := env.as(admin.Token).mustConfirm(pay.ID, "SUCCEED"); done.Status != "SUCCEEDED" {
			t.Fatalf("confirm by ADMIN = %+v", done)
		}
	})
}

// TestCheckoutCancelAndRefund: cancelling an order (or marking it PAID by hand) cancels its
// PENDING payment; a late success on a cancelled order is refunded with no stock taken;
// cancelling a PAID order puts the stock back at once and refunds its payment within 5 s.
func TestCheckoutCancelAndRefund(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 300, 10)
		cust := env.as(s.customer.Token)
		paymentStatus := func(order string, i int) func() string {
			return func() string { return cust.checkoutOrder(order).Payments[i].Status }
		}

		cancelled := env.placeOrder(s.customer, line{s.product, 2})
		p := cust.mustPay(cancelled, "k")
		r, pl := env.as(s.customer.Token).mutate("cancelOrder", opCancelOrder, map[string]any{"id": cancelled})
		requireOK(t, r, pl)
		if got := paymentStatus(cancelled, 0)(); got != "CANCELED" {
			t.Fatalf("payment of a cancelled order is %s, want CANCELED", got)
		}
		if got := cust.checkoutOrder(cancelled).ReservedUntil; got != nil {
			t.Fatalf("a cancelled order keeps reservedUntil %s", *got)
		}
		if got := cust.mustConfirm(p.ID, "DECLINE"); got.Status != "CANCELED" {
			t.Fatalf("DECLINE of a CANCELED payment changed it: %+v", got)
		}
		late := cust.mustConfirm(p.ID, "SUCCEED")
		if late.Order.Status != "CANCELLED" {
			t.Fatalf("a late success moved the order: %+v", late)
		}
		waitFor(t, 5*time.Second, "the late success's refund", func() bool { return paymentStatus(cancelled, 0)() == "REFUNDED" })
		if got := env.stock(s.product); got != 10 {
			t.Fatalf("stock = %d after a cancelled order's late success, want 10", got)
		}

		byHand := env.placeOrder(s.customer, line{s.product, 1})
		cust.mustPay(byHand, "k")
		r, pl = env.as(admin.Token).mutate("updateOrderStatus", opUpdateOrderStatus,
			map[string]any{"in": map[string]any{"id": byHand, "status": "PAID"}})
		requireOK(t, r, pl)
		o := cust.checkoutOrder(byHand)
		if o.Status != "PAID" || o.ReservedUntil != nil || o.Payments[0].Status != "CANCELED" {
			t.Fatalf("marked PAID by hand: %+v, want PAID, no reservedUntil, payment CANCELED", o)
		}

		paid := env.placeOrder(s.customer, line{s.product, 3})
		cust.mustConfirm(cust.mustPay(paid, "k").ID, "SUCCEED")
		if got := env.stock(s.product); got != 6 {
			t.Fatalf("stock = %d with two orders holding 4, want 6", got)
		}
		r, pl = env.as(s.customer.Token).mutate("cancelOrder", opCancelOrder, map[string]any{"id": paid})
		requireOK(t, r, pl)
		if got := env.stock(s.product); got != 9 {
			t.Fatalf("stock = %d right after cancelling the PAID order, want 9", got)
		}
		waitFor(t, 5*time.Second, "the cancelled PAID order's refund", func() bool { return paymentStatus(paid, 0)() == "REFUNDED" })
		o = cust.checkoutOrder(paid)
		if o.Status != "CANCELLED" || o.History[len(o.History)-1].PreviousStatus == nil || *o.History[len(o.History)-1].PreviousStatus != "PAID" {
			t.Fatalf("cancelled PAID order = %+v", o)
		}
	})
}

// TestCheckoutProviderUnavailable: while the provider cannot be reached payOrder is the
// top-level PAYMENT_PROVIDER_UNAVAILABLE and writes nothing; the same key works afterwards.
func TestCheckoutProviderUnavailable(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 100, 10)
		cust := env.as(s.customer.Token)
		order := env.placeOrder(s.customer, line{s.product, 1})
		env.svc.Checkout.Test().Fail(true)
		for range 2 {
			r, p := cust.pay(order, "k")
			if r.Code() != "PAYMENT_PROVIDER_UNAVAILABLE" || p != nil {
				t.Fatalf("payOrder while the provider is down: %+v %+v", r.Errors, p)
			}
		}
		if got := len(cust.checkoutOrder(order).Payments); got != 0 {
			t.Fatalf("a failed payOrder left %d payments", got)
		}
		env.svc.Checkout.Test().Fail(false)
		if p := cust.mustPay(order, "k"); p.Status != "PENDING" || p.ClientSecret == nil {
			t.Fatalf("payOrder once the provider is back = %+v", p)
		}
	})
}

// TestCheckoutProviderNone: with PAYMENT_PROVIDER=none payOrder is BAD_USER_INPUT,
// confirmTestPayment FORBIDDEN, and orders are marked paid by hand.
func TestCheckoutProviderNone(t *testing.T) {
	t.Parallel()
	forEachBackendWith(t, func(c *config) { c.PaymentProvider = "none" }, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 100, 10)
		order := env.placeOrder(s.customer, line{s.product, 1})
		if r, _ := env.as(s.customer.Token).pay(order, "k"); r.Code() != "BAD_USER_INPUT" {
			t.Fatalf("payOrder with no provider: %+v", r.Errors)
		}
		if r, _ := env.as(admin.Token).confirm(gid("Payment", 1), "SUCCEED"); r.Code() != "FORBIDDEN" {
			t.Fatalf("confirmTestPayment with no provider: %+v", r.Errors)
		}
		r, p := env.as(admin.Token).mutate("updateOrderStatus", opUpdateOrderStatus,
			map[string]any{"in": map[string]any{"id": order, "status": "PAID"}})
		requireOK(t, r, p)
	})
}

// TestCheckoutReservationExpires: an unpaid order is cancelled within 5 s of reservedUntil,
// once although two processes work the jobs: stock back, one PENDING→CANCELLED event noted
// "reservation expired", its PENDING payment CANCELED; it can no longer be paid, and a late
// success is refunded. ORDER_RESERVATION_TTL=0 reserves for ever.
func TestCheckoutReservationExpires(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			cfg.AdminEmail, cfg.AdminPassword, cfg.ReservationTTL = testAdminEmail, testAdminPassword, ttl
			env := newTestEnv(t, cfg)
			second := env
			if cfg.RedisURL != "" {
				// Two processes on one database and Redis. (The embedded mode is one process:
				// its Redis stand-in, and so its cache, is its own.)
				second = newTestEnv(t, cfg)
			}
			admin := env.logIn(testAdminEmail, testAdminPassword)
			s := newShop(env, 100, 10)
			cust := env.as(s.customer.Token)
			unpaid := env.placeOrder(s.customer, line{s.product, 3})
			withPayment := env.placeOrder(s.customer, line{s.product, 4})
			p := second.as(s.customer.Token).mustPay(withPayment, "k")
			paid := env.placeOrder(s.customer, line{s.product, 1})
			cust.mustConfirm(cust.mustPay(paid, "k").ID, "SUCCEED")
			if got := env.stock(s.product); got != 2 {
				t.Fatalf("stock = %d, want 2", got)
			}
			until := parseTime(t, *cust.checkoutOrder(withPayment).ReservedUntil)
			waitFor(t, time.Until(until)+5*time.Second, "both unpaid orders to expire", func() bool {
				return cust.checkoutOrder(unpaid).Status == "CANCELLED" && cust.checkoutOrder(withPayment).Status == "CANCELLED"
			})
			for _, id := range []string{unpaid, withPayment} {
				o := cust.checkoutOrder(id)
				if len(o.History) != 2 || o.History[1].Note == nil || *o.History[1].Note != "reservation expired" ||
					*o.History[1].PreviousStatus != "PENDING" || o.ReservedUntil != nil {
					t.Fatalf("expired order = %+v, want one PENDING→CANCELLED event noted \"reservation expired\"", o)
				}
			}
			if got := cust.checkoutOrder(withPayment).Payments[0].Status; got != "CANCELED" {
				t.Fatalf("the expired order's payment is %s, want CANCELED", got)
			}
			if got := env.stock(s.product); got != 9 {
				t.Fatalf("stock = %d after expiry, want 9", got)
			}
			if o := cust.checkoutOrder(paid); o.Status != "PAID" {
				t.Fatalf("a paid order expired: %+v", o)
			}
			r, pl := cust.pay(unpaid, "k")
			requirePaymentErrors(t, r, pl, wantUserError{Code: "INVALID_TRANSITION", Field: []string{"orderId"}})
			cust.mustConfirm(p.ID, "SUCCEED")
			waitFor(t, 5*time.Second, "the late success's refund", func() bool {
				return cust.checkoutOrder(withPayment).Payments[0].Status == "REFUNDED"
			})
			if got := env.stock(s.product); got != 9 {
				t.Fatalf("stock = %d after a late success, want 9", got)
			}
			_ = admin
		})
	}
	t.Run("ttl0", func(t *testing.T) {
		cfg := backends[0].config(t)
		cfg.ReservationTTL = -1 // ORDER_RESERVATION_TTL=0
		env := newTestEnv(t, cfg)
		s := newShop(env, 100, 10)
		order := env.placeOrder(s.customer, line{s.product, 1})
		if o := env.as(s.customer.Token).checkoutOrder(order); o.ReservedUntil != nil {
			t.Fatalf("reservedUntil = %s with no reservation", *o.ReservedUntil)
		}
	})
}

// TestCheckoutMetrics: /metrics counts payments by status and jobs by kind and state, and the
// outcomes of the jobs this process worked.
func TestCheckoutMetrics(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 100, 10)
		cust := env.as(s.customer.Token)
		paid := env.placeOrder(s.customer, line{s.product, 1})
		cust.mustConfirm(cust.mustPay(paid, "k").ID, "SUCCEED")
		failed := env.placeOrder(s.customer, line{s.product, 1})
		cust.mustConfirm(cust.mustPay(failed, "k").ID, "DECLINE")
		cust.mustPay(failed, "k2")
		r, p := cust.mutate("cancelOrder", opCancelOrder, map[string]any{"id": failed})
		requireOK(t, r, p)
		for status, want := range map[string]float64{"PENDING": 0, "SUCCEEDED": 1, "FAILED": 1, "CANCELED": 1, "REFUNDED": 0} {
			if got := metricValue(t, env, "shop_payments", `status="`+status+`"`); got != want {
				t.Errorf("shop_payments{status=%q} = %v, want %v", status, got, want)
			}
		}
		// Two orders, two expiry jobs each (the second a backup), waiting for their time.
		if got := metricValue(t, env, "shop_jobs", `kind="expire_order"`, `state="available"`); got != 4 {
			t.Errorf("queued expiries = %v, want 4", got)
		}
		waitFor(t, 5*time.Second, "the cancel job", func() bool {
			return metricValue(t, env, "shop_job_outcomes_total", `kind="cancel_payment"`, `outcome="completed"`) == 1
		})
	})
}
