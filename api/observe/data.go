package observe

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// Data registers in reg the metrics of the data path (SQL statements, cache outcomes,
// loader batch sizes, statements per request) and returns cfg with hooks that feed them,
// after any hooks cfg already had.
func Data(reg prometheus.Registerer, stats func() store.Stats, cfg loaders.Config) loaders.Config {
	batch := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shop_loader_batch_keys",
		Help:    "Keys in each batch a dataloader sent to the store, by loader.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
	}, []string{"loader"})
	perRequest := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shop_request_sql_statements",
		Help:    "SQL statements issued by one GraphQL HTTP request.",
		Buckets: []float64{0, 1, 2, 3, 5, 8, 13, 21, 50, 100, 200},
	})
	reg.MustRegister(batch, perRequest,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shop_sql_statements_total", Help: "SQL statements sent to the database.",
		}, func() float64 { return float64(stats().Statements) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shop_cache_hits_total", Help: "Users and products served from the Redis cache.",
		}, func() float64 { return float64(stats().CacheHits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shop_cache_misses_total", Help: "Users and products the cache did not have, read from the database.",
		}, func() float64 { return float64(stats().CacheMisses) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shop_cache_errors_total", Help: "Redis cache calls that failed or timed out (the read went to the database).",
		}, func() float64 { return float64(stats().CacheErrors) }),
	)
	replicas(reg, stats)

	onBatch, observe := cfg.OnBatch, cfg.Observe
	cfg.OnBatch = func(loader string, keys int) {
		batch.WithLabelValues(loader).Observe(float64(keys))
		if onBatch != nil {
			onBatch(loader, keys)
		}
	}
	cfg.Observe = func(r *http.Request, rep loaders.Report) {
		perRequest.Observe(float64(rep.Statements))
		if observe != nil {
			observe(r, rep)
		}
	}
	return cfg
}

// replicas registers, when the store has read replicas, each one's health and lag and the
// reads routed to each target (a replica's host:port, or "primary" for the reads a replica
// could have served that went to the primary).
func replicas(reg prometheus.Registerer, stats func() store.Stats) {
	list := stats().Replicas
	if len(list) == 0 {
		return
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "shop_db_reads_total", Help: "Reads of loaders and lists, by the server that served them.",
		ConstLabels: prometheus.Labels{"target": "primary"},
	}, func() float64 { return float64(stats().PrimaryReads) }))
	for i, r := range list {
		one := func() store.ReplicaStats { return stats().Replicas[i] }
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "shop_db_reads_total", Help: "Reads of loaders and lists, by the server that served them.",
				ConstLabels: prometheus.Labels{"target": r.Name},
			}, func() float64 { return float64(one().Reads) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "shop_db_replica_healthy", Help: "1 when the read replica serves reads, 0 when it is skipped (down, lagging, not a standby).",
				ConstLabels: prometheus.Labels{"replica": r.Name},
			}, func() float64 {
				if one().Healthy {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "shop_db_replica_lag_seconds", Help: "How far the read replica was behind the primary at the last probe (an upper bound).",
				ConstLabels: prometheus.Labels{"replica": r.Name},
			}, func() float64 { return one().Lag.Seconds() }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "shop_db_replica_failures_total", Help: "Reads that failed on the replica and ran again on the primary.",
				ConstLabels: prometheus.Labels{"replica": r.Name},
			}, func() float64 { return float64(one().Failures) }),
		)
	}
}
