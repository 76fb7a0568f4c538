package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/webhook"
)

// Webhook delivery: one River job per (event, endpoint), one attempt per
// River attempt, retried on the contract's schedule (design.md, "Webhooks").

// QueueWebhooks is the queue of delivery jobs: its own, so slow receivers
// never hold up re-checks.
const QueueWebhooks = "webhooks"

// Defaults for WebhookConfig.
const (
	// DefaultRetryBase is WEBHOOK_RETRY_BASE's default: the delay before the
	// first retry; each later one doubles.
	DefaultRetryBase = 30 * time.Second
	// DefaultWebhookWorkers is how many deliveries a replica makes at once.
	DefaultWebhookWorkers = 20
)

// retrySpan is how long a delivery is retried at least before it is failed.
const retrySpan = 24 * time.Hour

// jitter is the ± spread of every retry delay.
const jitter = 0.2

// deliveryTimeout bounds one job: the attempt's 10 s plus the database work
// around it. Work applies it within River's Config.JobTimeout rather than as
// River's per-worker Timeout, which River's rescuer would also wait out
// before rescuing a delivery: Config.RescueAfter alone decides when a killed
// replica's deliveries run again.
const deliveryTimeout = 30 * time.Second

// systemActor is the audit actor of changes dynconn makes by itself.
const systemActor = "dynconn"

// WebhookConfig configures webhook delivery.
type WebhookConfig struct {
	// RetryBase is WEBHOOK_RETRY_BASE (default DefaultRetryBase).
	RetryBase time.Duration
	// Sender makes the attempts, through the outbound guard.
	Sender *webhook.Sender
	// Metrics counts attempts; nil counts nothing.
	Metrics *DeliveryMetrics
}

func (c WebhookConfig) retryBase() time.Duration {
	if c.RetryBase <= 0 {
		return DefaultRetryBase
	}
	return c.RetryBase
}

// maxDeliveryAttempts is the number of attempts a delivery gets with retry
// base: the fewest whose retries span at least 24 h even when every delay
// comes out 20 % short (13 with the default 30 s).
func maxDeliveryAttempts(base time.Duration) int {
	var span time.Duration
	attempts := 1
	for delay := base; float64(span) < float64(retrySpan)/(1-jitter); delay *= 2 {
		span += delay
		attempts++
	}
	return attempts
}

// deliveryDelay is the delay after attempt (1-based) of job: base ×
// 2^(attempt−1), spread by up to ±20 %. The spread is drawn from the job's id
// and the attempt, not at random, so the worker that records the next attempt's
// time and River, which schedules it, arrive at the same one.
func deliveryDelay(base time.Duration, jobID int64, attempt int) time.Duration {
	f := rand.New(rand.NewPCG(uint64(jobID), uint64(attempt))).Float64()
	d := float64(base) * float64(uint64(1)<<min(attempt-1, 40))
	return time.Duration(d * (1 - jitter + 2*jitter*f))
}

