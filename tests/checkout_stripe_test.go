package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stripe/stripe-go/v84"
	"github.com/stripe/stripe-go/v84/webhook"

	"github.com/shop/api/checkout"
	"github.com/shop/api/store/storetest"
)

// The contract's Stripe part, against stripe-mock (Stripe's own mock of its API) started by
// the test, with webhook events signed as Stripe signs them.

const testWebhookSecret = "whsec_test_secret_of_the_shop"

// stripeMockPath finds the stripe-mock binary on PATH or where go install puts it.
func stripeMockPath() string {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "stripe-mock")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// startStripeMock starts stripe-mock on a free port for the test and returns its URL.
func startStripeMock(t testing.TB) string {
	t.Helper()
	bin := stripeMockPath()
	storetest.Require(t, bin != "", "stripe-mock not found (go install github.com/stripe/stripe-mock@v0.203.0)")
	ports := make([]int, 2)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	cmd := exec.Command(bin, "-http-port", strconv.Itoa(ports[0]), "-https-port", strconv.Itoa(ports[1]))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock does not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// forEachBackendOnStripe is forEachBackendWithAdmin with PAYMENT_PROVIDER=stripe on a stripe-mock.
func forEachBackendOnStripe(t *testing.T, test func(t *testing.T, env *testEnv, admin account)) {
	t.Helper()
	url := startStripeMock(t)
	forEachBackendWith(t, func(c *config) {
		c.PaymentProvider = "stripe"
		c.Stripe = checkout.StripeConfig{APIKey: "sk_test_123", WebhookSecret: testWebhookSecret, APIURL: url}
	}, test)
}

// stripeEvent is a webhook event of type about the object obj.
func stripeEvent(id, typ string, obj map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": stripe.APIVersion,
		"created": time.Now().Unix(), "type": typ, "data": map[string]any{"object": obj}})
	return b
}

// webhook posts body to /webhooks/stripe with the Stripe-Signature header sig and returns
// the status.
func (e *testEnv) webhook(body []byte, sig string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("webhook: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// signed returns the Stripe-Signature of body with secret, made at.
func signed(body []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
}

// deliver posts a correctly signed event and fails unless it is answered 200.
func (e *testEnv) deliver(body []byte) {
	e.t.Helper()
	if got := e.webhook(body, signed(body, testWebhookSecret, time.Now())); got != http.StatusOK {
		e.t.Fatalf("webhook answered %d, want 200", got)
	}
}

// TestStripePayment: payOrder creates a PaymentIntent and hands its client_secret to the
// customer alone; payment_intent.succeeded settles it (order PAID, event), delivered twice
// changes nothing more, and a later payment_failed does not move it back.
func TestStripePayment(t *testing.T) {
	t.Parallel()
	forEachBackendOnStripe(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 1999, 10)
		cust := env.as(s.customer.Token)
		order := env.placeOrder(s.customer, line{s.product, 1})
		p := cust.mustPay(order, "k")
		if p.Provider != "stripe" || p.ProviderReference == nil || !strings.HasPrefix(*p.ProviderReference, "pi_") ||
			p.ClientSecret == nil || *p.ClientSecret == "" || p.Amount.Amount != 1999 {
			t.Fatalf("stripe payment = %+v, want a PaymentIntent with its client_secret", p)
		}
		if again := cust.mustPay(order, "k"); again.ID != p.ID || *again.ProviderReference != *p.ProviderReference {
			t.Fatalf("the same key = %+v, want %+v", again, p)
		}
		if r, _ := cust.confirm(p.ID, "SUCCEED"); r.Code() != "FORBIDDEN" {
			t.Fatalf("confirmTestPayment with stripe: %+v, want FORBIDDEN", r.Errors)
		}
		intent := map[string]any{"id": *p.ProviderReference, "object": "payment_intent", "status": "succeeded"}
		env.deliver(stripeEvent("evt_ok_"+p.ID, "payment_intent.succeeded", intent))
		o := cust.checkoutOrder(order)
		if o.Status != "PAID" || o.Payments[0].Status != "SUCCEEDED" || o.Payments[0].ClientSecret != nil || len(o.History) != 2 {
			t.Fatalf("after payment_intent.succeeded: %+v", o)
		}
		env.deliver(stripeEvent("evt_ok_"+p.ID, "payment_intent.succeeded", intent))
		failed := map[string]any{"id": *p.ProviderReference, "object": "payment_intent",
			"last_payment_error": map[string]any{"message": "Your card was declined."}}
		env.deliver(stripeEvent("evt_late_fail_"+p.ID, "payment_intent.payment_failed", failed))
		if o := cust.checkoutOrder(order); o.Payments[0].Status != "SUCCEEDED" || len(o.History) != 2 || o.Status != "PAID" {
			t.Fatalf("a repeated and a late event changed the order: %+v", o)
		}
		// Unknown intents and other types are answered 200 and ignored.
		env.deliver(stripeEvent("evt_unknown", "payment_intent.succeeded", map[string]any{"id": "pi_unknown", "object": "payment_intent"}))
		env.deliver(stripeEvent("evt_other", "customer.created", map[string]any{"id": "cus_1", "object": "customer"}))

		// Cancelling the PAID order refunds through the API; charge.refunded confirms it.
		r, pl := cust.mutate("cancelOrder", opCancelOrder, map[string]any{"id": order})
		requireOK(t, r, pl)
		waitFor(t, 5*time.Second, "the refund job to call Stripe", func() bool { return env.jobsCompleted("refund_payment") == 1 })
		if got := cust.checkoutOrder(order).Payments[0].Status; got != "SUCCEEDED" {
			t.Fatalf("payment is %s before Stripe confirms the refund, want SUCCEEDED", got)
		}
		env.deliver(stripeEvent("evt_refund_"+p.ID, "charge.refunded", map[string]any{"id": "ch_1", "object": "charge",
			"payment_intent": *p.ProviderReference, "refunded": true}))
		if got := cust.checkoutOrder(order).Payments[0].Status; got != "REFUNDED" {
			t.Fatalf("payment is %s after charge.refunded, want REFUNDED", got)
		}
	})
}

