package tests

import (
	"encoding/base64"
	"fmt"
	"slices"
	"testing"
)

// pageView is one page of a connection, with every field the paging tests check.
type pageView struct {
	TotalCount int
	Edges      []struct {
		Cursor string
		Node   struct {
			ID   string
			Name string
		}
	}
	Nodes []struct {
		ID   string
		Name string
	}
	PageInfo struct {
		HasNextPage     bool
		HasPreviousPage bool
		StartCursor     *string
		EndCursor       *string
	}
}

// check fails unless the page is consistent in itself: nodes match edges and the start and
// end cursors are those of the first and last edge.
func (p pageView) check(t *testing.T) {
	t.Helper()
	if len(p.Nodes) != len(p.Edges) {
		t.Fatalf("%d nodes, %d edges", len(p.Nodes), len(p.Edges))
	}
	for i := range p.Nodes {
		if p.Nodes[i].ID != p.Edges[i].Node.ID || p.Edges[i].Cursor == "" {
			t.Fatalf("node %d is %s, edge %s with cursor %q", i, p.Nodes[i].ID, p.Edges[i].Node.ID, p.Edges[i].Cursor)
		}
	}
	pi := p.PageInfo
	if len(p.Edges) == 0 {
		if pi.StartCursor != nil || pi.EndCursor != nil {
			t.Fatalf("empty page with cursors %v, %v", pi.StartCursor, pi.EndCursor)
		}
		return
	}
	if pi.StartCursor == nil || *pi.StartCursor != p.Edges[0].Cursor || pi.EndCursor == nil || *pi.EndCursor != p.Edges[len(p.Edges)-1].Cursor {
		t.Fatalf("start/end cursors %v/%v are not the first/last edge's", pi.StartCursor, pi.EndCursor)
	}
}

func (p pageView) names() []string {
	out := make([]string, len(p.Nodes))
	for i, n := range p.Nodes {
		out[i] = n.Name
	}
	return out
}

const connectionFields = `totalCount edges { cursor node { id name } } nodes { id name }
	pageInfo { hasNextPage hasPreviousPage startCursor endCursor }`

const opProductsPage = `query($first: Int, $after: String, $filter: ProductFilter, $orderBy: ProductOrder) {
	products(first: $first, after: $after, filter: $filter, orderBy: $orderBy) { ` + connectionFields + ` } }`

const opOrdersPage = `query($first: Int, $after: String) { orders(first: $first, after: $after) {
	totalCount edges { cursor node { id } } nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`

// productsPage returns one page of products.
func (c *client) productsPage(vars map[string]any) pageView {
	c.env.t.Helper()
	var out struct{ Products pageView }
	c.must(opProductsPage, vars, &out)
	out.Products.check(c.env.t)
	return out.Products
}

// walkPages pages through a connection with pages of size, calling between (when set) after every
// page, and returns every node's ID in the order seen. It checks each page's pageInfo.
func walkPages(t *testing.T, size int, fetch func(after *string) pageView, between func(page int)) []string {
	t.Helper()
	var seen []string
	var after *string
	for page := 0; ; page++ {
		p := fetch(after)
		if p.PageInfo.HasPreviousPage != (page > 0) {
			t.Fatalf("page %d: hasPreviousPage = %v", page, p.PageInfo.HasPreviousPage)
		}
		if len(p.Nodes) > size || (p.PageInfo.HasNextPage && len(p.Nodes) != size) {
			t.Fatalf("page %d: %d nodes with hasNextPage %v, size %d", page, len(p.Nodes), p.PageInfo.HasNextPage, size)
		}
		for _, n := range p.Nodes {
			seen = append(seen, n.ID)
		}
		if !p.PageInfo.HasNextPage {
			return seen
		}
		if page > 1000 {
			t.Fatal("paging does not end")
		}
		after = p.PageInfo.EndCursor
		if between != nil {
			between(page)
		}
	}
}

