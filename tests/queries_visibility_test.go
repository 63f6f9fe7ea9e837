package tests

import (
	"slices"
	"testing"
)

// visibilityFixture is a shop where every role sees a different set of orders: two
// merchants, two customers, an admin, and orders spanning them.
type visibilityFixture struct {
	admin, merchant1, merchant2, customer1, customer2 account
	product1, product2                                string
	// order1: customer1 buys product1; order2: customer2 buys product2; order3: customer1
	// buys both; order4: merchant1 buys product2 (a merchant placing an order).
	order1, order2, order3, order4 string
}

func newVisibilityFixture(env *testEnv, admin account) visibilityFixture {
	env.t.Helper()
	f := visibilityFixture{admin: admin,
		merchant1: env.signUp("MERCHANT"), merchant2: env.signUp("MERCHANT"),
		customer1: env.signUp("CUSTOMER"), customer2: env.signUp("CUSTOMER")}
	f.product1 = env.createProduct(f.merchant1, "Kettle", 3000, 100)
	f.product2 = env.createProduct(f.merchant2, "Toaster", 4000, 100)
	f.order1 = env.placeOrder(f.customer1, line{f.product1, 1})
	f.order2 = env.placeOrder(f.customer2, line{f.product2, 1})
	f.order3 = env.placeOrder(f.customer1, line{f.product1, 1}, line{f.product2, 1})
	f.order4 = env.placeOrder(f.merchant1, line{f.product2, 2})
	return f
}

// TestOrdersListPerRole checks `orders` for every role: a customer's own, a merchant's with
// their products plus those they placed, every order for an admin, newest first, with a
// totalCount that agrees; anonymous callers get UNAUTHENTICATED. User.orders is the orders
// the user placed.
func TestOrdersListPerRole(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		f := newVisibilityFixture(env, admin)
		type listCase struct {
			who  string
			as   account
			want []string
		}
		cases := []listCase{
			{"customer", f.customer1, []string{f.order3, f.order1}},
			{"other customer", f.customer2, []string{f.order2}},
			{"merchant", f.merchant1, []string{f.order4, f.order3, f.order1}},
			{"other merchant", f.merchant2, []string{f.order4, f.order3, f.order2}},
			{"admin", f.admin, []string{f.order4, f.order3, f.order2, f.order1}},
		}
		for _, c := range cases {
			t.Run(c.who, func(t *testing.T) {
				var out struct {
					Orders struct {
						TotalCount int
						Nodes      []struct{ ID string }
					}
				}
				env.as(c.as.Token).must(`{ orders { totalCount nodes { id } } }`, nil, &out)
				var got []string
				for _, n := range out.Orders.Nodes {
					got = append(got, n.ID)
				}
				if !slices.Equal(got, c.want) || out.Orders.TotalCount != len(c.want) {
					t.Fatalf("orders = %v (totalCount %d), want %v", got, out.Orders.TotalCount, c.want)
				}
			})
		}
		t.Run("anonymous", func(t *testing.T) {
			r := env.anon().post(`{ orders { totalCount nodes { id } } }`, nil)
			if r.Code() != "UNAUTHENTICATED" || string(r.Data) != "null" {
				t.Fatalf("anonymous orders: data %s, errors %+v", r.Data, r.Errors)
			}
		})
		t.Run("User.orders is what the user placed", func(t *testing.T) {
			var out struct {
				User struct {
					Orders struct {
						TotalCount int
						Nodes      []struct{ ID string }
					}
				}
			}
			env.as(admin.Token).must(`query($id: ID!) { user(id: $id) { orders { totalCount nodes { id } } } }`,
				map[string]any{"id": f.merchant1.ID}, &out)
			if out.User.Orders.TotalCount != 1 || len(out.User.Orders.Nodes) != 1 || out.User.Orders.Nodes[0].ID != f.order4 {
				t.Fatalf("merchant1's placed orders = %+v, want only %s", out.User.Orders, f.order4)
			}
		})
		t.Run("status filter", func(t *testing.T) {
			env.as(admin.Token).must(`mutation($id: ID!) { updateOrderStatus(input: {id: $id, status: PAID}) { userErrors { code } } }`,
				map[string]any{"id": f.order3}, nil)
			var out struct {
				Orders struct {
					TotalCount int
					Nodes      []struct{ ID string }
				}
			}
			env.as(f.customer1.Token).must(`{ orders(status: PAID) { totalCount nodes { id } } }`, nil, &out)
			if out.Orders.TotalCount != 1 || len(out.Orders.Nodes) != 1 || out.Orders.Nodes[0].ID != f.order3 {
				t.Fatalf("PAID orders of customer1 = %+v, want only %s", out.Orders, f.order3)
			}
		})
	})
}

