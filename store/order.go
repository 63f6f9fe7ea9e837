package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

type orderRow struct {
	ID            int64 `gorm:"primaryKey"`
	CustomerID    int64
	Status        string
	Total         int
	CreatedAt     time.Time
	UpdatedAt     time.Time
	ReservedUntil *time.Time
}

func (orderRow) TableName() string { return "orders" }

func (r *orderRow) columns() []column {
	return []column{{"id", &r.ID}, {"customer_id", &r.CustomerID}, {"status", &r.Status}, {"total", &r.Total},
		{"created_at", &r.CreatedAt}, {"updated_at", &r.UpdatedAt}, {"reserved_until", &r.ReservedUntil}}
}

func (r orderRow) toOrder() Order {
	return Order{ID: r.ID, CustomerID: r.CustomerID, Status: OrderStatus(r.Status), Total: Money(r.Total),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, ReservedUntil: r.ReservedUntil}
}

type orderItemRow struct {
	ID         int64 `gorm:"primaryKey"`
	OrderID    int64
	Position   int
	ProductID  int64
	MerchantID int64
	Quantity   int
	UnitPrice  int
}

func (orderItemRow) TableName() string { return "order_items" }

func (r *orderItemRow) columns() []column {
	return []column{{"id", &r.ID}, {"order_id", &r.OrderID}, {"position", &r.Position}, {"product_id", &r.ProductID},
		{"merchant_id", &r.MerchantID}, {"quantity", &r.Quantity}, {"unit_price", &r.UnitPrice}}
}

func (r orderItemRow) toItem() OrderItem {
	return OrderItem{OrderID: r.OrderID, ProductID: r.ProductID, MerchantID: r.MerchantID,
		Quantity: r.Quantity, UnitPrice: Money(r.UnitPrice)}
}

type idempotencyRow struct {
	UserID      int64  `gorm:"primaryKey"`
	Key         string `gorm:"primaryKey"`
	RequestHash string
	OrderID     *int64
	CreatedAt   time.Time
}

func (idempotencyRow) TableName() string { return "idempotency_keys" }

// OrderLine is one line of an order to place.
type OrderLine struct {
	ProductID int64
	Quantity  int
}

// NewOrder is an order to place. IdempotencyKey is optional.
type NewOrder struct {
	Lines          []OrderLine
	IdempotencyKey string
}

// combinedLine is the lines naming one product, added up; Index is the first such line.
type combinedLine struct {
	OrderLine
	Index int
}

// combine validates the lines and adds up those naming the same product, keeping the order
// of first appearance.
func (in NewOrder) combine() ([]combinedLine, error) {
	var v validator
	if len(in.Lines) < 1 || len(in.Lines) > MaxOrderLines {
		v.add(fmt.Sprintf("an order has 1 to %d lines", MaxOrderLines), "items")
	}
	if len(in.IdempotencyKey) > MaxIdempotentKey {
		v.add(fmt.Sprintf("must be at most %d characters", MaxIdempotentKey), "idempotencyKey")
	}
	var lines []combinedLine
	at := map[int64]int{}
	for i, l := range in.Lines {
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			v.between(l.Quantity, 1, MaxQuantity, "items", strconv.Itoa(i), "quantity")
			continue
		}
		// ID 0 is every malformed or foreign ID: those lines name no product and are not
		// combined, so each gets its own NOT_FOUND.
		if j, ok := at[l.ProductID]; ok && l.ProductID > 0 {
			lines[j].Quantity += l.Quantity
			continue
		}
		at[l.ProductID] = len(lines)
		lines = append(lines, combinedLine{OrderLine: l, Index: i})
	}
	for _, l := range lines {
		if l.Quantity > MaxQuantity {
			v.add(fmt.Sprintf("lines of one product add up to %d units, more than %d", l.Quantity, MaxQuantity),
				"items", strconv.Itoa(l.Index), "quantity")
		}
	}
	return lines, v.errs.err()
}

