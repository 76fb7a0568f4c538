package checker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dynconn/dynconn/internal/model"
)

// Metrics are the Prometheus instruments of connection tests. Labels are
// bounded sets: diagnosis codes and triggers, never ids.
type Metrics struct {
	tests    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the instruments with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		tests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynconn_connection_tests_total", Help: "Connection tests by outcome (ok or the diagnosis code) and trigger (manual or scheduled).",
		}, []string{"outcome", "trigger"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dynconn_connection_test_duration_seconds", Help: "How long connection tests took, Microsoft's part included, by trigger.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
		}, []string{"trigger"}),
	}
	reg.MustRegister(m.tests, m.duration)
	return m
}

// observe counts one test. A nil *Metrics records nothing.
func (m *Metrics) observe(res model.TestResult) {
	if m == nil {
		return
	}
	outcome := "ok"
	if res.Error != nil {
		outcome = res.Error.Code
	}
	m.tests.WithLabelValues(outcome, string(res.Trigger)).Inc()
	m.duration.WithLabelValues(string(res.Trigger)).Observe(float64(res.DurationMS) / 1000)
}
