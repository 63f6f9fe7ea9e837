package store

import (
	"testing"
	"time"
)

// Entries read back exactly as they were written, decoding allocates nothing, and a cut or
// padded entry is refused.
func TestCacheCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 4, 5, 6, 7, 891011, time.UTC)
	u := User{ID: 1 << 40, Name: "Åsa Merchant", Email: "asa@example.com", Role: RoleMerchant, CreatedAt: at}
	p := Product{ID: 7, MerchantID: 1 << 40, Name: "Kettle", Description: "", Price: -1, Stock: 300, CreatedAt: at, UpdatedAt: at.Add(time.Hour)}
	userEntry, productEntry := string(userCodec.marshal(u)), string(productCodec.marshal(p))
	if got, err := userCodec.unmarshal(userEntry); err != nil || got != u {
		t.Errorf("user: %+v, %v; want %+v", got, err, u)
	}
	if got, err := productCodec.unmarshal(productEntry); err != nil || got != p {
		t.Errorf("product: %+v, %v; want %+v", got, err, p)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = userCodec.unmarshal(userEntry) }); n != 0 {
		t.Errorf("decoding a user allocates %v times", n)
	}
	for _, bad := range []string{"", userEntry[:len(userEntry)-1], userEntry + "x", "\x00" + userEntry[1:], userEntry[:3]} {
		if _, err := userCodec.unmarshal(bad); err == nil {
			t.Errorf("entry %q decoded", bad)
		}
	}
}