// TestOrderVisibility checks that an order the caller may not see looks exactly like one
// that does not exist: `order(id:)` and `node(id:)` give null with the same NOT_FOUND error.
func TestOrderVisibility(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		f := newVisibilityFixture(env, admin)
		unknown := gid("Order", 987654321)
		for _, field := range []string{"order", "node"} {
			query := `query($id: ID!) { ` + field + `(id: $id) { id } }`
			t.Run(field, func(t *testing.T) {
				asked := func(who account, id string) gqlResponse {
					return env.as(who.Token).post(query, map[string]any{"id": id})
				}
				// Seen by its customer, its merchants and the admin.
				for _, who := range []account{f.customer1, f.merchant1, f.merchant2, admin} {
					var out map[string]*struct{ ID string }
					env.as(who.Token).must(query, map[string]any{"id": f.order3}, &out)
					if out[field] == nil || out[field].ID != f.order3 {
						t.Fatalf("%s of a visible order = %+v", field, out)
					}
				}
				want := asked(f.customer2, unknown)
				if string(want.Data) != `{"`+field+`":null}` || len(want.Errors) != 1 || want.Code() != "NOT_FOUND" {
					t.Fatalf("unknown order: data %s, errors %+v", want.Data, want.Errors)
				}
				for name, got := range map[string]gqlResponse{
					"another customer's order":                 asked(f.customer2, f.order1),
					"an order without the merchant's products": asked(f.merchant2, f.order1),
					"a malformed id":                           asked(f.customer2, "not-an-id"),
					"a product's id":                           asked(f.customer2, f.product1),
				} {
					if field == "node" && name == "a product's id" {
						continue // node(id:) resolves products
					}
					if string(got.Data) != string(want.Data) || compactJSON(got.Errors) != compactJSON(want.Errors) {
						t.Errorf("%s: data %s, errors %+v; want exactly the unknown id's %s, %+v", name, got.Data, got.Errors, want.Data, want.Errors)
					}
				}
				anon := env.anon().post(query, map[string]any{"id": f.order1})
				if string(anon.Data) != `{"`+field+`":null}` || anon.Code() != "UNAUTHENTICATED" {
					t.Fatalf("anonymous: data %s, errors %+v", anon.Data, anon.Errors)
				}
			})
		}
	})
}

// TestNode checks node(id:) for every type implementing Node, and null with NOT_FOUND for
// IDs of nothing.
func TestNode(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		product := env.createProduct(merchant, "Lamp", 2500, 3)
		order := env.placeOrder(customer, line{product, 1})
		query := `query($id: ID!) { node(id: $id) { __typename id
			... on User { name role } ... on Product { name stock } ... on Order { status } } }`
		type nodeCase struct {
			name, id, wantType string
		}
		for _, c := range []nodeCase{
			{"user", merchant.ID, "User"},
			{"product", product, "Product"},
			{"order", order, "Order"},
		} {
			t.Run(c.name, func(t *testing.T) {
				var out struct {
					Node *struct {
						Typename string `json:"__typename"`
						ID       string
						Name     string
						Status   string
					}
				}
				env.as(customer.Token).must(query, map[string]any{"id": c.id}, &out)
				if out.Node == nil || out.Node.Typename != c.wantType || out.Node.ID != c.id {
					t.Fatalf("node = %+v, want %s %s", out.Node, c.wantType, c.id)
				}
			})
		}
		// product(id:) and user(id:) answer unknown IDs the same way.
		for _, c := range []nodeCase{
			{"product", gid("Product", 987654321), ""},
			{"product", "%%%", ""},
			{"product", merchant.ID, ""},
			{"user", gid("User", 987654321), ""},
			{"user", product, ""},
		} {
			r := env.as(customer.Token).post(`query($id: ID!) { `+c.name+`(id: $id) { id } }`, map[string]any{"id": c.id})
			if string(r.Data) != `{"`+c.name+`":null}` || len(r.Errors) != 1 || r.Code() != "NOT_FOUND" {
				t.Fatalf("%s(%q): data %s, errors %+v", c.name, c.id, r.Data, r.Errors)
			}
		}
		for _, c := range []nodeCase{
			{"unknown user", gid("User", 987654321), ""},
			{"unknown product", gid("Product", 987654321), ""},
			{"unknown kind", gid("Coupon", 1), ""},
			{"malformed", "%%%", ""},
			{"empty", "", ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := env.as(customer.Token).post(query, map[string]any{"id": c.id})
				if string(r.Data) != `{"node":null}` || len(r.Errors) != 1 || r.Code() != "NOT_FOUND" {
					t.Fatalf("node(%q): data %s, errors %+v", c.id, r.Data, r.Errors)
				}
			})
		}
	})
}

