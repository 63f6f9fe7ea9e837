package api

import (
	"net/http"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// registry returns the service's Prometheus registry, created on first use.
func (s *Service) registry() *prometheus.Registry {
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return s.reg
}

// metricsHandler serves the service's metrics in the Prometheus format.
func (s *Service) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry(), promhttp.HandlerOpts{})
}

// observe instruments GraphQL operations.
func (s *Service) observe(srv *handler.Server) {}
