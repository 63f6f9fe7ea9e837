package checkout

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/shop/api/store"
	"github.com/shop/api/store/storetest"
)

// TestExpiryJobsWaitForTheirTime: an order's expiry is two jobs, written by our own INSERT
// as River's available jobs at reservedUntil and expiryBackup later, on both backends. River
// reads them back as it wrote them, no process takes them before their time (the fetch
// compares scheduled_at, on SQLite as text), and a live process takes each within a poll of
// its time, with no leader involved.
func TestExpiryJobsWaitForTheirTime(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name string
		cfg  func(*testing.T) store.Config
	}{
		{"sqlite", func(t *testing.T) store.Config { return store.Config{SQLitePath: storetest.SQLitePath(t)} }},
		{"postgres", func(t *testing.T) store.Config { return store.Config{DatabaseURL: storetest.PostgresURL(t)} }},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := b.cfg(t)
			st, err := store.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			c, err := New(ctx, st, Config{DatabaseURL: cfg.DatabaseURL, Provider: ProviderNone})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Stop(ctx) })

			db, err := st.DB()
			if err != nil {
				t.Fatal(err)
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Now().Add(2 * time.Second)
			// No such order: the jobs find nothing to expire and complete.
			if err := newQueue(c.client, cfg.DatabaseURL != "", 25).ExpireOrder(ctx, tx, 4242, at); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}

			list := func() []*rivertype.JobRow {
				t.Helper()
				res, err := c.client.JobList(ctx, river.NewJobListParams().Kinds("expire_order").OrderBy(river.JobListOrderByID, river.SortOrderAsc))
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Jobs) != 2 {
					t.Fatalf("%d expiry jobs, want 2", len(res.Jobs))
				}
				return res.Jobs
			}
			queue := river.QueueDefault
			if cfg.DatabaseURL != "" {
				queue = expiryQueue
			}
			for i, j := range list() {
				want := at.Add(time.Duration(i) * expiryBackup)
				var args expireOrderArgs
				if err := json.Unmarshal(j.EncodedArgs, &args); err != nil || args.OrderID != 4242 {
					t.Fatalf("job %d's args %s, want order 4242", i, j.EncodedArgs)
				}
				if j.State != rivertype.JobStateAvailable || j.Queue != queue || j.Priority != 1 || j.MaxAttempts != 25 ||
					j.ScheduledAt.Sub(want).Abs() > time.Millisecond {
					t.Fatalf("job %d = %+v want available in queue %s at %s", i, j, queue, want)
				}
			}
			time.Sleep(time.Until(at) - 300*time.Millisecond)
			for i, j := range list() {
				if j.State != rivertype.JobStateAvailable {
					t.Fatalf("job %d is %s before its time", i, j.State)
				}
			}
			deadline := at.Add(expiryBackup + 10*time.Second)
			for {
				jobs := list()
				if jobs[0].State == rivertype.JobStateCompleted && jobs[1].State == rivertype.JobStateCompleted {
					for i, j := range jobs {
						if j.AttemptedAt == nil || j.AttemptedAt.Before(j.ScheduledAt) {
							t.Fatalf("job %d, due %s, was taken at %v: early", i, j.ScheduledAt, j.AttemptedAt)
						}
						// A poll is 500 ms; the rest is slack for a loaded machine.
						if late := j.AttemptedAt.Sub(j.ScheduledAt); late > 1500*time.Millisecond {
							t.Errorf("job %d was taken %s after its time, want within a poll", i, late)
						}
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("expiry jobs not completed 10 s after their time: %s, %s", jobs[0].State, jobs[1].State)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