// requestHash identifies what an idempotent request asked for, independent of line order.
func requestHash(lines []combinedLine) string {
	sorted := slices.Clone(lines)
	slices.SortFunc(sorted, func(a, b combinedLine) int { return cmp.Compare(a.ProductID, b.ProductID) })
	h := sha256.New()
	for _, l := range sorted {
		fmt.Fprintf(h, "%d:%d;", l.ProductID, l.Quantity)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// errKeyTaken says another request claimed the idempotency key first.
var errKeyTaken = errors.New("idempotency key taken")

// PlaceOrder places an order for the viewer in one transaction: every line's stock is taken
// and the order created PENDING with its first status event, or nothing changes. It returns
// UNAUTHENTICATED, INVALID for bad input, NOT_FOUND for unknown products, INSUFFICIENT_STOCK
// for each short line and IDEMPOTENCY_CONFLICT when the key was used for other items. Repeating
// a key with the same items returns the order placed the first time.
func (s *Store) PlaceOrder(ctx context.Context, viewer Viewer, in NewOrder) (Order, error) {
	p, err := s.Place(ctx, viewer, in)
	return p.Order, err
}

// Placed is an order PlaceOrder placed, with what its transaction wrote: the order's items
// and its products as the order left them. A payload can show them without reading them
// back. Both are nil for the repeat of an idempotent order, which wrote nothing.
type Placed struct {
	Order    Order
	Items    []OrderItem
	Products []Product
}

// Place is PlaceOrder returning what the order wrote.
func (s *Store) Place(ctx context.Context, viewer Viewer, in NewOrder) (Placed, error) {
	if err := checkSignedIn(viewer); err != nil {
		return Placed{}, err
	}
	lines, err := in.combine()
	if err != nil {
		return Placed{}, err
	}
	hash := requestHash(lines)
	if in.IdempotencyKey != "" {
		if o, err := s.repeatedOrder(ctx, viewer.UserID, in.IdempotencyKey, hash); err == nil || ErrorCode(err) != CodeNotFound {
			return Placed{Order: o}, err
		}
	}
	var order orderRow
	var event OrderStatusEvent
	var items []orderItemRow
	var products []Product
	var alerts []LowStockAlert
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		if in.IdempotencyKey != "" {
			// Claimed first: a racing repeat waits here on the key, not on the stock, and
			// then finds the order this transaction placed.
			key := idempotencyRow{UserID: viewer.UserID, Key: in.IdempotencyKey, RequestHash: hash, CreatedAt: now}
			if err := tx.Create(&key).Error; err != nil {
				if errors.Is(err, gorm.ErrDuplicatedKey) {
					return errKeyTaken
				}
				return err
			}
		}
		var err error
		if items, products, err = takeStock(tx, lines, now); err != nil {
			return err
		}
		total := 0
		for _, it := range items {
			total += it.UnitPrice * it.Quantity
		}
		if total > MaxOrderTotal {
			return newError(CodeInvalid, "the order total is too large", "items")
		}
		// Taken now that the key and the stock rows are locked, not when the transaction began
		// to queue for them, so the time is close to the commit's. (Lists sort by it.)
		now = s.now()
		order = orderRow{CustomerID: viewer.UserID, Status: string(StatusPending), Total: total, CreatedAt: now, UpdatedAt: now}
		if s.reservation > 0 {
			until := now.Add(s.reservation)
			order.ReservedUntil = &until
		}
		if err := tx.Create(&order).Error; err != nil {
			return err
		}
		if order.ReservedUntil != nil {
			// The expiry rides in the order's transaction: no order without its job.
			if err := s.schedule(tx, func(j Jobs, t *sql.Tx) error { return j.ExpireOrder(ctx, t, order.ID, *order.ReservedUntil) }); err != nil {
				return err
			}
		}
		for i := range items {
			items[i].OrderID = order.ID
		}
		if err := tx.Create(&items).Error; err != nil {
			return err
		}
		// The ledger: one movement a line, every line in one INSERT.
		ms := make([]movement, len(products))
		for i, p := range products {
			q := items[i].Quantity
			ms[i] = movement{product: p, delta: -q, reason: ReasonOrderPlaced, orderID: &order.ID, stockBefore: p.Stock + q}
		}
		if alerts, err = appendMovements(tx, now, ms); err != nil {
			return err
		}
		if in.IdempotencyKey != "" {
			if err := tx.Model(&idempotencyRow{}).Where("user_id = ? AND key = ?", viewer.UserID, in.IdempotencyKey).
				Update("order_id", order.ID).Error; err != nil {
				return err
			}
		}
		event, err = appendEvent(tx, order.ID, StatusPending, nil, nil, now)
		return err
	})
	if errors.Is(err, errKeyTaken) {
		o, err := s.repeatedOrder(ctx, viewer.UserID, in.IdempotencyKey, hash)
		return Placed{Order: o}, err
	}
	if err != nil {
		return Placed{}, translate("place order", err)
	}
	s.committed(ctx, order, items, event, true)
	s.wrote(ctx, viewer.UserID)
	s.notifyLowStock(ctx, alerts)
	placed := Placed{Order: order.toOrder(), Items: make([]OrderItem, len(items)), Products: products}
	for i, it := range items {
		placed.Items[i] = it.toItem()
	}
	return placed, nil
}

