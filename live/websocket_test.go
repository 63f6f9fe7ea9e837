package live

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"

	"github.com/shop/api/store"
)

// A subscriber on a socket that cannot keep up gets its socket closed with 1013, instead of
// events piling up in memory.
func TestSlowSocketSubscriberIsClosedWithTryAgainLater(t *testing.T) {
	all := lifecycle()
	b := newTestBroker(nil, 1)
	ss := NewSockets(SocketConfig{})
	subscribed := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(context.WithValue(r.Context(), slotKey{}, &slot{}))
		conn, err := ss.Accept(w, r, transport.WebsocketAcceptOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			t.Error(err)
			return
		}
		// Nothing drains the subscription: it is as slow as a subscriber gets.
		if _, err := b.ViewerEvents(r.Context(), store.Viewer{UserID: 7, Role: store.RoleCustomer}); err != nil {
			t.Error(err)
		}
		close(subscribed)
		_, _, _ = conn.NextReader()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1), &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	<-subscribed
	b.dispatch(ctx, all[0])
	b.dispatch(ctx, all[2]) // the buffer of 1 is full
	_, _, err = c.Read(ctx)
	if code := websocket.CloseStatus(err); code != CloseTooSlow {
		t.Fatalf("close %d (%v), want %d", code, err, CloseTooSlow)
	}
	if b.Overflows.Load() != 1 || b.Subscribers() != 0 {
		t.Fatalf("overflows %d, subscribers %d", b.Overflows.Load(), b.Subscribers())
	}
}
