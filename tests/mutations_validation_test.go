package tests

import (
	"slices"
	"strings"
	"testing"
)

// TestSignUpValidation checks every sign-up rule of the contract: a well-formed email unique
// in any letter case (EMAIL_TAKEN), a password of at least 8 characters, a 1–200 character
// name, and no self-made ADMINs. A refused sign-up must create nothing.
func TestSignUpValidation(t *testing.T) {
	t.Parallel()
	type signUpCase struct {
		name string
		// email may contain {u}, replaced by a value unique to the case.
		email, userName, password string
		role                      string // "" leaves the role to its default, CUSTOMER
		want                      []wantUserError
		wantRole                  string
	}
	invalid := func(field string) []wantUserError {
		return []wantUserError{{Code: "INVALID_INPUT", Field: []string{field}}}
	}
	cases := []signUpCase{
		{name: "customer by default", email: "{u}@example.com", userName: "Ann", password: "password", wantRole: "CUSTOMER"},
		{name: "merchant", email: "{u}@example.com", userName: "Bob", password: "password", role: "MERCHANT", wantRole: "MERCHANT"},
		{name: "explicit customer", email: "{u}@example.com", userName: "Cy", password: "password", role: "CUSTOMER", wantRole: "CUSTOMER"},
		{name: "admin refused", email: "{u}@example.com", userName: "Eve", password: "password", role: "ADMIN", want: invalid("role")},
		{name: "email without at", email: "{u}.example.com", userName: "Dan", password: "password", want: invalid("email")},
		{name: "email without domain", email: "{u}@", userName: "Dan", password: "password", want: invalid("email")},
		{name: "email without local part", email: "@{u}.com", userName: "Dan", password: "password", want: invalid("email")},
		{name: "email with display name", email: "Dan <{u}@example.com>", userName: "Dan", password: "password", want: invalid("email")},
		{name: "email with spaces", email: "{u} x@example.com", userName: "Dan", password: "password", want: invalid("email")},
		{name: "empty email", email: "", userName: "Dan", password: "password", want: invalid("email")},
		{name: "password of 7", email: "{u}@example.com", userName: "Dan", password: "1234567", want: invalid("password")},
		{name: "password of 8", email: "{u}@example.com", userName: "Dan", password: "12345678", wantRole: "CUSTOMER"},
		{name: "empty password", email: "{u}@example.com", userName: "Dan", password: "", want: invalid("password")},
		{name: "empty name", email: "{u}@example.com", userName: "", password: "password", want: invalid("name")},
		{name: "blank name", email: "{u}@example.com", userName: "   ", password: "password", want: invalid("name")},
		{name: "name of 1", email: "{u}@example.com", userName: "D", password: "password", wantRole: "CUSTOMER"},
		{name: "name of 200", email: "{u}@example.com", userName: strings.Repeat("é", 200), password: "password", wantRole: "CUSTOMER"},
		{name: "name of 201", email: "{u}@example.com", userName: strings.Repeat("é", 201), password: "password", want: invalid("name")},
		{name: "every field wrong", email: "nope", userName: "", password: "short", role: "ADMIN", want: []wantUserError{
			{Code: "INVALID_INPUT", Field: []string{"email"}}, {Code: "INVALID_INPUT", Field: []string{"name"}},
			{Code: "INVALID_INPUT", Field: []string{"password"}}, {Code: "INVALID_INPUT", Field: []string{"role"}},
		}},
		{name: "email taken", email: "taken@example.com", userName: "Dan", password: "password", want: []wantUserError{{Code: "EMAIL_TAKEN", Field: []string{"email"}}}},
		{name: "email taken in other case", email: "TAKEN@Example.COM", userName: "Dan", password: "password", want: []wantUserError{{Code: "EMAIL_TAKEN", Field: []string{"email"}}}},
	}
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		env.anon().must(opSignUp, map[string]any{"in": map[string]any{"email": "Taken@example.com", "name": "First", "password": "first-password"}}, nil)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				in := map[string]any{
					"email":    strings.ReplaceAll(c.email, "{u}", strings.TrimSuffix(uniqueEmail(), "@example.com")),
					"name":     c.userName,
					"password": c.password,
				}
				if c.role != "" {
					in["role"] = c.role
				}
				r, p := env.anon().mutate("signUp", opSignUp, map[string]any{"in": in})
				if c.want != nil {
					requireUserErrors(t, r, p, c.want...)
					// Nothing was created: a valid sign-up with the same (well-formed) email
					// still succeeds, and a taken address still belongs to its first owner.
					// (Logging in to check would compare against bcrypt's default cost.)
					switch {
					case c.want[0].Code == "EMAIL_TAKEN":
						env.logIn("taken@example.com", "first-password")
					case !slices.ContainsFunc(c.want, func(w wantUserError) bool { return slices.Equal(w.Field, []string{"email"}) }):
						again, ap := env.anon().mutate("signUp", opSignUp, map[string]any{"in": map[string]any{
							"email": in["email"], "name": "Again", "password": "password"}})
						requireOK(t, again, ap)
					}
					return
				}
				requireOK(t, r, p)
				if p.Token == nil || *p.Token == "" || p.User == nil || p.User.Role != c.wantRole {
					t.Fatalf("payload = %s, want a token and a %s", compactJSON(p), c.wantRole)
				}
				// The payload runs as the new user, who may see their own email.
				if p.User.Email == nil || *p.User.Email != in["email"] {
					t.Fatalf("email in payload = %v, want %v", p.User.Email, in["email"])
				}
				var me struct{ Me *struct{ ID string } }
				env.as(*p.Token).must(`{ me { id } }`, nil, &me)
				if me.Me == nil || me.Me.ID != p.User.ID {
					t.Fatalf("me with the new token = %+v, want %s", me.Me, p.User.ID)
				}
			})
		}
	})
}