// committed tells the cache and the event sink of a committed order write: the products
// whose stock it changed (when stockChanged) are invalidated, and its status event is
// delivered to the order's customer and merchants.
func (s *Store) committed(ctx context.Context, order orderRow, items []orderItemRow, event OrderStatusEvent, stockChanged bool) {
	if stockChanged {
		ids := make([]int64, len(items))
		for i, it := range items {
			ids[i] = it.ProductID
		}
		s.invalidateProducts(ctx, ids...)
	}
	s.notify(ctx, OrderEvent{OrderStatusEvent: event, CustomerID: order.CustomerID, MerchantIDs: merchantsOf(items)})
}

// repeatedOrder returns the order placed earlier with this key: NOT_FOUND when the key is
// new, IDEMPOTENCY_CONFLICT when it was used for other items.
func (s *Store) repeatedOrder(ctx context.Context, userID int64, key, hash string) (Order, error) {
	var k idempotencyRow
	if err := s.db.WithContext(ctx).Where("user_id = ? AND key = ?", userID, key).Take(&k).Error; err != nil {
		return Order{}, translate("find idempotency key", err)
	}
	if k.RequestHash != hash {
		return Order{}, newError(CodeIdempotencyConflict, "this idempotency key was used for an order with other items", "idempotencyKey")
	}
	var o orderRow
	if k.OrderID == nil {
		return Order{}, fmt.Errorf("find idempotency key: key %q has no order", key)
	}
	if err := s.db.WithContext(ctx).Take(&o, *k.OrderID).Error; err != nil {
		return Order{}, translate("find repeated order", err)
	}
	return o.toOrder(), nil
}