// TestStripeDecline: payment_intent.payment_failed fails the payment with Stripe's message,
// the order stays PENDING, and a new key creates another PaymentIntent.
func TestStripeDecline(t *testing.T) {
	t.Parallel()
	forEachBackendOnStripe(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 500, 10)
		cust := env.as(s.customer.Token)
		order := env.placeOrder(s.customer, line{s.product, 1})
		p := cust.mustPay(order, "k")
		env.deliver(stripeEvent("evt_fail_"+p.ID, "payment_intent.payment_failed", map[string]any{
			"id": *p.ProviderReference, "object": "payment_intent",
			"last_payment_error": map[string]any{"message": "Your card was declined."}}))
		o := cust.checkoutOrder(order)
		if o.Status != "PENDING" || o.Payments[0].Status != "FAILED" || o.Payments[0].FailureReason == nil ||
			*o.Payments[0].FailureReason != "Your card was declined." {
			t.Fatalf("after payment_failed: %+v", o)
		}
		next := cust.mustPay(order, "k2")
		if next.ID == p.ID || *next.ProviderReference == *p.ProviderReference || next.Status != "PENDING" {
			t.Fatalf("a new key after a decline = %+v", next)
		}
	})
}

// TestStripeWebhookRefusals: a missing, wrong or stale signature is 400 and changes
// nothing; a body over 1 MiB is 413.
func TestStripeWebhookRefusals(t *testing.T) {
	t.Parallel()
	forEachBackendOnStripe(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 500, 10)
		cust := env.as(s.customer.Token)
		order := env.placeOrder(s.customer, line{s.product, 1})
		p := cust.mustPay(order, "k")
		body := stripeEvent("evt_forged", "payment_intent.succeeded", map[string]any{"id": *p.ProviderReference, "object": "payment_intent"})
		for name, sig := range map[string]string{
			"missing":     "",
			"wrong key":   signed(body, "whsec_someone_else", time.Now()),
			"stale":       signed(body, testWebhookSecret, time.Now().Add(-6*time.Minute)),
			"malformed":   "t=abc,v1=zz",
			"other body":  signed([]byte(`{}`), testWebhookSecret, time.Now()),
			"only scheme": "v1=" + strings.Repeat("0", 64),
		} {
			if got := env.webhook(body, sig); got != http.StatusBadRequest {
				t.Errorf("%s signature: %d, want 400", name, got)
			}
		}
		if o := cust.checkoutOrder(order); o.Status != "PENDING" || o.Payments[0].Status != "PENDING" {
			t.Fatalf("a refused event changed the order: %+v", o)
		}
		big := bytes.Repeat([]byte(" "), 1<<20+1)
		if got := env.webhook(big, signed(big, testWebhookSecret, time.Now())); got != http.StatusRequestEntityTooLarge {
			t.Fatalf("a body over 1 MiB: %d, want 413", got)
		}
		// The same event correctly signed is applied: the refusals were about the signature.
		env.deliver(body)
		if o := cust.checkoutOrder(order); o.Status != "PAID" {
			t.Fatalf("the signed event was not applied: %+v", o)
		}
	})
}

