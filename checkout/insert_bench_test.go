package checkout

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// BenchmarkInsertExpireJob prices what placeOrder's transaction pays for its expiry job.
func BenchmarkInsertExpireJob(b *testing.B) {
	ctx := context.Background()
	url := storetest.PostgresURL(b)
	st, err := store.Open(ctx, store.Config{DatabaseURL: url})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	c, err := New(ctx, st, Config{DatabaseURL: url, Provider: ProviderNone})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	db, _ := st.DB()
	b.Run("ours", func(b *testing.B) { // the two rows placeOrder writes
		q := newQueue(c.client, true, 25)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := q.ExpireOrder(ctx, tx, int64(i+1), time.Now().Add(time.Hour)); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, unique := range []bool{true, false} {
		b.Run(map[bool]string{true: "unique", false: "plain"}[unique], func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				opts := &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}
				if unique {
					opts.UniqueOpts = river.UniqueOpts{ByArgs: true}
				}
				if _, err := c.client.InsertTx(ctx, tx, expireOrderArgs{OrderID: int64(i + 1)}, opts); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