// takeStock takes each line's quantity from its product's stock. It locks the products'
// rows in ID order (so that concurrent orders of the same products queue instead of
// deadlocking; SQLite runs one write transaction at a time anyway), checks every line
// against the locked stock, and takes them all in one UPDATE: two statements whatever the
// number of lines, where an update per line cost a round trip each. It returns the order's
// items, priced as the locked rows have them, and its products as it leaves them; or
// NOT_FOUND errors for every unknown product, else INSUFFICIENT_STOCK errors for every short
// line, in line order.
func takeStock(tx *gorm.DB, lines []combinedLine, now time.Time) ([]orderItemRow, []Product, error) {
	ids := make([]int64, len(lines))
	for i, l := range lines {
		ids[i] = l.ProductID
	}
	slices.Sort(ids)
	q := tx.Where("id IN ?", ids).Order("id")
	if tx.Dialector.Name() == "postgres" {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var products []productRow
	if err := q.Find(&products).Error; err != nil {
		return nil, nil, err
	}
	byID := make(map[int64]productRow, len(products))
	for _, p := range products {
		byID[p.ID] = p
	}
	var errs Errors
	for _, l := range lines {
		if _, ok := byID[l.ProductID]; !ok {
			errs = append(errs, newError(CodeNotFound, "no such product", "items", strconv.Itoa(l.Index), "productId"))
		}
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	items := make([]orderItemRow, len(lines))
	cases, args := make([]string, 0, len(lines)), make([]any, 0, 2*len(lines))
	for i, l := range lines {
		switch p := byID[l.ProductID]; {
		case p.Stock < l.Quantity:
			errs = append(errs, newError(CodeInsufficientStock,
				fmt.Sprintf("only %d left", p.Stock), "items", strconv.Itoa(l.Index), "quantity"))
		default:
			items[i] = orderItemRow{Position: i, ProductID: l.ProductID, MerchantID: p.MerchantID,
				Quantity: l.Quantity, UnitPrice: p.Price}
			cases, args = append(cases, "WHEN ? THEN CAST(? AS INTEGER)"), append(args, l.ProductID, l.Quantity)
		}
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	taken := gorm.Expr("CASE id "+strings.Join(cases, " ")+" END", args...)
	res := tx.Model(&productRow{}).Where("id IN ? AND stock >= ?", ids, taken).
		Updates(map[string]any{"stock": gorm.Expr("stock - ?", taken), "updated_at": now})
	if res.Error != nil {
		return nil, nil, res.Error
	}
	if res.RowsAffected != int64(len(lines)) {
		// The rows are locked: this cannot happen, and must not oversell if it did.
		return nil, nil, fmt.Errorf("take stock: %d of %d products updated under lock", res.RowsAffected, len(lines))
	}
	left := make([]Product, len(lines))
	for i, l := range lines {
		p := byID[l.ProductID]
		p.Stock -= l.Quantity
		p.UpdatedAt = now
		left[i] = p.toProduct()
	}
	return items, left, nil
}

func merchantsOf(items []orderItemRow) []int64 {
	var ids []int64
	for _, it := range items {
		if !slices.Contains(ids, it.MerchantID) {
			ids = append(ids, it.MerchantID)
		}
	}
	return ids
}

// transitions lists where each status may move.
var transitions = map[OrderStatus][]OrderStatus{
	StatusPending: {StatusPaid, StatusCancelled},
	StatusPaid:    {StatusShipped, StatusCancelled},
	StatusShipped: {StatusDelivered},
}

// CanTransition reports whether an order may move from one status to another.
func CanTransition(from, to OrderStatus) bool { return slices.Contains(transitions[from], to) }

// UpdateOrderStatus moves an order to another status, recording the change in its history
// and putting the stock back when it is cancelled. It returns NOT_FOUND when the viewer may
// not see the order, FORBIDDEN when they see but may not manage it, INVALID_TRANSITION when
// the order cannot move to status, and INVALID for a bad note.
func (s *Store) UpdateOrderStatus(ctx context.Context, viewer Viewer, id int64, status OrderStatus, note *string) (Order, error) {
	return s.changeStatus(ctx, viewer, id, status, note, []string{"status"}, func(o orderRow, merchants []int64) error {
		if !CanManageOrder(viewer, merchants) {
			return newError(CodeForbidden, "only an admin or the merchant of every product in it may change this order")
		}
		return nil
	})
}

// CancelOrder cancels a PENDING or PAID order and puts its stock back. It returns NOT_FOUND,
// FORBIDDEN and INVALID_TRANSITION as UpdateOrderStatus does; the order's customer may cancel.
func (s *Store) CancelOrder(ctx context.Context, viewer Viewer, id int64) (Order, error) {
	return s.changeStatus(ctx, viewer, id, StatusCancelled, nil, nil, func(o orderRow, merchants []int64) error {
		if !CanCancelOrder(viewer, o.CustomerID, merchants) {
			return newError(CodeForbidden, "you may not cancel this order")
		}
		return nil
	})
}

// changeStatus moves order id to status to; a refused transition is reported on statusField.
func (s *Store) changeStatus(ctx context.Context, viewer Viewer, id int64, to OrderStatus, note *string,
	statusField []string, authorize func(orderRow, []int64) error) (Order, error) {
	if err := checkSignedIn(viewer); err != nil {
		return Order{}, err
	}
	if note != nil && len([]rune(*note)) > MaxNoteLength {
		return Order{}, newError(CodeInvalid, fmt.Sprintf("must be at most %d characters", MaxNoteLength), "note")
	}
	var order orderRow
	var items []orderItemRow
	var event OrderStatusEvent
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The row lock serialises concurrent changes of one order (SQLite serialises anyway).
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&order, id).Error; err != nil {
			return err
		}
		if err := tx.Where("order_id = ?", id).Order("position").Find(&items).Error; err != nil {
			return err
		}
		merchants := merchantsOf(items)
		if !CanSeeOrder(viewer, order.CustomerID, merchants) {
			return newError(CodeNotFound, "not found")
		}
		if err := authorize(order, merchants); err != nil {
			return err
		}
		from := OrderStatus(order.Status)
		if !CanTransition(from, to) {
			return newError(CodeInvalidTransition, fmt.Sprintf("an order cannot move from %s to %s", from, to), statusField...)
		}
		var err error
		event, err = s.moveOrder(ctx, tx, &order, items, to, note, ReasonOrderCancelled)
		return err
	})
	if err != nil {
		return Order{}, translate("change order status", err)
	}
	s.committed(ctx, order, items, event, to == StatusCancelled)
	s.wrote(ctx, viewer.UserID)
	return order.toOrder(), nil
}

