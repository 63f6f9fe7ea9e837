package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// PaymentStatus is where a payment is in its life. SUCCEEDED, FAILED and REFUNDED are
// settled: a payment never goes back to PENDING.
type PaymentStatus string

// Payment statuses.
const (
	PaymentPending   PaymentStatus = "PENDING"
	PaymentSucceeded PaymentStatus = "SUCCEEDED"
	PaymentFailed    PaymentStatus = "FAILED"
	PaymentCanceled  PaymentStatus = "CANCELED"
	PaymentRefunded  PaymentStatus = "REFUNDED"
)

// MaxPaymentKey is the longest idempotency key of a payment.
const MaxPaymentKey = 100

// Payment is an attempt to pay for an order through a provider. CustomerID is the order's
// customer, kept on the payment so that who may see its client secret needs no lookup.
type Payment struct {
	ID                int64
	OrderID           int64
	CustomerID        int64
	Amount            Money
	Status            PaymentStatus
	Provider          string
	ProviderReference *string
	// Secret is what the provider's client SDK confirms the payment with; the API shows it
	// to the order's customer while the payment is PENDING.
	Secret          *string
	FailureReason   *string
	IdempotencyKey  string
	RefundRequested bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

type paymentRow struct {
	ID                int64 `gorm:"primaryKey"`
	OrderID           int64
	CustomerID        int64
	IdempotencyKey    string
	Status            string
	Provider          string
	ProviderReference *string
	ClientSecret      *string
	FailureReason     *string
	Amount            int
	RefundRequestedAt *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

func (paymentRow) TableName() string { return "payments" }

func (r *paymentRow) columns() []column {
	return []column{{"id", &r.ID}, {"order_id", &r.OrderID}, {"customer_id", &r.CustomerID},
		{"idempotency_key", &r.IdempotencyKey}, {"status", &r.Status}, {"provider", &r.Provider},
		{"provider_reference", &r.ProviderReference}, {"client_secret", &r.ClientSecret},
		{"failure_reason", &r.FailureReason}, {"amount", &r.Amount}, {"refund_requested_at", &r.RefundRequestedAt},
		{"created_at", &r.CreatedAt}, {"updated_at", &r.UpdatedAt}}
}

func (r paymentRow) toPayment() Payment {
	return Payment{ID: r.ID, OrderID: r.OrderID, CustomerID: r.CustomerID, Amount: Money(r.Amount),
		Status: PaymentStatus(r.Status), Provider: r.Provider, ProviderReference: r.ProviderReference,
		Secret: r.ClientSecret, FailureReason: r.FailureReason, IdempotencyKey: r.IdempotencyKey,
		RefundRequested: r.RefundRequestedAt != nil, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// Jobs schedules the durable work a change asks for. Each method writes its job in the
// change's own transaction tx, so the job exists exactly when the change committed.
type Jobs interface {
	// ExpireOrder asks for ExpireOrder(orderID) at at.
	ExpireOrder(ctx context.Context, tx *sql.Tx, orderID int64, at time.Time) error
	// CancelPayment asks for the payment, already CANCELED here, to be cancelled at its provider.
	CancelPayment(ctx context.Context, tx *sql.Tx, paymentID int64) error
	// RefundPayment asks for the payment, SUCCEEDED here, to be refunded at its provider.
	RefundPayment(ctx context.Context, tx *sql.Tx, paymentID int64) error
}

// SetJobs makes the store schedule its durable work (expiry, cancels, refunds) with j. Call
// it before the store is used concurrently; without it nothing is scheduled.
func (s *Store) SetJobs(j Jobs) { s.jobs = j }

// ReservationTTL is how long a placed order holds its stock unpaid; 0: for ever.
func (s *Store) ReservationTTL() time.Duration { return s.reservation }

// sqlTx returns the database/sql transaction under a gorm transaction, for the job queue.
func sqlTx(tx *gorm.DB) (*sql.Tx, error) {
	if t, ok := tx.Statement.ConnPool.(*sql.Tx); ok {
		return t, nil
	}
	return nil, fmt.Errorf("schedule job: transaction is a %T, not a *sql.Tx", tx.Statement.ConnPool)
}

// schedule runs enqueue with tx's database/sql transaction, when the store has a job queue.
func (s *Store) schedule(tx *gorm.DB, enqueue func(Jobs, *sql.Tx) error) error {
	if s.jobs == nil {
		return nil
	}
	t, err := sqlTx(tx)
	if err != nil {
		return err
	}
	return enqueue(s.jobs, t)
}

// expired reports whether a PENDING order's reservation has run out at now.
func (r orderRow) expired(now time.Time) bool {
	return r.ReservedUntil != nil && !now.Before(*r.ReservedUntil)
}

// lockOrder reads order id with its lines, the order's row locked for the transaction.
func lockOrder(tx *gorm.DB, id int64) (orderRow, []orderItemRow, error) {
	var order orderRow
	var items []orderItemRow
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&order, id).Error; err != nil {
		return order, nil, err
	}
	err := tx.Where("order_id = ?", id).Order("position").Find(&items).Error
	return order, items, err
}

// NewPayment is a payment to start: the order, the client's idempotency key, the provider
// that will take it and, for providers that give none, the client secret to hand out.
type NewPayment struct {
	OrderID        int64
	IdempotencyKey string
	Provider       string
	Secret         string
}

// StartPayment starts paying for an order as the viewer, its customer. A key the order used
// before returns that payment whatever happened since, and an order with a PENDING payment
// returns that one; otherwise the order must be PENDING with its reservation running, and a
// new PENDING payment of the order's total is written. It returns UNAUTHENTICATED, INVALID
// for a bad key, NOT_FOUND when the viewer may not see the order, FORBIDDEN when they see but
// did not place it, and INVALID_TRANSITION when it cannot be paid.
func (s *Store) StartPayment(ctx context.Context, viewer Viewer, in NewPayment) (Payment, error) {
	if err := checkSignedIn(viewer); err != nil {
		return Payment{}, err
	}
	if n := len([]rune(in.IdempotencyKey)); n < 1 || n > MaxPaymentKey {
		return Payment{}, newError(CodeInvalid, fmt.Sprintf("must be 1 to %d characters", MaxPaymentKey), "idempotencyKey")
	}
	var pay paymentRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The order's lock serialises every payment of it: racing repeats of a key, and
		// racing new keys, find what the first wrote.
		order, items, err := lockOrder(tx, in.OrderID)
		if errors.Is(err, gorm.ErrRecordNotFound) || err == nil && !CanSeeOrder(viewer, order.CustomerID, merchantsOf(items)) {
			return newError(CodeNotFound, "no such order", "orderId")
		}
		if err != nil {
			return err
		}
		if order.CustomerID != viewer.UserID {
			return newError(CodeForbidden, "only the order's customer may pay for it")
		}
		err = tx.Where("order_id = ? AND idempotency_key = ?", order.ID, in.IdempotencyKey).Take(&pay).Error
		if err == nil || !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		err = tx.Where("order_id = ? AND status = ?", order.ID, string(PaymentPending)).Take(&pay).Error
		if err == nil || !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		now := s.now()
		if OrderStatus(order.Status) != StatusPending || order.expired(now) {
			return newError(CodeInvalidTransition, "only a PENDING order whose reservation has not expired can be paid", "orderId")
		}
		pay = paymentRow{OrderID: order.ID, CustomerID: order.CustomerID, IdempotencyKey: in.IdempotencyKey,
			Status: string(PaymentPending), Provider: in.Provider, Amount: order.Total, CreatedAt: now, UpdatedAt: now}
		if in.Secret != "" {
			pay.ClientSecret = &in.Secret
		}
		return tx.Create(&pay).Error
	})
	if err != nil {
		return Payment{}, translate("start payment", err)
	}
	return pay.toPayment(), nil
}

// AttachPaymentReference records the provider's ID and client secret of a PENDING payment
// that has none yet, and returns the payment as it is then. A payment that has one keeps it
// (a racing repeat created the same intent under the same idempotency key).
func (s *Store) AttachPaymentReference(ctx context.Context, id int64, ref, secret string) (Payment, error) {
	updates := map[string]any{"provider_reference": ref, "updated_at": s.now()}
	if secret != "" {
		updates["client_secret"] = secret
	}
	err := s.db.WithContext(ctx).Model(&paymentRow{}).Where("id = ? AND provider_reference IS NULL", id).Updates(updates).Error
	if err != nil {
		return Payment{}, translate("attach payment reference", err)
	}
	return s.FindPayment(ctx, id)
}

// AbandonPayment deletes a PENDING payment the provider never created (it could not be
// reached), so that its key starts afresh when sent again. A payment with a provider
// reference is left alone.
func (s *Store) AbandonPayment(ctx context.Context, id int64) error {
	err := s.db.WithContext(ctx).Where("id = ? AND status = ? AND provider_reference IS NULL", id, string(PaymentPending)).
		Delete(&paymentRow{}).Error
	return translate("abandon payment", err)
}

// FindPayment returns payment id, or NOT_FOUND. It does not check who may see it.
func (s *Store) FindPayment(ctx context.Context, id int64) (Payment, error) {
	var row paymentRow
	if err := s.db.WithContext(ctx).Take(&row, id).Error; err != nil {
		return Payment{}, translate("find payment", err)
	}
	return row.toPayment(), nil
}

// FindPaymentByReference returns the payment the provider knows as ref, or NOT_FOUND.
func (s *Store) FindPaymentByReference(ctx context.Context, provider, ref string) (Payment, error) {
	var row paymentRow
	if err := s.db.WithContext(ctx).Where("provider = ? AND provider_reference = ?", provider, ref).Take(&row).Error; err != nil {
		return Payment{}, translate("find payment by reference", err)
	}
	return row.toPayment(), nil
}

// FindPaymentsByIDs returns the payments with these IDs, in no particular order; callers check
// visibility. Unknown IDs are left out.
func (s *Store) FindPaymentsByIDs(ctx context.Context, ids []int64) ([]Payment, error) {
	return findAll(s.reads(ctx).Where("id IN ?", ids), "find payments", paymentRow.toPayment)
}

// FindPaymentsByOrderIDs returns the payments of these orders, each order's oldest first.
func (s *Store) FindPaymentsByOrderIDs(ctx context.Context, orderIDs []int64) ([]Payment, error) {
	q := s.reads(ctx).Where("order_id IN ?", orderIDs).Order("order_id, id")
	return findAll(q, "find order payments", paymentRow.toPayment)
}

// Settlement is what a provider reported about a payment.
type Settlement struct {
	// Succeeded says the money was taken; otherwise the payment was declined for Reason.
	Succeeded bool
	Reason    string
	// Strict refuses the other outcome on a settled payment with INVALID_TRANSITION (a test
	// card's confirmation); otherwise (a provider's event) it is ignored.
	Strict bool
	// Event, when set, is the provider's event ID: an event seen before changes nothing.
	Event string
}

// SettlePayment applies a provider's outcome to payment id, in one transaction with the
// order's change and its status event. A success of a PENDING payment of a payable order
// makes it SUCCEEDED and the order PAID; a late success (the order cancelled, expired or
// paid otherwise) makes it SUCCEEDED with a refund asked for, and an order left PENDING past
// its reservation is expired then. A decline makes a PENDING payment FAILED. A settled
// payment never goes back. It returns the payment, NOT_FOUND, or (Strict) INVALID_TRANSITION.
func (s *Store) SettlePayment(ctx context.Context, id int64, st Settlement) (Payment, error) {
	var pay paymentRow
	var order orderRow
	var items []orderItemRow
	var event *OrderStatusEvent
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var first paymentRow
		if err := tx.Take(&first, id).Error; err != nil {
			return err
		}
		if st.Event != "" {
			if dup, err := s.seenEvent(tx, first.Provider, st.Event); dup || err != nil {
				pay = first
				return err
			}
		}
		var err error
		// The order first, as every change of an order locks it, then the payment.
		if order, items, err = lockOrder(tx, first.OrderID); err != nil {
			return err
		}
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&pay, id).Error; err != nil {
			return err
		}
		event, err = s.settle(ctx, tx, &order, items, &pay, st)
		return err
	})
	if err != nil {
		return Payment{}, translate("settle payment", err)
	}
	if event != nil {
		s.committed(ctx, order, items, *event, OrderStatus(order.Status) == StatusCancelled)
		s.wrote(ctx, order.CustomerID)
	}
	return pay.toPayment(), nil
}

