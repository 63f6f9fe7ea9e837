package checkout

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/stripe/stripe-go/v84"
	"github.com/stripe/stripe-go/v84/webhook"

	"github.com/shop/api/store"
)

// StripeConfig configures the stripe provider.
type StripeConfig struct {
	// APIKey is Stripe's secret key (STRIPE_API_KEY); WebhookSecret the signing secret of
	// the webhook endpoint (STRIPE_WEBHOOK_SECRET). Both required.
	APIKey, WebhookSecret string
	// APIURL is the API's base URL (STRIPE_API_URL, a stripe-mock in tests); empty: Stripe's.
	APIURL string
}

// Stripe takes payments with Stripe PaymentIntents: created with an idempotency key, their
// client_secret confirmed by Stripe.js in the customer's browser, and their outcome reported
// back by webhooks.
type Stripe struct {
	client        *stripe.Client
	webhookSecret string
}

// NewStripe returns the stripe provider; both secrets are required.
func NewStripe(cfg StripeConfig) (*Stripe, error) {
	if cfg.APIKey == "" || cfg.WebhookSecret == "" {
		return nil, errors.New("PAYMENT_PROVIDER=stripe needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET")
	}
	var opts []stripe.ClientOption
	if cfg.APIURL != "" {
		opts = append(opts, stripe.WithBackends(&stripe.Backends{
			API: stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{URL: stripe.String(cfg.APIURL)}),
		}))
	}
	return &Stripe{client: stripe.NewClient(cfg.APIKey, opts...), webhookSecret: cfg.WebhookSecret}, nil
}

// Name implements Provider.
func (s *Stripe) Name() string { return ProviderStripe }

// Create implements Provider: a PaymentIntent for the payment's amount in the shop's
// currency, created once per key.
func (s *Stripe) Create(ctx context.Context, p store.Payment, key string) (Intent, error) {
	params := &stripe.PaymentIntentCreateParams{
		Amount:                  stripe.Int64(int64(p.Amount)),
		Currency:                stripe.String(strings.ToLower(p.Amount.Currency())),
		AutomaticPaymentMethods: &stripe.PaymentIntentCreateAutomaticPaymentMethodsParams{Enabled: stripe.Bool(true)},
	}
	params.Context = ctx
	params.SetIdempotencyKey(key)
	params.AddMetadata("order_id", strconv.FormatInt(p.OrderID, 10))
	params.AddMetadata("payment_id", strconv.FormatInt(p.ID, 10))
	pi, err := s.client.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return Intent{}, err
	}
	return Intent{Reference: pi.ID, Secret: pi.ClientSecret}, nil
}

// Cancel implements Provider. An intent Stripe refuses to cancel (it settled meanwhile) is
// left alone: its outcome arrives as an event, and a late success is refunded then.
func (s *Stripe) Cancel(ctx context.Context, p store.Payment) error {
	params := &stripe.PaymentIntentCancelParams{}
	params.Context = ctx
	params.SetIdempotencyKey("cancel-" + *p.ProviderReference)
	_, err := s.client.V1PaymentIntents.Cancel(ctx, *p.ProviderReference, params)
	if refused(err) {
		return nil
	}
	return err
}

// Refund implements Provider: Stripe confirms the refund with charge.refunded.
func (s *Stripe) Refund(ctx context.Context, p store.Payment) (bool, error) {
	params := &stripe.RefundCreateParams{PaymentIntent: p.ProviderReference}
	params.Context = ctx
	params.SetIdempotencyKey("refund-" + *p.ProviderReference)
	_, err := s.client.V1Refunds.Create(ctx, params)
	if refused(err) {
		return false, nil // refunded already, or nothing to refund: no retry helps
	}
	return false, err
}

// refused reports whether Stripe answered a request as invalid (a 4xx other than rate
// limiting), which no retry changes.
func refused(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500 && se.HTTPStatusCode != http.StatusTooManyRequests
}

// maxWebhookBody is the largest webhook body read; larger ones are refused with 413.
const maxWebhookBody = 1 << 20

// Webhook returns the handler of POST /webhooks/stripe. An event's signature is checked
// against the webhook secret (5 minutes' tolerance; 400 when missing or wrong, and nothing
// changes); payment_intent.succeeded settles its payment as a success,
// payment_intent.payment_failed as a decline, charge.refunded marks it REFUNDED, each in one
// transaction with the order's change, its status event and the event's ID (a repeat
// changes nothing). Other events, and events about unknown intents, are answered 200.
func (s *Stripe) Webhook(st *store.Store, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		event, err := webhook.ConstructEvent(body, r.Header.Get("Stripe-Signature"), s.webhookSecret)
		if err != nil {
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		if err := s.apply(r.Context(), st, event); err != nil {
			// Stripe delivers the event again later.
			log.ErrorContext(r.Context(), "stripe webhook", "event", event.ID, "type", event.Type, "err", err)
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// apply applies one verified event.
func (s *Stripe) apply(ctx context.Context, st *store.Store, event stripe.Event) error {
	if event.Data == nil {
		return nil
	}
	var intentID string
	switch event.Type {
	case "payment_intent.succeeded", "payment_intent.payment_failed":
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(event.Data.Raw, &pi); err != nil {
			return nil // not an intent: nothing of ours
		}
		intentID = pi.ID
		pay, err := st.FindPaymentByReference(ctx, ProviderStripe, intentID)
		if store.ErrorCode(err) == store.CodeNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		settlement := store.Settlement{Succeeded: event.Type == "payment_intent.succeeded", Event: event.ID}
		if pi.LastPaymentError != nil {
			settlement.Reason = pi.LastPaymentError.Msg
		}
		_, err = st.SettlePayment(ctx, pay.ID, settlement)
		return err
	case "charge.refunded":
		var ch stripe.Charge
		if err := json.Unmarshal(event.Data.Raw, &ch); err != nil || ch.PaymentIntent == nil {
			return nil
		}
		pay, err := st.FindPaymentByReference(ctx, ProviderStripe, ch.PaymentIntent.ID)
		if store.ErrorCode(err) == store.CodeNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = st.MarkPaymentRefunded(ctx, pay.ID, event.ID)
		return err
	}
	return nil
}
