package store

import (
	"sync/atomic"
	"time"
)

// Role is what a user may do.
type Role string

// Roles.
const (
	RoleCustomer Role = "CUSTOMER"
	RoleMerchant Role = "MERCHANT"
	RoleAdmin    Role = "ADMIN"
)

// OrderStatus is where an order is in its life.
type OrderStatus string

// Order statuses.
const (
	StatusPending   OrderStatus = "PENDING"
	StatusPaid      OrderStatus = "PAID"
	StatusShipped   OrderStatus = "SHIPPED"
	StatusDelivered OrderStatus = "DELIVERED"
	StatusCancelled OrderStatus = "CANCELLED"
)

// Money is an amount in minor units (cents) of the shop's one currency.
type Money int

// Amount is m in minor units: the GraphQL Money's amount, read without a resolver.
func (m Money) Amount() int { return int(m) }

// DefaultCurrency is the shop's currency when its configuration names none.
const DefaultCurrency = "USD"

// Currency is the shop's currency code: the GraphQL Money's currency. It is configuration
// (Config.Currency, which Open applies), not data, and read without a resolver or a context,
// so that a price stays a plain leaf for the executor and a Money needs no more than its
// amount. A shop has one currency: the last store opened in a process sets it.
func (Money) Currency() string {
	if c := currency.Load(); c != nil {
		return *c
	}
	return DefaultCurrency
}

// currency is the configured currency; nil until a store is opened.
var currency atomic.Pointer[string]

// User is an account. Its password hash never leaves the store.
type User struct {
	ID        int64
	Name      string
	Email     string
	Role      Role
	CreatedAt time.Time
	// TokenVersion is the version of the account's tokens: a password change moves it on,
	// and tokens of an earlier version are refused.
	TokenVersion int64
}

// Product is something a merchant sells. Price is in minor units.
type Product struct {
	ID          int64
	MerchantID  int64
	Name        string
	Description string
	Price       Money
	Stock       int
	// LowStockThreshold is the stock at or below which lowStock alerts; 0: never.
	LowStockThreshold int
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Order is a customer's purchase. Total is in minor units.
type Order struct {
	ID         int64
	CustomerID int64
	Status     OrderStatus
	Total      Money
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// ReservedUntil is when a PENDING order's reservation expires; nil once it is not
	// PENDING, and for orders placed without a reservation.
	ReservedUntil *time.Time
}

// OrderItem is one line of an order; UnitPrice is the product's price when it was placed.
// MerchantID is the product's merchant, kept on the line so visibility is one index lookup.
type OrderItem struct {
	OrderID    int64
	ProductID  int64
	MerchantID int64
	Quantity   int
	UnitPrice  Money
}

// Subtotal is UnitPrice × Quantity.
func (i OrderItem) Subtotal() Money { return i.UnitPrice * Money(i.Quantity) }

// OrderStatusEvent is one status change of an order, written in the same transaction as the
// change. Event IDs grow with commit order within an order.
type OrderStatusEvent struct {
	ID             int64
	OrderID        int64
	Status         OrderStatus
	PreviousStatus *OrderStatus
	Note           *string
	At             time.Time
}

// Viewer is who is asking: a signed-in user, or the zero Viewer for an anonymous caller.
type Viewer struct {
	UserID int64
	Role   Role
}

// Anonymous reports whether nobody is signed in.
func (v Viewer) Anonymous() bool { return v.UserID == 0 }

// Node is a domain object with an identity of its own, fetchable by ID: a User, Product or Order.
type Node interface{ node() }

func (User) node()    {}
func (Product) node() {}
func (Order) node()   {}
func (Payment) node() {}