// TestPagingArguments checks the page size rules of every connection (first defaults to 20,
// may be 0 to 100, anything else is BAD_USER_INPUT) and that malformed or foreign cursors
// are BAD_USER_INPUT.
func TestPagingArguments(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		for i := range 25 {
			env.createProduct(merchant, fmt.Sprintf("P%02d", i), 100+i, 5)
		}
		a := env.createProduct(merchant, "Ordered", 1, 100)
		for range 21 {
			env.placeOrder(customer, line{a, 1})
		}
		anon, buyer := env.anon(), env.as(customer.Token)

		t.Run("first defaults to 20", func(t *testing.T) {
			p := anon.productsPage(nil)
			if len(p.Nodes) != 20 || !p.PageInfo.HasNextPage || p.PageInfo.HasPreviousPage || p.TotalCount != 26 {
				t.Fatalf("default page: %d nodes, next %v, prev %v, total %d", len(p.Nodes), p.PageInfo.HasNextPage, p.PageInfo.HasPreviousPage, p.TotalCount)
			}
			var out struct {
				User struct{ Products pageView }
			}
			anon.must(`query($id: ID!) { user(id: $id) { products { `+connectionFields+` } } }`, map[string]any{"id": merchant.ID}, &out)
			if len(out.User.Products.Nodes) != 20 || out.User.Products.TotalCount != 26 {
				t.Fatalf("User.products default page: %d nodes of %d", len(out.User.Products.Nodes), out.User.Products.TotalCount)
			}
			var orders struct{ Orders pageView }
			buyer.must(opOrdersPage, nil, &orders)
			if len(orders.Orders.Nodes) != 20 || !orders.Orders.PageInfo.HasNextPage || orders.Orders.TotalCount != 21 {
				t.Fatalf("orders default page: %d nodes of %d, next %v", len(orders.Orders.Nodes), orders.Orders.TotalCount, orders.Orders.PageInfo.HasNextPage)
			}
		})
		t.Run("first 100 and 0", func(t *testing.T) {
			if p := anon.productsPage(map[string]any{"first": 100}); len(p.Nodes) != 26 || p.PageInfo.HasNextPage {
				t.Fatalf("first 100: %d nodes, next %v", len(p.Nodes), p.PageInfo.HasNextPage)
			}
			if p := anon.productsPage(map[string]any{"first": 0}); len(p.Nodes) != 0 || p.TotalCount != 26 {
				t.Fatalf("first 0: %d nodes, total %d", len(p.Nodes), p.TotalCount)
			}
		})
		type badArgs struct {
			name  string
			vars  map[string]any
			query string
			as    *client
		}
		productCursor := anon.productsPage(map[string]any{"first": 1}).Edges[0].Cursor
		priceCursor := anon.productsPage(map[string]any{"first": 1, "orderBy": map[string]any{"field": "PRICE", "direction": "ASC"}}).Edges[0].Cursor
		var orders struct{ Orders pageView }
		buyer.must(opOrdersPage, map[string]any{"first": 1}, &orders)
		orderCursor := orders.Orders.Edges[0].Cursor
		forged := func(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }
		userProducts := `query($id: ID!, $first: Int, $after: String) { user(id: $id) { products(first: $first, after: $after) { totalCount } } }`
		userOrders := `query($id: ID!, $first: Int, $after: String) { user(id: $id) { orders(first: $first, after: $after) { totalCount } } }`
		cases := []badArgs{
			{"products first 101", map[string]any{"first": 101}, opProductsPage, anon},
			{"products first -1", map[string]any{"first": -1}, opProductsPage, anon},
			{"orders first 101", map[string]any{"first": 101}, opOrdersPage, buyer},
			{"orders first -1", map[string]any{"first": -1}, opOrdersPage, buyer},
			{"User.products first 101", map[string]any{"id": merchant.ID, "first": 101}, userProducts, anon},
			{"User.orders first -5", map[string]any{"id": customer.ID, "first": -5}, userOrders, buyer},
			{"products after garbage", map[string]any{"after": "garbage!"}, opProductsPage, anon},
			{"products after empty JSON", map[string]any{"after": forged("{}")}, opProductsPage, anon},
			{"products after not JSON", map[string]any{"after": forged("not json")}, opProductsPage, anon},
			{"products after an order cursor", map[string]any{"after": orderCursor}, opProductsPage, anon},
			{"products by price after a default cursor", map[string]any{"after": productCursor,
				"orderBy": map[string]any{"field": "PRICE", "direction": "ASC"}}, opProductsPage, anon},
			{"products by price descending after an ascending cursor", map[string]any{"after": priceCursor,
				"orderBy": map[string]any{"field": "PRICE", "direction": "DESC"}}, opProductsPage, anon},
			{"products by name after a price cursor", map[string]any{"after": priceCursor,
				"orderBy": map[string]any{"field": "NAME", "direction": "ASC"}}, opProductsPage, anon},
			{"products by price after a cursor with a text key", map[string]any{"after": forged(`{"o":"PRICE:ASC","i":1,"s":"x"}`),
				"orderBy": map[string]any{"field": "PRICE", "direction": "ASC"}}, opProductsPage, anon},
			{"products by name after a cursor with a number key", map[string]any{"after": forged(`{"o":"NAME:ASC","i":1,"n":5}`),
				"orderBy": map[string]any{"field": "NAME", "direction": "ASC"}}, opProductsPage, anon},
			{"products after a negative id", map[string]any{"after": forged(`{"o":"CREATED_AT:DESC","i":-1}`)}, opProductsPage, anon},
			{"orders after garbage", map[string]any{"after": "%%%"}, opOrdersPage, buyer},
			{"orders after a product cursor", map[string]any{"after": productCursor}, opOrdersPage, buyer},
			{"User.orders after a product cursor", map[string]any{"id": customer.ID, "after": productCursor}, userOrders, buyer},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := c.as.post(c.query, c.vars)
				if r.Code() != "BAD_USER_INPUT" || len(r.Errors) != 1 {
					t.Fatalf("want one BAD_USER_INPUT error, got data %s, errors %+v", r.Data, r.Errors)
				}
			})
		}
	})
}

