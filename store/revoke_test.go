package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// TestPasswordChangesMoveTheTokenVersion: a password change, and the admin's reset at start
// with a new password, move the account's token version on and are listed as revocations;
// a restart with the same admin password moves nothing.
func TestPasswordChangesMoveTheTokenVersion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		start := time.Now().Add(-time.Minute)
		email := storetest.Name("admin") + "@example.com"
		admin, err := s.EnsureAdmin(ctx, email, "password123")
		if err != nil {
			t.Fatal(err)
		}
		again, _ := s.EnsureAdmin(ctx, email, "password123")
		reset, _ := s.EnsureAdmin(ctx, email, "another-password")
		if admin.TokenVersion != 0 || again.TokenVersion != 0 || reset.TokenVersion != 1 {
			t.Errorf("admin token versions: created %d, same password %d, reset %d; want 0 0 1",
				admin.TokenVersion, again.TokenVersion, reset.TokenVersion)
		}
		customer := mustCreateUser(t, s, store.RoleCustomer)
		if _, err := s.ChangePassword(ctx, customer, "wrong-password", "new-password"); store.ErrorCode(err) != store.CodeInvalidCredentials {
			t.Errorf("wrong current password: %v", err)
		}
		u, err := s.ChangePassword(ctx, customer, "password123", "new-password")
		if err != nil || u.TokenVersion != 1 {
			t.Fatalf("change: %+v %v", u, err)
		}
		if _, err := s.Authenticate(ctx, u.Email, "new-password"); err != nil {
			t.Errorf("the new password: %v", err)
		}
		revs, err := s.TokenRevocations(ctx, start)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64]int64{}
		for _, r := range revs {
			got[r.UserID] = r.Version
		}
		if got[reset.ID] != 1 || got[u.ID] != 1 || len(got) != 2 {
			t.Errorf("revocations since the start: %v; want the admin's and the customer's, version 1", got)
		}
	})
}
