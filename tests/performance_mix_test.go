package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shop/api/auth"
	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// stockTaker is the writer of BenchmarkServerProcess's MIX workload: while wrk sends W1, it
// orders one unit of one of W1's products every second, then reads W1 and checks every
// product in it against the database. Nothing else writes those products meanwhile, so
// the read must show what the database holds.
type stockTaker struct {
	tb       testing.TB
	db       *pgxpool.Pool
	customer string // Authorization of the customer who orders
	products []int64

	mu                  sync.Mutex
	checked, mismatches int
}

func newStockTaker(tb testing.TB, shop storetest.Seeded, dbURL string) *stockTaker {
	tb.Helper()
	db, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	token, err := auth.NewTokens([]byte(benchSecret), 24*time.Hour).Issue(store.User{ID: shop.CustomerIDs[500], Role: store.RoleCustomer})
	if err != nil {
		tb.Fatal(err)
	}
	ids := shop.ProductIDs
	return &stockTaker{tb: tb, db: db, customer: "Bearer " + token, products: ids[len(ids)-50:]}
}

// start begins ordering through srv; stop ends it and returns the failures (orders that
// failed, reads that did not match the database) of this run.
func (m *stockTaker) start(srv *benchServer) (stop func() int) {
	done := make(chan struct{})
	failures := make(chan int, 1)
	go func() {
		n := 0
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				failures <- n
				return
			case <-tick.C:
			}
			if err := m.order(srv, m.products[i%len(m.products)]); err != nil {
				m.tb.Logf("MIX order: %v", err)
				n++
				continue
			}
			if err := m.check(srv); err != nil {
				m.tb.Logf("MIX read after an order: %v", err)
				n++
			}
		}
	}()
	return func() int {
		close(done)
		return <-failures
	}
}

func (m *stockTaker) post(srv *benchServer, authorization, query string, vars map[string]any) ([]byte, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, srv.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := srv.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err == nil && (resp.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) || bytes.Contains(raw, []byte(`"code"`))) {
		err = fmt.Errorf("status %d: %.300s", resp.StatusCode, raw)
	}
	return raw, err
}

func (m *stockTaker) order(srv *benchServer, product int64) error {
	_, err := m.post(srv, m.customer, `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { order { id } userErrors { code message } } }`,
		map[string]any{"in": map[string]any{"items": []map[string]any{{"productId": gid("Product", product), "quantity": 1}}}})
	return err
}

// w1Product is a product as W1 shows it.
type w1Product struct {
	ID       string
	Name     string
	Price    struct{ Amount int }
	Stock    int
	Merchant struct{ ID, Name string }
}

// check reads W1 anonymously and compares it with the database.
func (m *stockTaker) check(srv *benchServer) error {
	raw, err := m.post(srv, "", benchW1, nil)
	if err != nil {
		return err
	}
	var got struct {
		Data struct{ Products struct{ Nodes []w1Product } }
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		return err
	}
	rows, err := m.db.Query(context.Background(), `SELECT p.id, p.name, p.price, p.stock, u.id, u.name
		FROM products p JOIN users u ON u.id = p.merchant_id ORDER BY p.id DESC LIMIT 50`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var want []w1Product
	for rows.Next() {
		var p w1Product
		var id, merchant int64
		if err := rows.Scan(&id, &p.Name, &p.Price.Amount, &p.Stock, &merchant, &p.Merchant.Name); err != nil {
			return err
		}
		p.ID, p.Merchant.ID = gid("Product", id), gid("User", merchant)
		want = append(want, p)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checked++
	if fmt.Sprint(got.Data.Products.Nodes) != fmt.Sprint(want) {
		m.mismatches++
		return fmt.Errorf("W1 differs from the database:\n got %v\nwant %v", got.Data.Products.Nodes, want)
	}
	return nil
}