// TestLogIn checks that logIn accepts the right password with the email in any letter case,
// and answers INVALID_CREDENTIALS (without saying which part was wrong) otherwise.
func TestLogIn(t *testing.T) {
	t.Parallel()
	type logInCase struct {
		name, email, password string
		ok                    bool
	}
	cases := []logInCase{
		{"right password", "Shopper@Example.com", "right-password", true},
		{"email in other case", "SHOPPER@example.COM", "right-password", true},
		{"wrong password", "Shopper@Example.com", "wrong-password", false},
		{"password in other case", "Shopper@Example.com", "RIGHT-PASSWORD", false},
		{"empty password", "Shopper@Example.com", "", false},
		{"unknown email", "nobody@example.com", "right-password", false},
		{"empty email", "", "right-password", false},
	}
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		r, p := env.anon().mutate("signUp", opSignUp, map[string]any{"in": map[string]any{
			"email": "Shopper@Example.com", "name": "Shopper", "password": "right-password"}})
		requireOK(t, r, p)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r, lp := env.anon().mutate("logIn", opLogIn, map[string]any{"in": map[string]any{"email": c.email, "password": c.password}})
				if !c.ok {
					requireUserErrors(t, r, lp, wantUserError{Code: "INVALID_CREDENTIALS"})
					return
				}
				requireOK(t, r, lp)
				if lp.Token == nil || lp.User == nil || lp.User.ID != p.User.ID {
					t.Fatalf("logIn payload = %s, want the account %s", compactJSON(lp), p.User.ID)
				}
			})
		}
	})
}