// seenEvent records a provider's event ID and reports whether it was recorded before.
func (s *Store) seenEvent(tx *gorm.DB, provider, event string) (bool, error) {
	res := tx.Exec("INSERT INTO payment_provider_events (provider, event_id, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
		provider, event, s.now())
	return res.Error == nil && res.RowsAffected == 0, res.Error
}

// settle applies st to the locked payment and order; it returns the order's status event
// when the order changed.
func (s *Store) settle(ctx context.Context, tx *gorm.DB, order *orderRow, items []orderItemRow, pay *paymentRow, st Settlement) (*OrderStatusEvent, error) {
	now := s.now()
	status := PaymentStatus(pay.Status)
	refused := func() error {
		return newError(CodeInvalidTransition, fmt.Sprintf("the payment is already %s", status), "outcome")
	}
	if !st.Succeeded {
		switch status {
		case PaymentPending:
			reason := st.Reason
			if reason == "" {
				reason = "declined"
			}
			pay.Status, pay.FailureReason, pay.UpdatedAt = string(PaymentFailed), &reason, now
			return nil, tx.Model(&paymentRow{}).Where("id = ?", pay.ID).
				Updates(map[string]any{"status": pay.Status, "failure_reason": reason, "updated_at": now}).Error
		case PaymentSucceeded, PaymentRefunded:
			if st.Strict {
				return nil, refused()
			}
		}
		return nil, nil // FAILED again, or CANCELED: nothing more to do
	}
	switch status {
	case PaymentSucceeded, PaymentRefunded:
		return nil, nil
	case PaymentFailed:
		if st.Strict {
			return nil, refused()
		}
	}
	// The money was taken: PENDING, CANCELED, or (a provider's late event) FAILED.
	pay.Status, pay.UpdatedAt = string(PaymentSucceeded), now
	if err := tx.Model(&paymentRow{}).Where("id = ?", pay.ID).
		Updates(map[string]any{"status": pay.Status, "updated_at": now}).Error; err != nil {
		return nil, err
	}
	if status != PaymentCanceled && OrderStatus(order.Status) == StatusPending && !order.expired(now) {
		event, err := s.moveOrder(ctx, tx, order, items, StatusPaid, nil, ReasonOrderCancelled)
		return &event, err
	}
	// A late success: the money goes back, and an order still holding stock past its
	// reservation is expired now rather than when its job comes.
	if err := s.requestRefund(tx, pay, now); err != nil {
		return nil, err
	}
	if OrderStatus(order.Status) == StatusPending && order.expired(now) {
		event, err := s.moveOrder(ctx, tx, order, items, StatusCancelled, &noteExpired, ReasonReservationExpired)
		return &event, err
	}
	return nil, nil
}

