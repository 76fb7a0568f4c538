package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
)

// Metrics are the job queue's Prometheus instruments. Labels are bounded
// sets: job kinds, outcomes.
type Metrics struct {
	rechecks  *prometheus.CounterVec
	run       *prometheus.HistogramVec
	queueWait *prometheus.HistogramVec
}

// NewMetrics registers the instruments with reg, and a gauge of the jobs
// waiting per kind that reads pool's river_job table when scraped.
func NewMetrics(reg prometheus.Registerer, pool *pgxpool.Pool) *Metrics {
	m := &Metrics{
		rechecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynconn_rechecks_total",
			Help: "Scheduled re-checks by outcome: connected, failing, transient (a failure without a setup step), skipped (tested since it was queued, or being tested), deleted, error.",
		}, []string{"outcome"}),
		run: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dynconn_job_run_seconds", Help: "How long jobs ran, by kind and result (completed, failed, snoozed, cancelled).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}, []string{"kind", "result"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dynconn_job_queue_wait_seconds", Help: "How long jobs waited to start once they were due, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 14),
		}, []string{"kind"}),
	}
	reg.MustRegister(m.rechecks, m.run, m.queueWait, queueDepth{pool: pool})
	return m
}

// recheck counts one re-check. A nil *Metrics counts nothing.
func (m *Metrics) recheck(outcome string) { m.recheckN(outcome, 1) }

// recheckN counts n re-checks.
func (m *Metrics) recheckN(outcome string, n int) {
	if m != nil && n > 0 {
		m.rechecks.WithLabelValues(outcome).Add(float64(n))
	}
}

// jobEvents are the River events that end a run of a job.
var jobEvents = map[river.EventKind]string{
	river.EventKindJobCompleted: "completed",
	river.EventKindJobFailed:    "failed",
	river.EventKindJobSnoozed:   "snoozed",
	river.EventKindJobCancelled: "cancelled",
}

// observe records the runs of jobs that River reports on events until it
// closes the channel.
func (m *Metrics) observe(events <-chan *river.Event) {
	for e := range events {
		result, ok := jobEvents[e.Kind]
		if !ok || e.Job == nil || e.JobStats == nil {
			continue
		}
		m.run.WithLabelValues(e.Job.Kind, result).Observe(e.JobStats.RunDuration.Seconds())
		m.queueWait.WithLabelValues(e.Job.Kind).Observe(e.JobStats.QueueWaitDuration.Seconds())
	}
}

// queueDepth is the gauge of available jobs per kind, read at scrape time.
type queueDepth struct{ pool *pgxpool.Pool }

var queueDepthDesc = prometheus.NewDesc("dynconn_jobs_available",
	"Jobs ready to run and waiting for a worker, by kind (all replicas together).", []string{"kind"}, nil)

// Describe implements prometheus.Collector.
func (queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- queueDepthDesc }

// Collect implements prometheus.Collector. When the database does not answer
// within a second the gauge is left out of the scrape.
func (q queueDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rows, err := q.pool.Query(ctx, `SELECT kind, count(*) FROM river_job WHERE state = 'available' GROUP BY kind`)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var n int64
		if rows.Scan(&kind, &n) == nil {
			ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), kind)
		}
	}
}
