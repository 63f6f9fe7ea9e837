package store

import "testing"

func TestMoneyCurrencyIsTheShops(t *testing.T) {
	defer SetCurrency(Money(0).Currency())
	SetCurrency("EUR")
	if got := Money(1250).Currency(); got != "EUR" {
		t.Fatalf("Currency() = %q after SetCurrency(EUR)", got)
	}
}
