package tests

import "testing"

func TestPlaceAndReadOrder(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant := env.signUp("MERCHANT")
		customer := env.signUp("CUSTOMER")
		product := env.createProduct(merchant, "Mug", 1500, 10)
		order := env.placeOrder(customer, line{product, 3})

		var out struct {
			Order struct {
				Status string
				Total  struct{ Amount int }
				Items  []struct {
					Quantity int
					Product  struct{ Stock int }
				}
				History []struct{ Status string }
			}
		}
		env.as(customer.Token).must(`query($id: ID!) { order(id: $id) { status total { amount } items { quantity product { stock } } history { status } } }`,
			map[string]any{"id": order}, &out)
		if out.Order.Status != "PENDING" || out.Order.Total.Amount != 4500 || len(out.Order.Items) != 1 ||
			out.Order.Items[0].Product.Stock != 7 || len(out.Order.History) != 1 {
			t.Fatalf("order = %+v", out.Order)
		}
	})
}
