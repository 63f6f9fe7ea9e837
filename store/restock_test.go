package store

import (
	"context"
	"path/filepath"
	"testing"

	"gorm.io/gorm"
)

// TestRestockRecordsItsReason: restock, which both cancellation and the reservation expiry
// call, writes one movement a line with the reason its caller gives, the order, and the
// stock it left.
func TestRestockRecordsItsReason(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{SQLitePath: filepath.Join(t.TempDir(), "shop.db"), PasswordCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := s.CreateUser(ctx, NewUser{Email: "m@x.example", Name: "M", Password: "password123", Role: RoleMerchant})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateUser(ctx, NewUser{Email: "c@x.example", Name: "C", Password: "password123", Role: RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	merchant, customer := Viewer{UserID: m.ID, Role: RoleMerchant}, Viewer{UserID: c.ID, Role: RoleCustomer}
	a, _ := s.CreateProduct(ctx, merchant, NewProduct{Name: "a", Price: 1, Stock: 10})
	b, _ := s.CreateProduct(ctx, merchant, NewProduct{Name: "b", Price: 1, Stock: 10})
	o, err := s.PlaceOrder(ctx, customer, NewOrder{Lines: []OrderLine{{b.ID, 4}, {a.ID, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Transaction(func(tx *gorm.DB) error {
		var items []orderItemRow
		if err := tx.Where("order_id = ?", o.ID).Find(&items).Error; err != nil {
			return err
		}
		return restock(tx, items, s.now(), ReasonReservationExpired)
	})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := s.FindStockMovementsOfProducts(ctx, []int64{a.ID, b.ID}, PageArgs{First: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Product{a, b} {
		ms := pages[p.ID].Movements
		if len(ms) != 3 || ms[0].Reason != ReasonReservationExpired || ms[0].StockAfter != 10 ||
			ms[0].OrderID == nil || *ms[0].OrderID != o.ID || ms[0].Delta+ms[1].Delta != 0 {
			t.Fatalf("product %d: movements %+v", p.ID, ms)
		}
	}
}