// TestPagingWalk checks that walking every page of products (in every ordering) and of
// orders yields each item exactly once, also while new items are inserted between pages.
func TestPagingWalk(t *testing.T) {
	t.Parallel()
	orderings := []map[string]any{
		nil,
		{"field": "CREATED_AT", "direction": "ASC"},
		{"field": "CREATED_AT", "direction": "DESC"},
		{"field": "PRICE", "direction": "ASC"},
		{"field": "PRICE", "direction": "DESC"},
		{"field": "NAME", "direction": "ASC"},
		{"field": "NAME", "direction": "DESC"},
	}
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		customer := env.signUp("CUSTOMER")
		// catalog gives a new merchant 17 products with few distinct prices and names, so
		// ties must be broken by the cursor's ID.
		catalog := func() (account, []string) {
			merchant := env.signUp("MERCHANT")
			var products []string
			for i := range 17 {
				products = append(products, env.createProduct(merchant, fmt.Sprintf("Item %d", i%4), 100*(i%3), 50))
			}
			return merchant, products
		}
		anon := env.anon()
		for _, orderBy := range orderings {
			t.Run(fmt.Sprint(orderBy), func(t *testing.T) {
				merchant, products := catalog()
				fetch := func(after *string) pageView {
					return anon.productsPage(map[string]any{"first": 3, "after": after, "orderBy": orderBy,
						"filter": map[string]any{"merchantId": merchant.ID}})
				}
				all := anon.productsPage(map[string]any{"first": 100, "orderBy": orderBy, "filter": map[string]any{"merchantId": merchant.ID}})
				var want []string
				for _, n := range all.Nodes {
					want = append(want, n.ID)
				}
				if got := walkPages(t, 3, fetch, nil); !slices.Equal(got, want) {
					t.Fatalf("pages gave %v, one page gave %v", got, want)
				}
				// Insert products (cheap, dear, first and last by name) between pages: every
				// product that existed before still appears exactly once.
				inserter := env.signUp("MERCHANT")
				seen := walkPages(t, 3, fetch, func(page int) {
					env.createProduct(merchant, fmt.Sprintf("Item %d", page%5), 100*(page%4), 1)
					env.createProduct(inserter, "Elsewhere", 1, 1)
				})
				counts := map[string]int{}
				for _, id := range seen {
					counts[id]++
					if counts[id] > 1 {
						t.Fatalf("product %s seen twice while inserting", id)
					}
				}
				for _, id := range products {
					if counts[id] != 1 {
						t.Fatalf("product %s seen %d times while inserting", id, counts[id])
					}
				}
			})
		}
		t.Run("orders", func(t *testing.T) {
			_, products := catalog()
			product := products[0]
			var placed []string
			for range 7 {
				placed = append(placed, env.placeOrder(customer, line{product, 1}))
			}
			buyer := env.as(customer.Token)
			fetch := func(after *string) pageView {
				var out struct{ Orders pageView }
				buyer.must(opOrdersPage, map[string]any{"first": 2, "after": after}, &out)
				out.Orders.check(t)
				if out.Orders.TotalCount < len(placed) {
					t.Fatalf("totalCount %d, placed %d", out.Orders.TotalCount, len(placed))
				}
				return out.Orders
			}
			newestFirst := slices.Clone(placed)
			slices.Reverse(newestFirst)
			if got := walkPages(t, 2, fetch, nil); !slices.Equal(got, newestFirst) {
				t.Fatalf("orders by page = %v, want newest first %v", got, newestFirst)
			}
			seen := walkPages(t, 2, fetch, func(int) { env.placeOrder(customer, line{product, 1}) })
			if !slices.Equal(seen, newestFirst) {
				t.Fatalf("orders by page while placing more = %v, want %v", seen, newestFirst)
			}
		})
	})
}

