package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
)

// raceResult is what one of many concurrent requests got back.
type raceResult struct {
	orderID   string // or the user's ID, for sign-ups, or the product's
	userError string // the first userError's code
	err       error  // transport failures, top-level errors, undecodable bodies
}

// raceMutation sends a mutation from a goroutine that is not the test's: it reports every
// failure in the result instead of failing the test.
func raceMutation(baseURL, token, field, query string, vars map[string]any) raceResult {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, baseURL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return raceResult{err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Data   map[string]*mutationPayload
		Errors []gqlError
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return raceResult{err: fmt.Errorf("status %d, body %.200s", resp.StatusCode, raw)}
	}
	if len(out.Errors) > 0 || out.Data[field] == nil {
		return raceResult{err: fmt.Errorf("status %d, errors %+v", resp.StatusCode, out.Errors)}
	}
	p := out.Data[field]
	if len(p.UserErrors) > 0 {
		return raceResult{userError: p.UserErrors[0].Code}
	}
	switch {
	case p.Order != nil:
		return raceResult{orderID: p.Order.ID}
	case p.User != nil:
		return raceResult{orderID: p.User.ID}
	case p.Product != nil:
		return raceResult{orderID: p.Product.ID}
	}
	return raceResult{err: fmt.Errorf("no object and no userErrors: %s", raw)}
}

// raceAll runs n calls of do at once (as far as the scheduler allows) and returns their results.
func raceAll(n int, do func(i int) raceResult) []raceResult {
	results := make([]raceResult, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = do(i)
		}()
	}
	close(start)
	wg.Wait()
	return results
}

// sharedProcesses returns the service processes of a concurrency test on one backend: one for the
// embedded mode, two sharing the database and Redis for PostgreSQL, since several processes
// given the same DATABASE_URL and REDIS_URL must behave as one service.
func sharedProcesses(t *testing.T, b backend) []*testEnv {
	cfg := b.config(t)
	envs := []*testEnv{newTestEnv(t, cfg)}
	if cfg.DatabaseURL != "" {
		envs = append(envs, newTestEnv(t, cfg))
	}
	return envs
}

// forEachBackendProcesses runs test once per backend with that backend's processes.
func forEachBackendProcesses(t *testing.T, test func(t *testing.T, envs []*testEnv)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, sharedProcesses(t, b)) })
	}
}

// TestConcurrentOrdersNeverOversell races 100 single-unit orders against a stock of 25:
// exactly 25 succeed, the other 75 are INSUFFICIENT_STOCK, and the stock ends at 0, never below.
func TestConcurrentOrdersNeverOversell(t *testing.T) {
	t.Parallel()
	forEachBackendProcesses(t, func(t *testing.T, envs []*testEnv) {
		env := envs[0]
		merchant := env.signUp("MERCHANT")
		product := env.createProduct(merchant, "Scarce", 500, 25)
		buyers := []account{env.signUp("CUSTOMER"), env.signUp("CUSTOMER"), env.signUp("CUSTOMER"), env.signUp("CUSTOMER")}
		results := raceAll(100, func(i int) raceResult {
			return raceMutation(envs[i%len(envs)].srv.URL, buyers[i%len(buyers)].Token, "placeOrder", opPlaceOrder,
				map[string]any{"in": map[string]any{"items": orderItems(product, 1)}})
		})
		placed, short := map[string]bool{}, 0
		for i, r := range results {
			switch {
			case r.err != nil:
				t.Errorf("request %d: %v", i, r.err)
			case r.userError == "INSUFFICIENT_STOCK":
				short++
			case r.userError != "":
				t.Errorf("request %d: userError %s", i, r.userError)
			default:
				placed[r.orderID] = true
			}
		}
		if len(placed) != 25 || short != 75 {
			t.Fatalf("%d orders placed, %d INSUFFICIENT_STOCK; want 25 and 75", len(placed), short)
		}
		if s := env.stock(product); s != 0 {
			t.Fatalf("stock = %d, want 0", s)
		}
		var out struct{ Orders struct{ TotalCount int } }
		env.as(merchant.Token).must(`{ orders { totalCount } }`, nil, &out)
		if out.Orders.TotalCount != 25 {
			t.Fatalf("the merchant sees %d orders, want 25", out.Orders.TotalCount)
		}
	})
}

