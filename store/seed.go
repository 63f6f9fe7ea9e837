package store

import (
	"context"
	"fmt"
)

// Demo accounts of an embedded store, printed at start so a newcomer can sign in.
const (
	DemoMerchantEmail = "merchant@demo.shop"
	DemoCustomerEmail = "customer@demo.shop"
	DemoPassword      = "demo-password"
)

var demoProducts = []struct {
	name, description string
	price, stock      int
}{
	{"Espresso beans", "Dark roast, 1 kg bag", 2490, 120},
	{"Filter coffee", "Medium roast, 500 g", 1290, 80},
	{"Green tea", "Sencha, 100 g tin", 890, 60},
	{"Black tea", "Assam breakfast blend, 250 g", 790, 45},
	{"Ceramic mug", "350 ml, dishwasher safe", 1500, 200},
	{"Travel mug", "Insulated steel, 450 ml", 2900, 35},
	{"French press", "Glass and steel, 1 l", 3400, 25},
	{"Pour-over dripper", "Porcelain, size 02", 2200, 40},
	{"Paper filters", "Size 02, 100 pieces", 490, 300},
	{"Burr grinder", "Manual, ceramic burrs", 5900, 15},
	{"Milk frother", "Handheld, battery powered", 1900, 50},
	{"Kettle", "Gooseneck, 1 l, temperature control", 7900, 12},
	{"Scale", "0.1 g precision with timer", 3900, 20},
	{"Chocolate bar", "70% cocoa, 100 g", 350, 500},
	{"Almond biscotti", "Box of 12", 650, 90},
	{"Honey", "Wildflower, 500 g jar", 990, 70},
	{"Oat milk", "Barista edition, 1 l", 290, 150},
	{"Syrup: vanilla", "750 ml bottle", 1190, 40},
	{"Syrup: caramel", "750 ml bottle", 1190, 0},
	{"Tea infuser", "Stainless steel ball", 590, 110},
	{"Teapot", "Cast iron, 800 ml", 4500, 10},
	{"Cold brew bottle", "1 l with filter", 2600, 30},
	{"Espresso cups", "Set of 4, 90 ml", 2400, 25},
	{"Latte glasses", "Set of 2, 300 ml", 1800, 0},
	{"Knock box", "For espresso pucks", 2100, 18},
	{"Tamper", "58 mm, walnut handle", 2700, 22},
	{"Cleaning tablets", "For espresso machines, 100 pieces", 1400, 65},
	{"Descaler", "Citric acid based, 500 ml", 990, 55},
	{"Gift card", "Spend it on anything in the shop", 5000, 1000},
	{"Coffee sampler", "Six single-origin 100 g bags", 3200, 28},
	{"Tea sampler", "Twelve loose-leaf teas", 2800, 33},
	{"Coaster set", "Cork, 6 pieces", 800, 75},
	{"Apron", "Canvas barista apron", 3500, 14},
	{"Storage canister", "Airtight, 1 kg", 2300, 26},
	{"Moka pot", "Aluminium, 6 cups", 3100, 19},
	{"Cocoa powder", "Unsweetened, 250 g", 690, 48},
}

// Demo holds what SeedDemo created.
type Demo struct {
	Merchant, Customer User
	Products           int
}

// SeedDemo fills an empty store with a demo merchant, a demo customer and a few dozen
// products. It does nothing (and returns nil) when any account exists.
func (s *Store) SeedDemo(ctx context.Context) (*Demo, error) {
	n, err := s.CountUsers(ctx)
	if err != nil || n > 0 {
		return nil, err
	}
	merchant, err := s.insertUser(ctx, NewUser{Email: DemoMerchantEmail, Name: "Demo Merchant", Password: DemoPassword, Role: RoleMerchant})
	if err != nil {
		return nil, fmt.Errorf("seed demo: %w", err)
	}
	customer, err := s.insertUser(ctx, NewUser{Email: DemoCustomerEmail, Name: "Demo Customer", Password: DemoPassword, Role: RoleCustomer})
	if err != nil {
		return nil, fmt.Errorf("seed demo: %w", err)
	}
	v := Viewer{UserID: merchant.ID, Role: RoleMerchant}
	for _, p := range demoProducts {
		if _, err := s.CreateProduct(ctx, v, NewProduct{Name: p.name, Description: p.description, Price: p.price, Stock: p.stock}); err != nil {
			return nil, fmt.Errorf("seed demo: %w", err)
		}
	}
	return &Demo{Merchant: merchant, Customer: customer, Products: len(demoProducts)}, nil
}