// TestPrivateUserFields checks that a user's email and orders are null with a FORBIDDEN error
// for anyone but the user and ADMINs, while the rest of the user still resolves; and that
// `me` is the caller, null when anonymous.
func TestPrivateUserFields(t *testing.T) {
	t.Parallel()
	forEachBackendWithAdmin(t, func(t *testing.T, env *testEnv, admin account) {
		owner, stranger, merchant := env.signUp("CUSTOMER"), env.signUp("CUSTOMER"), env.signUp("MERCHANT")
		product := env.createProduct(merchant, "Chair", 100, 5)
		env.placeOrder(owner, line{product, 1})
		query := `query($id: ID!) { user(id: $id) { id name role email orders { totalCount } } }`
		type userView struct {
			User *struct {
				ID, Name, Role string
				Email          *string
				Orders         *struct{ TotalCount int }
			}
		}
		type privacyCase struct {
			who     string
			client  *client
			visible bool
		}
		for _, c := range []privacyCase{
			{"self", env.as(owner.Token), true},
			{"admin", env.as(admin.Token), true},
			{"another customer", env.as(stranger.Token), false},
			{"the merchant they bought from", env.as(merchant.Token), false},
			{"anonymous", env.anon(), false},
		} {
			t.Run(c.who, func(t *testing.T) {
				r := c.client.post(query, map[string]any{"id": owner.ID})
				var out userView
				r.Decode(t, &out)
				if out.User == nil || out.User.ID != owner.ID || out.User.Name == "" || out.User.Role != "CUSTOMER" {
					t.Fatalf("the public part of the user did not resolve: %s (errors %+v)", r.Data, r.Errors)
				}
				if c.visible {
					if len(r.Errors) > 0 || out.User.Email == nil || *out.User.Email != owner.Email ||
						out.User.Orders == nil || out.User.Orders.TotalCount != 1 {
						t.Fatalf("data %s, errors %+v; want email and one order", r.Data, r.Errors)
					}
					return
				}
				if out.User.Email != nil || out.User.Orders != nil {
					t.Fatalf("private fields leaked: %s", r.Data)
				}
				var paths []string
				for _, e := range r.Errors {
					if e.Extensions["code"] != "FORBIDDEN" {
						t.Errorf("error %+v, want FORBIDDEN", e)
					}
					paths = append(paths, compactJSON(e.Path))
				}
				slices.Sort(paths)
				if want := []string{`["user","email"]`, `["user","orders"]`}; !slices.Equal(paths, want) {
					t.Fatalf("error paths %v, want %v", paths, want)
				}
			})
		}
		t.Run("me", func(t *testing.T) {
			r := env.anon().post(`{ me { id } }`, nil)
			if len(r.Errors) > 0 || string(r.Data) != `{"me":null}` {
				t.Fatalf("anonymous me: data %s, errors %+v", r.Data, r.Errors)
			}
			var out struct{ Me *struct{ ID, Email string } }
			env.as(owner.Token).must(`{ me { id email } }`, nil, &out)
			if out.Me == nil || out.Me.ID != owner.ID || out.Me.Email != owner.Email {
				t.Fatalf("me = %+v, want %s", out.Me, owner.ID)
			}
		})
	})
}
