package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

const changePassword = `mutation($cur: String!, $new: String!) {
  changePassword(input: {currentPassword: $cur, newPassword: $new}) { token userErrors { code field } } }`

// TestChangePasswordEndsEarlierTokens: changing a password ends every token issued before it,
// at once on the process that changed it, within a few seconds on another, and on an open
// socket of that other process (4403); the new token, and the new password, work.
func TestChangePasswordEndsEarlierTokens(t *testing.T) {
	t.Parallel()
	cfg := config{}
	liveConfig(&cfg)
	cfg.Live.PingInterval = 200 * time.Millisecond
	forEachBackendPair(t, cfg, func(t *testing.T, a, b *testEnv) {
		customer := a.signUp("CUSTOMER")
		sock := b.connectSocket(customer.Token)
		sock.Subscribe("mine", subMine, nil)
		b.waitSubscribers(1)

		vars := func(cur, next string) map[string]any { return map[string]any{"cur": cur, "new": next} }
		for _, c := range []struct{ cur, next, code, field string }{
			{"wrong-password", "new-password-1", "INVALID_CREDENTIALS", "currentPassword"},
			{"password123", "short", "INVALID_INPUT", "newPassword"},
		} {
			r := a.as(customer.Token).post(changePassword, vars(c.cur, c.next))
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), c.code) || !strings.Contains(string(r.Data), c.field) {
				t.Fatalf("changePassword(%q, %q): %s %v; want %s on %s", c.cur, c.next, r.Data, r.Errors, c.code, c.field)
			}
		}
		if r := a.anon().post(changePassword, vars("password123", "new-password-1")); r.Code() != "UNAUTHENTICATED" {
			t.Fatalf("anonymous changePassword: %v", r.Errors)
		}
		var out struct{ ChangePassword struct{ Token string } }
		a.as(customer.Token).must(changePassword, vars("password123", "new-password-1"), &out)
		fresh := out.ChangePassword.Token
		if fresh == "" {
			t.Fatal("no token after changing the password")
		}

		const me = `{ me { id } }`
		if r := a.as(customer.Token).post(me, nil); r.Status != http.StatusUnauthorized || r.Code() != "UNAUTHENTICATED" {
			t.Errorf("the old token on the same process: status %d, %v; want 401 UNAUTHENTICATED", r.Status, r.Errors)
		}
		if r := a.as(fresh).post(me, nil); len(r.Errors) > 0 {
			t.Errorf("the new token: %v", r.Errors)
		}
		waitFor(t, 5*time.Second, "the other process to refuse the old token", func() bool {
			return b.as(customer.Token).post(me, nil).Status == http.StatusUnauthorized
		})
		if code := sock.Closed(5 * time.Second); code != 4403 {
			t.Errorf("the old token's socket on the other process closed with %d, want 4403", code)
		}
		if r := b.as(fresh).post(me, nil); len(r.Errors) > 0 {
			t.Errorf("the new token on the other process: %v", r.Errors)
		}
		again := b.dialSocket(dialOpts{})
		again.Send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + customer.Token}})
		if code := again.Closed(5 * time.Second); code != 4403 {
			t.Errorf("a new socket with the old token: close %d, want 4403", code)
		}
		a.logIn(customer.Email, "new-password-1")
	})
}