// moveOrder moves a locked order to status to inside tx, with all that goes with the move:
// its reservation ends once it leaves PENDING; cancelled, its stock goes back for cause;
// cancelled or paid by hand, its PENDING payment is cancelled (and a SUCCEEDED one of a
// cancelled order refunded); and the status event is appended. Every status change (by hand,
// by payment, by expiry) goes through here.
func (s *Store) moveOrder(ctx context.Context, tx *gorm.DB, order *orderRow, items []orderItemRow, to OrderStatus,
	note *string, cause StockMovementReason) (OrderStatusEvent, error) {
	from := OrderStatus(order.Status)
	now := s.now()
	order.Status, order.UpdatedAt, order.ReservedUntil = string(to), now, nil
	if err := tx.Model(&orderRow{}).Where("id = ?", order.ID).
		Updates(map[string]any{"status": order.Status, "updated_at": now, "reserved_until": nil}).Error; err != nil {
		return OrderStatusEvent{}, err
	}
	if to == StatusCancelled {
		if err := restock(tx, items, now, cause); err != nil {
			return OrderStatusEvent{}, err
		}
	}
	if to == StatusCancelled || to == StatusPaid {
		if err := s.releasePayments(tx.WithContext(ctx), order.ID, to, now); err != nil {
			return OrderStatusEvent{}, err
		}
	}
	return appendEvent(tx, order.ID, to, &from, note, now)
}

// restock puts the items' quantities back, in product ID order like takeStock, and records
// each in the ledger with reason (ORDER_CANCELLED, or RESERVATION_EXPIRED for an expiry).
func restock(tx *gorm.DB, items []orderItemRow, now time.Time, reason StockMovementReason) error {
	sorted := slices.Clone(items)
	slices.SortFunc(sorted, func(a, b orderItemRow) int { return cmp.Compare(a.ProductID, b.ProductID) })
	ms := make([]movement, 0, len(sorted))
	for _, it := range sorted {
		// RETURNING gives the stock this update left, under the row lock it took.
		var row productRow
		if err := tx.Raw("UPDATE products SET stock = stock + ?, updated_at = ? WHERE id = ? RETURNING id, merchant_id, stock, low_stock_threshold",
			it.Quantity, now, it.ProductID).Scan(&row).Error; err != nil {
			return err
		}
		orderID := it.OrderID
		ms = append(ms, movement{product: row.toProduct(), delta: it.Quantity, reason: reason, orderID: &orderID,
			stockBefore: row.Stock - it.Quantity})
	}
	_, err := appendMovements(tx, now, ms)
	return err
}