// TestConcurrentIdempotentRepeats races 20 requests with one idempotencyKey: all get the
// same order and the stock is taken once. When the racing requests carry different items,
// one set wins and the other gets IDEMPOTENCY_CONFLICT.
func TestConcurrentIdempotentRepeats(t *testing.T) {
	t.Parallel()
	forEachBackendProcesses(t, func(t *testing.T, envs []*testEnv) {
		env := envs[0]
		merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		a, b := env.createProduct(merchant, "A", 100, 10), env.createProduct(merchant, "B", 100, 10)
		place := func(i int, key string, product string) raceResult {
			return raceMutation(envs[i%len(envs)].srv.URL, customer.Token, "placeOrder", opPlaceOrder,
				map[string]any{"in": map[string]any{"items": orderItems(product, 1), "idempotencyKey": key}})
		}
		t.Run("same items", func(t *testing.T) {
			results := raceAll(20, func(i int) raceResult { return place(i, "same", a) })
			ids := map[string]int{}
			for i, r := range results {
				if r.err != nil || r.userError != "" {
					t.Fatalf("request %d: %+v", i, r)
				}
				ids[r.orderID]++
			}
			if len(ids) != 1 {
				t.Fatalf("20 repeats placed %d orders: %v", len(ids), ids)
			}
			if s := env.stock(a); s != 9 {
				t.Fatalf("stock = %d, want 9 (taken once)", s)
			}
			if r := place(0, "same", b); r.userError != "IDEMPOTENCY_CONFLICT" {
				t.Fatalf("the key with other items: %+v, want IDEMPOTENCY_CONFLICT", r)
			}
		})
		t.Run("different items", func(t *testing.T) {
			results := raceAll(20, func(i int) raceResult {
				if i%2 == 0 {
					return place(i, "mixed", a)
				}
				return place(i, "mixed", b)
			})
			ids, conflicts := map[string]int{}, map[int]int{}
			for i, r := range results {
				switch {
				case r.err != nil:
					t.Fatalf("request %d: %v", i, r.err)
				case r.userError == "IDEMPOTENCY_CONFLICT":
					conflicts[i%2]++
				case r.userError != "":
					t.Fatalf("request %d: %s", i, r.userError)
				default:
					ids[r.orderID]++
				}
			}
			if len(ids) != 1 || len(conflicts) != 1 || conflicts[0]+conflicts[1] != 10 {
				t.Fatalf("orders %v, conflicts by item set %v; want one order for one set and 10 conflicts for the other", ids, conflicts)
			}
			if sa, sb := env.stock(a), env.stock(b); sa+sb != 9+10-1 {
				t.Fatalf("stock %d + %d, want one unit taken", sa, sb)
			}
		})
		var out struct{ Orders struct{ TotalCount int } }
		env.as(customer.Token).must(`{ orders { totalCount } }`, nil, &out)
		if out.Orders.TotalCount != 2 {
			t.Fatalf("customer has %d orders, want 2", out.Orders.TotalCount)
		}
	})
}

// TestConcurrentCancels races 10 cancellations of one order: exactly one succeeds, the rest
// are INVALID_TRANSITION, and the stock comes back once.
func TestConcurrentCancels(t *testing.T) {
	t.Parallel()
	forEachBackendProcesses(t, func(t *testing.T, envs []*testEnv) {
		env := envs[0]
		merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
		product := env.createProduct(merchant, "Returned", 100, 10)
		order := env.placeOrder(customer, line{product, 4})
		results := raceAll(10, func(i int) raceResult {
			return raceMutation(envs[i%len(envs)].srv.URL, customer.Token, "cancelOrder", opCancelOrder, map[string]any{"id": order})
		})
		ok, refused := 0, 0
		for i, r := range results {
			switch {
			case r.err != nil:
				t.Fatalf("request %d: %v", i, r.err)
			case r.userError == "INVALID_TRANSITION":
				refused++
			case r.userError != "":
				t.Fatalf("request %d: %s", i, r.userError)
			default:
				ok++
			}
		}
		if ok != 1 || refused != 9 {
			t.Fatalf("%d cancels succeeded, %d refused; want 1 and 9", ok, refused)
		}
		if s := env.stock(product); s != 10 {
			t.Fatalf("stock = %d, want 10 (restocked once)", s)
		}
	})
}

// TestConcurrentSignUps races 10 sign-ups of one address in different letter cases: exactly
// one account is created and the others are EMAIL_TAKEN.
func TestConcurrentSignUps(t *testing.T) {
	t.Parallel()
	forEachBackendProcesses(t, func(t *testing.T, envs []*testEnv) {
		cases := []string{"racer@example.com", "Racer@example.com", "RACER@example.com", "racer@EXAMPLE.com", "rAcEr@example.com"}
		results := raceAll(10, func(i int) raceResult {
			return raceMutation(envs[i%len(envs)].srv.URL, "", "signUp", opSignUp, map[string]any{"in": map[string]any{
				"email": cases[i%len(cases)], "name": "Racer", "password": fmt.Sprintf("password-%d", i)}})
		})
		created, taken := 0, 0
		for i, r := range results {
			switch {
			case r.err != nil:
				t.Fatalf("request %d: %v", i, r.err)
			case r.userError == "EMAIL_TAKEN":
				taken++
			case r.userError != "":
				t.Fatalf("request %d: %s", i, r.userError)
			default:
				created++
			}
		}
		if created != 1 || taken != 9 {
			t.Fatalf("%d accounts created, %d EMAIL_TAKEN; want 1 and 9", created, taken)
		}
	})
}

// TestProcessesReadTheirWrites checks that processes sharing PostgreSQL and Redis act as one
// service: a change made through one process is what the next read through another sees,
// even when that process has the old value in the shared cache.
func TestProcessesReadTheirWrites(t *testing.T) {
	t.Parallel()
	forEachBackendProcesses(t, func(t *testing.T, envs []*testEnv) {
		writer, reader := envs[0], envs[len(envs)-1]
		merchant, customer := writer.signUp("MERCHANT"), writer.signUp("CUSTOMER")
		product := writer.createProduct(merchant, "Shared", 1000, 10)
		for step := range 5 {
			reader.product(product) // warm whatever cache the reader uses
			r, p := writer.as(merchant.Token).mutate("updateProduct", opUpdateProduct,
				map[string]any{"in": map[string]any{"id": product, "price": 2000 + step}})
			requireOK(t, r, p)
			if got := reader.product(product).Price.Amount; got != 2000+step {
				t.Fatalf("step %d: price read through the other process = %d, want %d", step, got, 2000+step)
			}
			order := writer.placeOrder(customer, line{product, 1})
			if got := reader.stock(product); got != 10-step-1 {
				t.Fatalf("step %d: stock read through the other process = %d, want %d", step, got, 10-step-1)
			}
			var out struct{ Order *struct{ Status string } }
			reader.as(customer.Token).must(`query($id: ID!) { order(id: $id) { status } }`, map[string]any{"id": order}, &out)
			if out.Order == nil || out.Order.Status != "PENDING" {
				t.Fatalf("step %d: the other process does not see order %s: %+v", step, order, out.Order)
			}
		}
	})
}