// requestRefund marks a SUCCEEDED payment for refunding and schedules the refund.
func (s *Store) requestRefund(tx *gorm.DB, pay *paymentRow, now time.Time) error {
	pay.RefundRequestedAt = &now
	if err := tx.Model(&paymentRow{}).Where("id = ?", pay.ID).Update("refund_requested_at", now).Error; err != nil {
		return err
	}
	return s.schedule(tx, func(j Jobs, t *sql.Tx) error { return j.RefundPayment(tx.Statement.Context, t, pay.ID) })
}

// releasePayments does to an order's payments what its move to status to asks: a PENDING
// payment of an order cancelled or paid by hand is CANCELED (and cancelled at its provider by
// a job); a SUCCEEDED payment of a cancelled order is refunded.
func (s *Store) releasePayments(tx *gorm.DB, orderID int64, to OrderStatus, now time.Time) error {
	var pays []paymentRow
	if err := tx.Where("order_id = ? AND status IN ?", orderID, []string{string(PaymentPending), string(PaymentSucceeded)}).
		Find(&pays).Error; err != nil {
		return err
	}
	for i := range pays {
		p := &pays[i]
		switch {
		case PaymentStatus(p.Status) == PaymentPending:
			if err := tx.Model(&paymentRow{}).Where("id = ?", p.ID).
				Updates(map[string]any{"status": string(PaymentCanceled), "updated_at": now}).Error; err != nil {
				return err
			}
			if err := s.schedule(tx, func(j Jobs, t *sql.Tx) error { return j.CancelPayment(tx.Statement.Context, t, p.ID) }); err != nil {
				return err
			}
		case to == StatusCancelled && p.RefundRequestedAt == nil:
			if err := s.requestRefund(tx, p, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// MarkPaymentRefunded records that the provider gave a SUCCEEDED payment's money back.
// event, when set, is the provider's event ID: an event seen before changes nothing. A
// REFUNDED payment is left as it is; one whose success has not arrived yet (the provider's
// events came out of order) is CONFLICT, and the event is not recorded, so that its
// redelivery applies it once the success is in.
func (s *Store) MarkPaymentRefunded(ctx context.Context, id int64, event string) (Payment, error) {
	var pay paymentRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&pay, id).Error; err != nil {
			return err
		}
		switch PaymentStatus(pay.Status) {
		case PaymentRefunded:
			return nil
		case PaymentSucceeded:
		default:
			return newError(CodeConflict, "the payment's success has not arrived yet")
		}
		if event != "" {
			if dup, err := s.seenEvent(tx, pay.Provider, event); dup || err != nil {
				return err
			}
		}
		now := s.now()
		pay.Status, pay.UpdatedAt = string(PaymentRefunded), now
		return tx.Model(&paymentRow{}).Where("id = ? AND status = ?", id, string(PaymentSucceeded)).
			Updates(map[string]any{"status": pay.Status, "updated_at": now}).Error
	})
	if err != nil {
		return Payment{}, translate("mark payment refunded", err)
	}
	return pay.toPayment(), nil
}

// noteExpired is the note of the event of an order whose reservation expired.
var noteExpired = "reservation expired"

// ExpireOrder cancels order id when it is still PENDING at or past its reservation: the
// stock back, a PENDING→CANCELLED event noted "reservation expired", its PENDING payment
// cancelled. An order paid, cancelled or expired already is left alone, so running it twice,
// or in two processes, expires an order once. It returns how long to wait when the
// reservation has not run out yet (it was scheduled early), else 0.
func (s *Store) ExpireOrder(ctx context.Context, id int64) (time.Duration, error) {
	var order orderRow
	var items []orderItemRow
	var event *OrderStatusEvent
	var wait time.Duration
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if order, items, err = lockOrder(tx, id); err != nil {
			return err
		}
		if OrderStatus(order.Status) != StatusPending || order.ReservedUntil == nil {
			return nil
		}
		now := s.now()
		if !order.expired(now) {
			wait = order.ReservedUntil.Sub(now)
			return nil
		}
		e, err := s.moveOrder(ctx, tx, &order, items, StatusCancelled, &noteExpired, ReasonReservationExpired)
		event = &e
		return err
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, nil // nothing to expire
	}
	if err != nil {
		return 0, translate("expire order", err)
	}
	if event != nil {
		s.committed(ctx, order, items, *event, true)
		s.wrote(ctx, order.CustomerID)
	}
	return wait, nil
}

