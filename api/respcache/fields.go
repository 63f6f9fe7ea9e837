package respcache

import (
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// field names one field of the schema: its object or interface type and its name.
type field struct{ typ, name string }

// access is whether a field may be part of a cached response, and what tags it adds.
type access uint8

const (
	// private fields depend on the caller, need one, or show what only some callers may
	// see: a response that asks for one is never cached.
	private access = iota
	// public fields read the same for every caller, from entities the store tags as read.
	public
	// listsProducts is a public field whose value is a list of products: its members and
	// order change with any write to a product, so it carries the products' list tag.
	listsProducts
)

// fields classifies every field of the schema. A field missing from it is private, and a
// test fails until a new field of the schema is classified here.
var fields = map[field]access{
	{"Query", "products"}: listsProducts,
	{"Query", "product"}:  public,
	{"Query", "user"}:     private, // any user, customers too
	{"Query", "node"}:     private, // orders too
	{"Query", "me"}:       private,
	{"Query", "order"}:    private,
	{"Query", "orders"}:   private,

	{"Product", "id"}:                public,
	{"Product", "name"}:              public,
	{"Product", "description"}:       public,
	{"Product", "price"}:             public,
	{"Product", "stock"}:             public,
	{"Product", "merchant"}:          public,
	{"Product", "createdAt"}:         public,
	{"Product", "updatedAt"}:         public,
	{"Product", "lowStockThreshold"}: private, // readable by all, but a merchant's setting: not worth caching
	{"Product", "stockMovements"}:    private, // its merchant's ledger

	{"ProductConnection", "edges"}:      public,
	{"ProductConnection", "nodes"}:      public,
	{"ProductConnection", "pageInfo"}:   public,
	{"ProductConnection", "totalCount"}: public,
	{"ProductEdge", "cursor"}:           public,
	{"ProductEdge", "node"}:             public,
	{"PageInfo", "hasNextPage"}:         public,
	{"PageInfo", "hasPreviousPage"}:     public,
	{"PageInfo", "startCursor"}:         public,
	{"PageInfo", "endCursor"}:           public,
	{"Money", "amount"}:                 public,
	{"Money", "currency"}:               public,

	// A merchant's public face, as a product shows it.
	{"User", "id"}:        public,
	{"User", "name"}:      public,
	{"User", "email"}:     private,
	{"User", "role"}:      private,
	{"User", "createdAt"}: private,
	{"User", "orders"}:    private,
	{"User", "products"}:  private,

	{"Node", "id"}: private,

	{"Order", "id"}: private, {"Order", "customer"}: private, {"Order", "items"}: private,
	{"Order", "status"}: private, {"Order", "total"}: private, {"Order", "createdAt"}: private,
	{"Order", "updatedAt"}: private, {"Order", "history"}: private, {"Order", "payments"}: private,
	{"Order", "reservedUntil"}: private, {"Order", "shipments"}: private,
	{"OrderConnection", "edges"}: private, {"OrderConnection", "nodes"}: private,
	{"OrderConnection", "pageInfo"}: private, {"OrderConnection", "totalCount"}: private,
	{"OrderEdge", "cursor"}: private, {"OrderEdge", "node"}: private,
	{"OrderItem", "product"}: private, {"OrderItem", "quantity"}: private,
	{"OrderItem", "unitPrice"}: private, {"OrderItem", "subtotal"}: private,
	{"OrderPayload", "order"}: private, {"OrderPayload", "userErrors"}: private,
	{"OrderStatusEvent", "id"}: private, {"OrderStatusEvent", "order"}: private,
	{"OrderStatusEvent", "status"}: private, {"OrderStatusEvent", "previousStatus"}: private,
	{"OrderStatusEvent", "at"}: private, {"OrderStatusEvent", "note"}: private,
	{"Payment", "id"}: private, {"Payment", "order"}: private, {"Payment", "amount"}: private,
	{"Payment", "status"}: private, {"Payment", "provider"}: private, {"Payment", "providerReference"}: private,
	{"Payment", "clientSecret"}: private, {"Payment", "failureReason"}: private,
	{"Payment", "createdAt"}: private, {"Payment", "updatedAt"}: private,
	{"PaymentPayload", "payment"}: private, {"PaymentPayload", "userErrors"}: private,
	{"Shipment", "id"}: private, {"Shipment", "order"}: private, {"Shipment", "merchant"}: private,
	{"Shipment", "items"}: private, {"Shipment", "carrier"}: private, {"Shipment", "trackingNumber"}: private,
	{"Shipment", "trackingUrl"}: private, {"Shipment", "shippedAt"}: private, {"Shipment", "deliveredAt"}: private,
	{"ShipmentPayload", "shipment"}: private, {"ShipmentPayload", "userErrors"}: private,
	{"StockMovement", "id"}: private, {"StockMovement", "delta"}: private, {"StockMovement", "stockAfter"}: private,
	{"StockMovement", "reason"}: private, {"StockMovement", "note"}: private, {"StockMovement", "order"}: private,
	{"StockMovement", "at"}:              private,
	{"StockMovementConnection", "edges"}: private, {"StockMovementConnection", "nodes"}: private,
	{"StockMovementConnection", "pageInfo"}: private, {"StockMovementConnection", "totalCount"}: private,
	{"StockMovementEdge", "cursor"}: private, {"StockMovementEdge", "node"}: private,
	{"ProductPayload", "product"}: private, {"ProductPayload", "userErrors"}: private,
	{"AuthPayload", "token"}: private, {"AuthPayload", "user"}: private, {"AuthPayload", "userErrors"}: private,
	{"UserError", "field"}: private, {"UserError", "message"}: private, {"UserError", "code"}: private,

	// Mutations and subscriptions are never cached; only queries are looked at.
	{"Mutation", "adjustStock"}: private, {"Mutation", "cancelOrder"}: private, {"Mutation", "changePassword"}: private,
	{"Mutation", "confirmTestPayment"}: private, {"Mutation", "createProduct"}: private, {"Mutation", "logIn"}: private,
	{"Mutation", "markShipmentDelivered"}: private, {"Mutation", "payOrder"}: private, {"Mutation", "placeOrder"}: private,
	{"Mutation", "shipOrder"}: private, {"Mutation", "signUp"}: private, {"Mutation", "updateOrderStatus"}: private,
	{"Mutation", "updateProduct"}: private,
	{"Subscription", "lowStock"}:  private, {"Subscription", "myOrderEvents"}: private,
	{"Subscription", "orderStatusChanged"}: private,
}

// Classified reports whether the field typ.name is in the classification (for the test that
// every field of the schema is).
func Classified(typ, name string) bool {
	_, ok := fields[field{typ, name}]
	return ok
}

// shape is what a selection asks for: whether every field is public, and whether it lists
// products.
type shape struct {
	public, listsProducts bool
}

// classify returns the shape of sel. Fragments count whatever their conditions: a skipped
// private field still makes the selection private.
func classify(sel ast.SelectionSet) shape {
	s := shape{public: true}
	var walk func(ast.SelectionSet, int)
	walk = func(sel ast.SelectionSet, depth int) {
		if depth > 64 { // fragments cannot cycle in a valid document; a guard all the same
			s.public = false
			return
		}
		for _, x := range sel {
			if !s.public {
				return
			}
			switch x := x.(type) {
			case *ast.Field:
				if strings.HasPrefix(x.Name, "__") {
					s.public = s.public && x.Name == "__typename"
					continue
				}
				if x.ObjectDefinition == nil {
					s.public = false
					continue
				}
				switch fields[field{x.ObjectDefinition.Name, x.Name}] {
				case private:
					s.public = false
				case listsProducts:
					s.listsProducts = true
				}
				walk(x.SelectionSet, depth+1)
			case *ast.InlineFragment:
				walk(x.SelectionSet, depth+1)
			case *ast.FragmentSpread:
				if x.Definition == nil {
					s.public = false
					continue
				}
				walk(x.Definition.SelectionSet, depth+1)
			default:
				s.public = false
			}
		}
	}
	walk(sel, 0)
	return s
}
