package checkout

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/shop/api/store"
)

// Metrics: payments by status and jobs by kind and state are counted in the database at
// each scrape, so every process reports the service's totals (aggregate with max, not
// sum); job outcomes are this process's own counters.

var (
	paymentsDesc = prometheus.NewDesc("shop_payments", "Payments by status (the whole service's).", []string{"status"}, nil)
	jobsDesc     = prometheus.NewDesc("shop_jobs", "Checkout jobs by kind and state: available and scheduled are queued, running are being worked, retryable failed and wait for their retry, discarded failed for good (the whole service's).",
		[]string{"kind", "state"}, nil)
)

// Collectors returns checkout's metrics for a Prometheus registry.
func (c *Checkout) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.counts, c.outcomes}
}

// counts is the scrape-time collector of payments and jobs.
type counts struct {
	store *store.Store
}

func (k counts) Describe(ch chan<- *prometheus.Desc) { ch <- paymentsDesc; ch <- jobsDesc }

func (k counts) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if byStatus, err := k.store.CountPaymentsByStatus(ctx); err == nil {
		for _, s := range []store.PaymentStatus{store.PaymentPending, store.PaymentSucceeded, store.PaymentFailed, store.PaymentCanceled, store.PaymentRefunded} {
			ch <- prometheus.MustNewConstMetric(paymentsDesc, prometheus.GaugeValue, float64(byStatus[s]), string(s))
		}
	}
	db, err := k.store.DB()
	if err != nil {
		return
	}
	rows, err := db.QueryContext(ctx, "SELECT kind, state, COUNT(*) FROM river_job GROUP BY kind, state")
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var kind, state string
		var n int64
		if rows.Scan(&kind, &state, &n) == nil {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), kind, state)
		}
	}
}

// newOutcomes counts the outcomes of the jobs this process works.
func newOutcomes() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shop_job_outcomes_total",
		Help: "Checkout jobs this process worked, by kind and outcome: completed, retried (failed, will run again), discarded (failed for good), cancelled, snoozed.",
	}, []string{"kind", "outcome"})
}

// countOutcomes counts the client's job events until events closes.
func countOutcomes(events <-chan *river.Event, outcomes *prometheus.CounterVec) {
	for e := range events {
		if e == nil || e.Job == nil {
			continue
		}
		outcome := "completed"
		switch e.Kind {
		case river.EventKindJobFailed:
			outcome = "retried"
			if e.Job.State == rivertype.JobStateDiscarded {
				outcome = "discarded"
			}
		case river.EventKindJobCancelled:
			outcome = "cancelled"
		case river.EventKindJobSnoozed:
			outcome = "snoozed"
		}
		outcomes.WithLabelValues(e.Job.Kind, outcome).Inc()
	}
}