// SettleTestPayment settles a PENDING payment of the test provider as its card would, as
// the viewer (the order's customer or an ADMIN): SettlePayment with Strict. It returns
// NOT_FOUND when the viewer may not see the payment's order, FORBIDDEN when they may not
// confirm it or it is not a test payment, and INVALID_TRANSITION for the other outcome on a
// settled payment.
func (s *Store) SettleTestPayment(ctx context.Context, viewer Viewer, id int64, succeed bool) (Payment, error) {
	if err := checkSignedIn(viewer); err != nil {
		return Payment{}, err
	}
	pay, err := s.FindPayment(ctx, id)
	if ErrorCode(err) == CodeNotFound {
		return Payment{}, newError(CodeNotFound, "no such payment", "paymentId")
	}
	if err != nil {
		return Payment{}, err
	}
	var items []OrderItem
	if viewer.Role == RoleMerchant && viewer.UserID != pay.CustomerID {
		if items, err = s.FindItemsByOrderIDs(ctx, []int64{pay.OrderID}); err != nil {
			return Payment{}, err
		}
	}
	var merchants []int64
	for _, it := range items {
		merchants = append(merchants, it.MerchantID)
	}
	if !CanSeeOrder(viewer, pay.CustomerID, merchants) {
		return Payment{}, newError(CodeNotFound, "no such payment", "paymentId")
	}
	if viewer.UserID != pay.CustomerID && viewer.Role != RoleAdmin {
		return Payment{}, newError(CodeForbidden, "only the order's customer or an admin may confirm its payment")
	}
	if pay.Provider != ProviderTest {
		return Payment{}, newError(CodeForbidden, "only payments of the test provider are confirmed this way")
	}
	return s.SettlePayment(ctx, id, Settlement{Succeeded: succeed, Reason: "the test card was declined", Strict: true})
}

// ProviderTest is the name of the built-in test payment provider.
const ProviderTest = "test"

// CountPaymentsByStatus returns how many payments are in each status (for metrics).
func (s *Store) CountPaymentsByStatus(ctx context.Context) (map[PaymentStatus]int, error) {
	var rows []struct {
		Status string
		N      int
	}
	if err := s.db.WithContext(ctx).Model(&paymentRow{}).Select("status, COUNT(*) AS n").Group("status").Scan(&rows).Error; err != nil {
		return nil, translate("count payments", err)
	}
	out := make(map[PaymentStatus]int, len(rows))
	for _, r := range rows {
		out[PaymentStatus(r.Status)] = r.N
	}
	return out, nil
}
