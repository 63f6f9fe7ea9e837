package store

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Global IDs are the opaque IDs of the GraphQL API: base64url("<Kind>:<id>") without padding.
// They live beside the domain types so that each type answers its `id` field with a method
// (no resolver, no goroutine of gqlgen's per field).

// Kinds of global IDs: the GraphQL type names.
const (
	KindUser    = "User"
	KindProduct = "Product"
	KindOrder   = "Order"
	KindEvent   = "OrderStatusEvent"
	// KindShipment and KindMovement are the kinds of shipments and stock movements.
	KindShipment = "Shipment"
	KindMovement = "StockMovement"
	KindPayment  = "Payment"
)

// GlobalID returns the opaque global ID of an object of this kind.
func GlobalID(kind string, id int64) string {
	var b [64]byte // base64 of the longest raw ID (40 bytes): one allocation, the string
	return string(AppendGlobalID(b[:0], kind, id))
}

// AppendGlobalID appends the global ID of an object of this kind to b.
func AppendGlobalID(b []byte, kind string, id int64) []byte {
	var raw [40]byte // the longest kind, a colon and an int64 fit
	return base64.RawURLEncoding.AppendEncode(b, strconv.AppendInt(append(append(raw[:0], kind...), ':'), id, 10))
}

// ParseGlobalID returns the kind and database ID of a global ID; ok is false when it is
// malformed.
func ParseGlobalID(gid string) (kind string, id int64, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(gid)
	if err != nil {
		return "", 0, false
	}
	kind, num, found := strings.Cut(string(b), ":")
	if !found {
		return "", 0, false
	}
	id, err = strconv.ParseInt(num, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != num {
		return "", 0, false
	}
	// The decoder skips newlines and ignores unused trailing bits, so several strings decode
	// alike; only the one GlobalID gives is the object's ID, keeping IDs unique.
	if GlobalID(kind, id) != gid {
		return "", 0, false
	}
	return kind, id, true
}

// GlobalID is the user's global ID.
func (u User) GlobalID() string { return GlobalID(KindUser, u.ID) }

// GlobalID is the product's global ID.
func (p Product) GlobalID() string { return GlobalID(KindProduct, p.ID) }

// GlobalID is the order's global ID.
func (o Order) GlobalID() string { return GlobalID(KindOrder, o.ID) }

// GlobalID is the event's global ID.
func (e OrderStatusEvent) GlobalID() string { return GlobalID(KindEvent, e.ID) }

// AppendGlobalID appends the user's global ID to b.
func (u *User) AppendGlobalID(b []byte) []byte { return AppendGlobalID(b, KindUser, u.ID) }

// AppendGlobalID appends the product's global ID to b.
func (p *Product) AppendGlobalID(b []byte) []byte { return AppendGlobalID(b, KindProduct, p.ID) }

// AppendGlobalID appends the order's global ID to b.
func (o *Order) AppendGlobalID(b []byte) []byte { return AppendGlobalID(b, KindOrder, o.ID) }

// AppendGlobalID appends the event's global ID to b.
func (e *OrderStatusEvent) AppendGlobalID(b []byte) []byte { return AppendGlobalID(b, KindEvent, e.ID) }

// GlobalID is the shipment's global ID.
func (s Shipment) GlobalID() string { return GlobalID(KindShipment, s.ID) }

// GlobalID is the stock movement's global ID.
func (m StockMovement) GlobalID() string { return GlobalID(KindMovement, m.ID) }

// AppendGlobalID appends the shipment's global ID to b.
func (s *Shipment) AppendGlobalID(b []byte) []byte { return AppendGlobalID(b, KindShipment, s.ID) }

// AppendGlobalID appends the movement's global ID to b.
func (m *StockMovement) AppendGlobalID(b []byte) []byte { return AppendGlobalID(b, KindMovement, m.ID) }

// GlobalID is the payment's global ID.
func (p Payment) GlobalID() string { return GlobalID(KindPayment, p.ID) }

// AppendGlobalID appends the payment's global ID to b.
func (p *Payment) AppendGlobalID(b []byte) []byte { return AppendGlobalID(b, KindPayment, p.ID) }
