package api

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's Prometheus instruments (package checker has those of
// connection tests). Labels are bounded sets (route patterns, status codes),
// never ids or values that come from a request, so nothing secret or
// unbounded can reach them.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the API's instruments with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynconn_http_requests_total", Help: "HTTP requests by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dynconn_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observeRequest counts one HTTP request. A nil *Metrics records nothing.
func (m *Metrics) observeRequest(method, route, status string, seconds float64) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched" // 404s for unknown paths: keep the label set bounded
	}
	m.requests.WithLabelValues(method, route, status).Inc()
	m.duration.WithLabelValues(route).Observe(seconds)
}
