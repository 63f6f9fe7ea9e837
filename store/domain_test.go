package store

import (
	"path/filepath"
	"testing"
)

// The currency is configuration: the store opened with CURRENCY=EUR prices in euros.
func TestMoneyCurrencyIsTheShops(t *testing.T) {
	st, err := Open(t.Context(), Config{SQLitePath: filepath.Join(t.TempDir(), "shop.db"), Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		currency.Store(nil) // the other tests' stores name no currency
	})
	if got := Money(1250).Currency(); got != "EUR" {
		t.Fatalf("Currency() = %q with Config.Currency EUR", got)
	}
}
