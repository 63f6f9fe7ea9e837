// Command handwritten is the floor BenchmarkServerProcess measures the service against: a
// net/http + pgx program that answers the benchmark's W1 (the storefront) and W2 (a
// customer's order history) with the fewest SQL statements it can (one for W1, three for
// W2), writing the JSON by hand. It answers nothing else: any other request gets 400.
//
//	DATABASE_URL=… JWT_SECRET=… PORT=8081 go run ./api/testdata/bench/handwritten
//
// It serves /readyz, and /metrics with the two Go counters the benchmark reads.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shop/api/auth"
	"github.com/shop/api/store"
)

// The documents it answers, as the benchmark sends them (api/bench_process_test.go).
const (
	w1 = `{ products(first: 50) { nodes { id name price { amount currency } stock merchant { id name } } } }`
	w2 = `{ me { orders(first: 20) { nodes { id status total { amount } items { quantity unitPrice { amount } product { name merchant { name } } } history { status at } } } } }`
)

const currency = "USD"

func main() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	s := &server{db: pool, tokens: auth.NewTokens([]byte(os.Getenv("JWT_SECRET")), 24*time.Hour)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /graphql", s.graphql)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := pool.Ping(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(w, "go_memstats_mallocs_total %d\ngo_memstats_alloc_bytes_total %d\n", m.Mallocs, m.TotalAlloc)
	})
	log.Fatal(http.ListenAndServe(":"+os.Getenv("PORT"), mux))
}

type server struct {
	db     *pgxpool.Pool
	tokens *auth.Tokens
}

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

func (s *server) graphql(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Query string `json:"query"`
	}
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	pb := buffers.Get().(*[]byte)
	defer buffers.Put(pb)
	buf := (*pb)[:0]
	switch req.Query {
	case w1:
		buf, err = s.storefront(r.Context(), buf)
	case w2:
		var v store.Viewer
		v, err = s.tokens.Verify(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if err != nil || v.Anonymous() {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		buf, err = s.history(r.Context(), buf, v.UserID)
	default:
		http.Error(w, "only W1 and W2", http.StatusBadRequest)
		return
	}
	if err != nil {
		log.Print(err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf)
	*pb = buf
}

// storefront answers W1: the 50 newest products with their merchants, one statement.
func (s *server) storefront(ctx context.Context, b []byte) ([]byte, error) {
	rows, err := s.db.Query(ctx, `SELECT p.id, p.name, p.price, p.stock, u.id, u.name
		FROM products p JOIN users u ON u.id = p.merchant_id ORDER BY p.id DESC LIMIT 50`)
	if err != nil {
		return b, err
	}
	defer rows.Close()
	b = append(b, `{"data":{"products":{"nodes":[`...)
	first := true
	var id, merchantID int64
	var price, stock int
	var name, merchant string
	for rows.Next() {
		if err := rows.Scan(&id, &name, &price, &stock, &merchantID, &merchant); err != nil {
			return b, err
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"id":"`...)
		b = store.AppendGlobalID(b, store.KindProduct, id)
		b = append(b, `","name":`...)
		b = appendString(b, name)
		b = append(b, `,"price":{"amount":`...)
		b = strconv.AppendInt(b, int64(price), 10)
		b = append(b, `,"currency":"`+currency+`"},"stock":`...)
		b = strconv.AppendInt(b, int64(stock), 10)
		b = append(b, `,"merchant":{"id":"`...)
		b = store.AppendGlobalID(b, store.KindUser, merchantID)
		b = append(b, `","name":`...)
		b = appendString(b, merchant)
		b = append(b, "}}"...)
	}
	if err := rows.Err(); err != nil {
		return b, err
	}
	return append(b, "]}}}"...), nil
}

type item struct {
	quantity, unitPrice int
	product, merchant   string
}

type event struct {
	status string
	at     time.Time
}

type order struct {
	id      int64
	status  string
	total   int
	items   []item
	history []event
}

// history answers W2: a customer's 20 newest orders with their items, products, merchants
// and status events, three statements.
func (s *server) history(ctx context.Context, b []byte, customer int64) ([]byte, error) {
	rows, err := s.db.Query(ctx, `SELECT id, status, total FROM orders WHERE customer_id = $1 ORDER BY id DESC LIMIT 20`, customer)
	if err != nil {
		return b, err
	}
	var orders []*order
	byID := map[int64]*order{}
	ids := make([]int64, 0, 20)
	for rows.Next() {
		o := &order{}
		if err := rows.Scan(&o.id, &o.status, &o.total); err != nil {
			rows.Close()
			return b, err
		}
		orders = append(orders, o)
		byID[o.id] = o
		ids = append(ids, o.id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return b, err
	}
	rows, err = s.db.Query(ctx, `SELECT i.order_id, i.quantity, i.unit_price, p.name, u.name
		FROM order_items i JOIN products p ON p.id = i.product_id JOIN users u ON u.id = p.merchant_id
		WHERE i.order_id = ANY($1) ORDER BY i.order_id, i.position`, ids)
	if err != nil {
		return b, err
	}
	for rows.Next() {
		var oid int64
		var it item
		if err := rows.Scan(&oid, &it.quantity, &it.unitPrice, &it.product, &it.merchant); err != nil {
			rows.Close()
			return b, err
		}
		byID[oid].items = append(byID[oid].items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return b, err
	}
	rows, err = s.db.Query(ctx, `SELECT order_id, status, at FROM order_status_events WHERE order_id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return b, err
	}
	for rows.Next() {
		var oid int64
		var e event
		if err := rows.Scan(&oid, &e.status, &e.at); err != nil {
			rows.Close()
			return b, err
		}
		byID[oid].history = append(byID[oid].history, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return b, err
	}

	b = append(b, `{"data":{"me":{"orders":{"nodes":[`...)
	for i, o := range orders {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = store.AppendGlobalID(b, store.KindOrder, o.id)
		b = append(b, `","status":"`...)
		b = append(b, o.status...)
		b = append(b, `","total":{"amount":`...)
		b = strconv.AppendInt(b, int64(o.total), 10)
		b = append(b, `},"items":[`...)
		for j, it := range o.items {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"quantity":`...)
			b = strconv.AppendInt(b, int64(it.quantity), 10)
			b = append(b, `,"unitPrice":{"amount":`...)
			b = strconv.AppendInt(b, int64(it.unitPrice), 10)
			b = append(b, `},"product":{"name":`...)
			b = appendString(b, it.product)
			b = append(b, `,"merchant":{"name":`...)
			b = appendString(b, it.merchant)
			b = append(b, "}}}"...)
		}
		b = append(b, `],"history":[`...)
		for j, e := range o.history {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"status":"`...)
			b = append(b, e.status...)
			b = append(b, `","at":"`...)
			b = e.at.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, `"}`...)
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}}}}"...), nil
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, fmt.Sprintf(`\u%04x`, c)...)
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			b = utf8.AppendRune(b, r)
			i += n
			continue
		}
		i++
	}
	return append(b, '"')
}