// TestProductValidation checks createProduct's and updateProduct's bounds: names 1–200
// characters, price 0–100,000,000, stock 0–1,000,000. A refused update changes nothing,
// not even the fields of it that were valid.
func TestProductValidation(t *testing.T) {
	t.Parallel()
	type productCase struct {
		name         string
		productName  string
		price, stock int
		want         []wantUserError
		wantName     string // the stored name on success (names are trimmed)
	}
	invalid := func(fields ...string) []wantUserError {
		var out []wantUserError
		for _, f := range fields {
			out = append(out, wantUserError{Code: "INVALID_INPUT", Field: []string{f}})
		}
		return out
	}
	cases := []productCase{
		{name: "ordinary", productName: "Mug", price: 1500, stock: 10, wantName: "Mug"},
		{name: "free and sold out", productName: "Sticker", price: 0, stock: 0, wantName: "Sticker"},
		{name: "highest price and stock", productName: "Yacht", price: 100_000_000, stock: 1_000_000, wantName: "Yacht"},
		{name: "name trimmed", productName: "  Bowl  ", price: 1, stock: 1, wantName: "Bowl"},
		{name: "name of 200", productName: strings.Repeat("ü", 200), price: 1, stock: 1, wantName: strings.Repeat("ü", 200)},
		{name: "name of 201", productName: strings.Repeat("ü", 201), price: 1, stock: 1, want: invalid("name")},
		{name: "empty name", productName: "", price: 1, stock: 1, want: invalid("name")},
		{name: "blank name", productName: " \t ", price: 1, stock: 1, want: invalid("name")},
		{name: "negative price", productName: "Mug", price: -1, stock: 1, want: invalid("price")},
		{name: "price over the limit", productName: "Mug", price: 100_000_001, stock: 1, want: invalid("price")},
		{name: "negative stock", productName: "Mug", price: 1, stock: -1, want: invalid("stock")},
		{name: "stock over the limit", productName: "Mug", price: 1, stock: 1_000_001, want: invalid("stock")},
		{name: "everything wrong", productName: "", price: -5, stock: 2_000_000, want: invalid("name", "price", "stock")},
	}
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant := env.signUp("MERCHANT")
		seller := env.as(merchant.Token)
		existing := env.createProduct(merchant, "Original", 700, 7)
		before := env.product(existing)
		for _, c := range cases {
			t.Run("create/"+c.name, func(t *testing.T) {
				r, p := seller.mutate("createProduct", opCreateProduct, map[string]any{"in": map[string]any{
					"name": c.productName, "price": c.price, "stock": c.stock}})
				if c.want != nil {
					requireUserErrors(t, r, p, c.want...)
					return
				}
				requireOK(t, r, p)
				got := p.Product
				if got.Name != c.wantName || got.Price.Amount != c.price || got.Price.Currency != "USD" || got.Stock != c.stock || got.Description != "" {
					t.Fatalf("created %s", compactJSON(got))
				}
				if stored := env.product(got.ID); stored != *got {
					t.Fatalf("stored %s, payload %s", compactJSON(stored), compactJSON(got))
				}
			})
			t.Run("update/"+c.name, func(t *testing.T) {
				r, p := seller.mutate("updateProduct", opUpdateProduct, map[string]any{"in": map[string]any{
					"id": existing, "name": c.productName, "price": c.price, "stock": c.stock}})
				if c.want != nil {
					requireUserErrors(t, r, p, c.want...)
					if after := env.product(existing); after != before {
						t.Fatalf("a refused update changed the product: %s, was %s", compactJSON(after), compactJSON(before))
					}
					return
				}
				requireOK(t, r, p)
				if p.Product.Name != c.wantName || p.Product.Price.Amount != c.price || p.Product.Stock != c.stock {
					t.Fatalf("updated %s", compactJSON(p.Product))
				}
				// Put it back, so the refused cases can check that nothing changed.
				r, p = seller.mutate("updateProduct", opUpdateProduct, map[string]any{"in": map[string]any{
					"id": existing, "name": before.Name, "price": before.Price.Amount, "stock": before.Stock}})
				requireOK(t, r, p)
			})
		}
		t.Run("refused creates created nothing", func(t *testing.T) {
			created := 1 // "Original"
			for _, c := range cases {
				if c.want == nil {
					created++
				}
			}
			var out struct{ Products struct{ TotalCount int } }
			env.anon().must(`query($m: ID) { products(filter: {merchantId: $m}) { totalCount } }`, map[string]any{"m": merchant.ID}, &out)
			if out.Products.TotalCount != created {
				t.Fatalf("the merchant has %d products, want %d", out.Products.TotalCount, created)
			}
		})
		t.Run("update only some fields", func(t *testing.T) {
			r, p := seller.mutate("updateProduct", opUpdateProduct, map[string]any{"in": map[string]any{"id": existing, "description": "now described"}})
			requireOK(t, r, p)
			want := before
			want.Description = "now described"
			if *p.Product != want || env.product(existing) != want {
				t.Fatalf("after a description-only update: %s, want %s", compactJSON(p.Product), compactJSON(want))
			}
		})
		t.Run("update unknown product", func(t *testing.T) {
			r, p := seller.mutate("updateProduct", opUpdateProduct, map[string]any{"in": map[string]any{"id": gid("Product", 987654321), "price": 1}})
			requireUserErrors(t, r, p, wantUserError{Code: "NOT_FOUND", Field: []string{"id"}})
		})
	})
}