// TestProductFilterAndOrder checks every products filter (search in name or description,
// case-insensitively and literally; merchantId; inclusive minPrice/maxPrice; inStock) with
// the totalCount it gives, and every ordering in both directions.
func TestProductFilterAndOrder(t *testing.T) {
	t.Parallel()
	type product struct {
		name, description string
		price, stock      int
		second            bool // sold by the second merchant
	}
	catalog := []product{ // in creation order
		{"Red Mug", "ceramic", 1500, 10, false},
		{"Blue mug", "Enamel", 900, 0, false},
		{"Teapot", "holds a MUG or two", 3000, 5, false},
		{"Spoon", "", 1500, 0, false},
		{"Plate", "dinner", 2500, 3, true},
		{"100% Cotton", "towel_set", 500, 1, true},
	}
	type filterCase struct {
		name   string
		filter map[string]any
		want   []string // names, newest first (the default order)
	}
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		first, second := env.signUp("MERCHANT"), env.signUp("MERCHANT")
		for _, p := range catalog {
			seller := first
			if p.second {
				seller = second
			}
			r, pp := env.as(seller.Token).mutate("createProduct", opCreateProduct, map[string]any{"in": map[string]any{
				"name": p.name, "description": p.description, "price": p.price, "stock": p.stock}})
			requireOK(t, r, pp)
		}
		anon := env.anon()
		cases := []filterCase{
			{"no filter", nil, []string{"100% Cotton", "Plate", "Spoon", "Teapot", "Blue mug", "Red Mug"}},
			{"search in name and description", map[string]any{"search": "mug"}, []string{"Teapot", "Blue mug", "Red Mug"}},
			{"search in other case", map[string]any{"search": "MuG"}, []string{"Teapot", "Blue mug", "Red Mug"}},
			{"search in description only", map[string]any{"search": "ENAMEL"}, []string{"Blue mug"}},
			{"search for a percent sign", map[string]any{"search": "%"}, []string{"100% Cotton"}},
			{"search for an underscore", map[string]any{"search": "_"}, []string{"100% Cotton"}},
			{"search for a backslash", map[string]any{"search": `\`}, nil},
			{"search with no match", map[string]any{"search": "zebra"}, nil},
			{"empty search", map[string]any{"search": ""}, []string{"100% Cotton", "Plate", "Spoon", "Teapot", "Blue mug", "Red Mug"}},
			{"merchant", map[string]any{"merchantId": second.ID}, []string{"100% Cotton", "Plate"}},
			{"min price inclusive", map[string]any{"minPrice": 1500}, []string{"Plate", "Spoon", "Teapot", "Red Mug"}},
			{"max price inclusive", map[string]any{"maxPrice": 1500}, []string{"100% Cotton", "Spoon", "Blue mug", "Red Mug"}},
			{"price range of one value", map[string]any{"minPrice": 1500, "maxPrice": 1500}, []string{"Spoon", "Red Mug"}},
			{"empty price range", map[string]any{"minPrice": 1501, "maxPrice": 1499}, nil},
			{"in stock", map[string]any{"inStock": true}, []string{"100% Cotton", "Plate", "Teapot", "Red Mug"}},
			{"out of stock", map[string]any{"inStock": false}, []string{"Spoon", "Blue mug"}},
			{"every condition", map[string]any{"search": "mug", "inStock": true, "maxPrice": 2000, "merchantId": first.ID}, []string{"Red Mug"}},
		}
		for _, c := range cases {
			t.Run("filter/"+c.name, func(t *testing.T) {
				p := anon.productsPage(map[string]any{"filter": c.filter})
				if got := p.names(); !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) || p.TotalCount != len(c.want) {
					t.Fatalf("got %v (totalCount %d), want %v", got, p.TotalCount, c.want)
				}
			})
		}
		t.Run("filter/malformed merchant", func(t *testing.T) {
			r := anon.post(opProductsPage, map[string]any{"filter": map[string]any{"merchantId": "nope"}})
			if r.Code() != "BAD_USER_INPUT" {
				t.Fatalf("data %s, errors %+v", r.Data, r.Errors)
			}
		})
		type orderCase struct {
			field, direction string
			want             []string
		}
		for _, c := range []orderCase{
			{"CREATED_AT", "ASC", []string{"Red Mug", "Blue mug", "Teapot", "Spoon", "Plate", "100% Cotton"}},
			{"CREATED_AT", "DESC", []string{"100% Cotton", "Plate", "Spoon", "Teapot", "Blue mug", "Red Mug"}},
			// Equal prices are ordered by creation, in the same direction.
			{"PRICE", "ASC", []string{"100% Cotton", "Blue mug", "Red Mug", "Spoon", "Plate", "Teapot"}},
			{"PRICE", "DESC", []string{"Teapot", "Plate", "Spoon", "Red Mug", "Blue mug", "100% Cotton"}},
			{"NAME", "ASC", []string{"100% Cotton", "Blue mug", "Plate", "Red Mug", "Spoon", "Teapot"}},
			{"NAME", "DESC", []string{"Teapot", "Spoon", "Red Mug", "Plate", "Blue mug", "100% Cotton"}},
		} {
			t.Run("orderBy/"+c.field+" "+c.direction, func(t *testing.T) {
				orderBy := map[string]any{"field": c.field, "direction": c.direction}
				if got := anon.productsPage(map[string]any{"orderBy": orderBy}).names(); !slices.Equal(got, c.want) {
					t.Fatalf("one page: %v, want %v", got, c.want)
				}
				var names []string
				walkPages(t, 2, func(after *string) pageView {
					p := anon.productsPage(map[string]any{"first": 2, "after": after, "orderBy": orderBy})
					names = append(names, p.names()...)
					return p
				}, nil)
				if !slices.Equal(names, c.want) {
					t.Fatalf("by pages of 2: %v, want %v", names, c.want)
				}
				// Filters and ordering combine, and totalCount follows the filter.
				p := anon.productsPage(map[string]any{"first": 1, "orderBy": orderBy, "filter": map[string]any{"inStock": true}})
				if p.TotalCount != 4 || !p.PageInfo.HasNextPage {
					t.Fatalf("in stock, first 1: totalCount %d, hasNextPage %v", p.TotalCount, p.PageInfo.HasNextPage)
				}
			})
		}
	})
}

// TestProductSearchBeyondASCII checks that search ignores letter case in every alphabet, not
// only in ASCII: clients search for "éclair" and expect "ÉCLAIR".
func TestProductSearchBeyondASCII(t *testing.T) {
	t.Parallel()
	type searchCase struct {
		search string
		want   []string
	}
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		merchant := env.signUp("MERCHANT")
		for _, p := range [][2]string{{"ÉCLAIR au café", ""}, {"Tea", "GRÜNER Tee aus Österreich"}, {"Ψωμί", "ΦΡΈΣΚΟ"}} {
			r, pp := env.as(merchant.Token).mutate("createProduct", opCreateProduct, map[string]any{"in": map[string]any{
				"name": p[0], "description": p[1], "price": 100, "stock": 1}})
			requireOK(t, r, pp)
		}
		for _, c := range []searchCase{
			{"éclair", []string{"ÉCLAIR au café"}},
			{"AU CAFÉ", []string{"ÉCLAIR au café"}},
			{"grüner", []string{"Tea"}},
			{"österreich", []string{"Tea"}},
			{"ψωμί", []string{"Ψωμί"}},
			{"φρέσκο", []string{"Ψωμί"}},
		} {
			p := env.anon().productsPage(map[string]any{"filter": map[string]any{"search": c.search}})
			if got := p.names(); !slices.Equal(got, c.want) || p.TotalCount != len(c.want) {
				t.Errorf("search %q: %v (totalCount %d), want %v", c.search, got, p.TotalCount, c.want)
			}
		}
	})
}
