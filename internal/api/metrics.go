package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's Prometheus instruments (package checker has those of
// connection tests). Labels are bounded sets
// (known methods, route patterns, status codes, diagnosis codes), never ids
// or values that come from a request as sent, so nothing secret or
// unbounded can reach them.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
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
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynconn_connection_tokens_total",
			Help: "Access tokens asked for by workers, by source (cache or microsoft) and outcome (issued, or the diagnosis code).",
		}, []string{"source", "outcome"}),
	}
	reg.MustRegister(m.requests, m.duration, m.tokens)
	return m
}

// observeToken counts one answer of the token endpoint. A nil *Metrics
// records nothing.
func (m *Metrics) observeToken(source, outcome string) {
	if m == nil {
		return
	}
	m.tokens.WithLabelValues(source, outcome).Inc()
}

// methods are the request methods counted under their own name; any other
// is counted as OTHER. Clients choose the method, and the router answers an
// unknown one (405) before authentication, so a label taken as sent would
// let anyone add series, and memory, without end.
var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodOptions: true, http.MethodConnect: true, http.MethodTrace: true,
}

// observeRequest counts one HTTP request. route is the matched route
// pattern, "" when none matched. A nil *Metrics records nothing.
func (m *Metrics) observeRequest(method, route, status string, seconds float64) {
	if m == nil {
		return
	}
	if !methods[method] {
		method = "OTHER"
	}
	if route == "" {
		route = "unmatched" // 404s for unknown paths: keep the label set bounded
	}
	m.requests.WithLabelValues(method, route, status).Inc()
	m.duration.WithLabelValues(route).Observe(seconds)
}
