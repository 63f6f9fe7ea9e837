package store

import (
	"context"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestDummyHashHasTheStoresCost checks that a sign-in with an unknown email compares against
// a hash of the same bcrypt cost as real accounts', so that its timing does not reveal
// whether the email exists.
func TestDummyHashHasTheStoresCost(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost, bcrypt.MinCost + 1} {
		s, err := Open(context.Background(), Config{SQLitePath: filepath.Join(t.TempDir(), "shop.db"), PasswordCost: cost})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		u, err := s.CreateUser(context.Background(), NewUser{Email: "a@example.com", Name: "A", Password: "password", Role: RoleCustomer})
		if err != nil {
			t.Fatal(err)
		}
		var row userRow
		if err := s.db.Take(&row, u.ID).Error; err != nil {
			t.Fatal(err)
		}
		realCost, _ := bcrypt.Cost([]byte(row.PasswordHash))
		dummy, err := bcrypt.Cost(s.dummyHash())
		if err != nil || dummy != realCost || realCost != cost {
			t.Fatalf("cost %d: real hashes have cost %d, the dummy %d (%v)", cost, realCost, dummy, err)
		}
		if _, err := s.Authenticate(context.Background(), "nobody@example.com", "password"); ErrorCode(err) != CodeInvalidCredentials {
			t.Fatalf("unknown email: %v, want INVALID_CREDENTIALS", err)
		}
	}
}