// FindOrdersByIDs returns the orders with these IDs, in no particular order, whoever may see
// them; callers check visibility. Unknown IDs are left out.
func (s *Store) FindOrdersByIDs(ctx context.Context, ids []int64) ([]Order, error) {
	return findAll(s.reads(ctx).Where("id IN ?", ids), "find orders", orderRow.toOrder)
}

// FindItemsByOrderIDs returns the lines of these orders, each order's in placing order.
func (s *Store) FindItemsByOrderIDs(ctx context.Context, orderIDs []int64) ([]OrderItem, error) {
	q := s.reads(ctx).Where("order_id IN ?", orderIDs).Order("order_id, position")
	return findAll(q, "find order items", orderItemRow.toItem)
}

// OrderFilter selects orders; every set condition must hold.
type OrderFilter struct {
	// CustomerID keeps the orders this user placed.
	CustomerID *int64
	// VisibleTo keeps the orders this viewer may list: a customer's own, a merchant's own and
	// those with their products, every order for an admin.
	VisibleTo *Viewer
	Status    *OrderStatus
}

func (f OrderFilter) apply(q *gorm.DB) *gorm.DB {
	if f.CustomerID != nil {
		q = q.Where("customer_id = ?", *f.CustomerID)
	}
	if v := f.VisibleTo; v != nil {
		switch v.Role {
		case RoleAdmin:
		case RoleMerchant:
			q = q.Where("(customer_id = ? OR id IN (SELECT order_id FROM order_items WHERE merchant_id = ?))", v.UserID, v.UserID)
		default:
			q = q.Where("customer_id = ?", v.UserID)
		}
	}
	if f.Status != nil {
		q = q.Where("status = ?", string(*f.Status))
	}
	return q
}

// OrderPage is one page of orders, newest first, with each order's cursor.
type OrderPage struct {
	Orders []Order
	Cursors
	PageInfo
	Filter OrderFilter
}

// Orders are listed newest first: by creation time, then by ID among orders created in the
// same microsecond. The ID alone would not do: concurrent transactions take IDs in another
// order than their timestamps.
const (
	orderCursor       = "ORDER_CREATED_AT:DESC"
	ordersNewestFirst = "created_at DESC, id DESC"
)

func (r orderRow) cursor() cursor {
	at := r.CreatedAt.UTC()
	return cursor{Order: orderCursor, ID: r.ID, At: &at}
}

// ordersAfter keeps the orders that come after the cursor after (when set) newest first.
func ordersAfter(q *gorm.DB, after *cursor) *gorm.DB {
	if after == nil {
		return q
	}
	at := after.At.UTC()
	return q.Where("(created_at < ? OR (created_at = ? AND id < ?))", at, at, after.ID)
}

// newOrderPage is the page of f made of rows, read newest first with one row more than first.
func newOrderPage(f OrderFilter, rows []orderRow, first int, after *cursor) *OrderPage {
	p := &OrderPage{Filter: f}
	p.Orders, p.Cursors, p.PageInfo = buildPage(rows, first, after, orderRow.toOrder, orderRow.cursor)
	return p
}

// FindOrders returns a page of the orders matching f, newest first. It returns
// UNAUTHENTICATED when f.VisibleTo is anonymous and INVALID for a bad page size or cursor.
func (s *Store) FindOrders(ctx context.Context, f OrderFilter, page PageArgs) (*OrderPage, error) {
	if f.VisibleTo != nil {
		if err := checkSignedIn(*f.VisibleTo); err != nil {
			return nil, err
		}
	}
	after, err := checkPage(page, orderCursor)
	if err != nil {
		return nil, err
	}
	q := ordersAfter(f.apply(s.reads(ctx).Model(&orderRow{})), after)
	rows, err := findRows[orderRow](q.Order(ordersNewestFirst).Limit(page.First+1), "find orders")
	if err != nil {
		return nil, err
	}
	return newOrderPage(f, rows, page.First, after), nil
}

// CountOrders returns how many orders match f.
func (s *Store) CountOrders(ctx context.Context, f OrderFilter) (int, error) {
	var n int64
	err := f.apply(s.reads(ctx).Model(&orderRow{})).Count(&n).Error
	return int(n), translate("count orders", err)
}