// TestStripeLateSuccess: a success for an order cancelled meanwhile is refunded and takes
// no stock; the PaymentIntent was cancelled through the API when the order was.
func TestStripeLateSuccess(t *testing.T) {
	t.Parallel()
	forEachBackendOnStripe(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 500, 10)
		cust := env.as(s.customer.Token)
		order := env.placeOrder(s.customer, line{s.product, 2})
		p := cust.mustPay(order, "k")
		r, pl := cust.mutate("cancelOrder", opCancelOrder, map[string]any{"id": order})
		requireOK(t, r, pl)
		if got := cust.checkoutOrder(order).Payments[0].Status; got != "CANCELED" {
			t.Fatalf("payment of the cancelled order is %s, want CANCELED", got)
		}
		waitFor(t, 5*time.Second, "the cancel job to call Stripe", func() bool { return env.jobsCompleted("cancel_payment") == 1 })
		env.deliver(stripeEvent("evt_late_"+p.ID, "payment_intent.succeeded", map[string]any{"id": *p.ProviderReference, "object": "payment_intent"}))
		o := cust.checkoutOrder(order)
		if o.Status != "CANCELLED" || o.Payments[0].Status != "SUCCEEDED" {
			t.Fatalf("after a late success: %+v, want the order CANCELLED and the payment SUCCEEDED until refunded", o)
		}
		env.deliver(stripeEvent("evt_late_refund_"+p.ID, "charge.refunded", map[string]any{"id": "ch_2", "object": "charge",
			"payment_intent": *p.ProviderReference}))
		if got := cust.checkoutOrder(order).Payments[0].Status; got != "REFUNDED" {
			t.Fatalf("late success after charge.refunded: %s, want REFUNDED", got)
		}
		if got := env.stock(s.product); got != 10 {
			t.Fatalf("stock = %d, want 10", got)
		}
	})
}

// jobsCompleted returns how many jobs of kind have completed.
func (e *testEnv) jobsCompleted(kind string) int {
	e.t.Helper()
	res, err := e.svc.Checkout.Jobs().JobList(context.Background(),
		river.NewJobListParams().Kinds(kind).States(rivertype.JobStateCompleted).First(100))
	if err != nil {
		e.t.Fatalf("list jobs: %v", err)
	}
	return len(res.Jobs)
}

// TestStripeEventsOutOfOrder: a charge.refunded that arrives before the success it refunds is
// answered 500 and applied when Stripe delivers it again after the success.
func TestStripeEventsOutOfOrder(t *testing.T) {
	t.Parallel()
	forEachBackendOnStripe(t, func(t *testing.T, env *testEnv, admin account) {
		s := newShop(env, 500, 10)
		cust := env.as(s.customer.Token)
		order := env.placeOrder(s.customer, line{s.product, 1})
		p := cust.mustPay(order, "k")
		r, pl := cust.mutate("cancelOrder", opCancelOrder, map[string]any{"id": order})
		requireOK(t, r, pl)
		refunded := stripeEvent("evt_early_refund_"+p.ID, "charge.refunded", map[string]any{"id": "ch_3", "object": "charge",
			"payment_intent": *p.ProviderReference})
		if got := env.webhook(refunded, signed(refunded, testWebhookSecret, time.Now())); got != http.StatusInternalServerError {
			t.Fatalf("charge.refunded before the success: %d, want 500 (Stripe delivers it again)", got)
		}
		if got := cust.checkoutOrder(order).Payments[0].Status; got != "CANCELED" {
			t.Fatalf("an early refund event changed the payment: %s", got)
		}
		env.deliver(stripeEvent("evt_success_"+p.ID, "payment_intent.succeeded", map[string]any{"id": *p.ProviderReference, "object": "payment_intent"}))
		env.deliver(refunded)
		if got := cust.checkoutOrder(order).Payments[0].Status; got != "REFUNDED" {
			t.Fatalf("after the success and the redelivered refund: %s, want REFUNDED", got)
		}
	})
}