// DeliverArgs is the job of one delivery.
type DeliverArgs struct {
	DeliveryID int64 `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "webhook_delivery" }

// deliverWorker makes one attempt per River attempt and records it.
type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	st      *store.Store
	keys    *crypto.Keyring
	sender  *webhook.Sender
	base    time.Duration
	metrics *DeliveryMetrics
	logger  *slog.Logger
}

// AddDeliveryWorker registers the delivery worker with workers.
func AddDeliveryWorker(workers *river.Workers, st *store.Store, keys *crypto.Keyring, logger *slog.Logger, cfg WebhookConfig) {
	river.AddWorker(workers, &deliverWorker{st: st, keys: keys, sender: cfg.Sender, base: cfg.retryBase(),
		metrics: cfg.Metrics, logger: logger})
}

// NextRetry implements river.Worker: the contract's schedule instead of River's.
func (w *deliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	return time.Now().Add(deliveryDelay(w.base, job.ID, job.Attempt))
}

// Work makes one attempt. It returns an error for a failed attempt, so that
// River schedules the next one (NextRetry) or, after the last, discards the
// job; the delivery row says the same in the contract's terms.
func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	out, err := w.st.Outgoing(ctx, job.Args.DeliveryID)
	if errors.Is(err, store.ErrDeliveryNotFound) {
		return nil // the endpoint was deleted, or the event pruned: nothing to send
	}
	if err != nil {
		return err
	}
	if out.Status != store.DeliveryPending {
		return nil // already done: a second run of a rescued job
	}
	if out.Webhook.Disabled() {
		return w.st.RecordAttempt(ctx, out.DeliveryID, store.Attempt{Number: job.Attempt, Status: store.DeliveryFailed,
			Error: "not sent: the endpoint is disabled"})
	}
	res := w.attempt(ctx, out)
	w.metrics.observe(res)
	// The attempt is recorded even when a shutdown cancelled it.
	ctx, cancelRecord := context.WithTimeout(context.WithoutCancel(ctx), finishGrace)
	defer cancelRecord()
	last := job.Attempt >= job.MaxAttempts
	// Numbered by River's count, so that an attempt of a replica killed
	// before it recorded (then rescued) counts too: the receiver may have
	// got it.
	a := store.Attempt{Number: job.Attempt, Status: store.DeliveryPending, HTTPStatus: res.Status, Error: res.Error, Duration: res.Duration}
	switch {
	case res.Delivered():
		a.Status = store.DeliveryDelivered
	case res.Gone():
		a.Status = store.DeliveryFailed
		a.Error = res.Error + ": the endpoint is gone and now disabled"
	case last:
		a.Status = store.DeliveryFailed
	default:
		next := time.Now().Add(deliveryDelay(w.base, job.ID, job.Attempt))
		a.NextAttemptAt = &next
	}
	if res.Gone() {
		// Before the attempt is recorded, so whoever sees the failed
		// delivery also sees the endpoint disabled.
		if err := w.disable(ctx, out); err != nil {
			return err
		}
	}
	if err := w.st.RecordAttempt(ctx, out.DeliveryID, a); err != nil {
		return err
	}
	if res.Delivered() || res.Gone() {
		return nil
	}
	return fmt.Errorf("delivery %d of %s, attempt %d of %d: %s", out.DeliveryID, out.Event.PublicID, job.Attempt, job.MaxAttempts, res.Error)
}

// attempt signs and sends the event once.
func (w *deliverWorker) attempt(ctx context.Context, out store.Outgoing) webhook.Result {
	plain, err := w.keys.Open(ctx, crypto.Envelope(out.Webhook.Secret), crypto.WebhookAssociatedData(out.Webhook.Account, out.Webhook.ID))
	if err != nil {
		w.logger.ErrorContext(ctx, "open webhook secret", "webhook_id", out.Webhook.ID, "err", err)
		return webhook.Result{Error: "not sent: dynconn could not open the signing secret"}
	}
	body, err := json.Marshal(webhook.Event{ID: out.Event.PublicID, Type: out.Event.Type, Timestamp: out.Event.CreatedAt, Data: out.Event.Data})
	if err != nil {
		return webhook.Result{Error: "not sent: the event could not be encoded"}
	}
	return w.sender.Send(ctx, out.Webhook.URL, secret.String(plain), webhook.Message{ID: out.Event.PublicID, Body: body})
}

// disable turns off an endpoint that answered 410, with an audit event.
func (w *deliverWorker) disable(ctx context.Context, out store.Outgoing) error {
	done, err := w.st.DisableWebhook(ctx, out.Webhook.Account, out.Webhook.ID, model.DisabledGone,
		store.Audit{Actor: systemActor}, map[string]any{"http_status": 410, "event_id": out.Event.PublicID})
	if err != nil {
		return err
	}
	if done {
		w.logger.InfoContext(ctx, "webhook endpoint answered 410 Gone: disabled", "webhook_id", out.Webhook.ID, "account", out.Webhook.Account)
	}
	return nil
}

// DeliveryMetrics are webhook delivery's Prometheus instruments.
type DeliveryMetrics struct {
	attempts *prometheus.CounterVec
	duration prometheus.Histogram
}

// NewDeliveryMetrics registers delivery's instruments with reg.
func NewDeliveryMetrics(reg prometheus.Registerer) *DeliveryMetrics {
	m := &DeliveryMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dynconn_webhook_delivery_attempts_total",
			Help: "Webhook delivery attempts by outcome: delivered (2xx), failed (any other answer or none), gone (410: endpoint disabled).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dynconn_webhook_delivery_duration_seconds", Help: "How long webhook delivery attempts took, to the end of the answer.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 9),
		}),
	}
	reg.MustRegister(m.attempts, m.duration)
	return m
}

// observe counts one attempt. A nil *DeliveryMetrics records nothing.
func (m *DeliveryMetrics) observe(r webhook.Result) {
	if m == nil {
		return
	}
	outcome := "failed"
	switch {
	case r.Delivered():
		outcome = "delivered"
	case r.Gone():
		outcome = "gone"
	}
	m.attempts.WithLabelValues(outcome).Inc()
	m.duration.Observe(r.Duration.Seconds())
}
