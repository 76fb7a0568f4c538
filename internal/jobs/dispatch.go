package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/dynconn/dynconn/internal/store"
)

// The webhook outbox dispatcher. Events are written in the transaction of
// the change they report, with dispatched = false; the dispatcher turns each
// into one delivery row and one delivery job per matching endpoint, and marks
// it dispatched, all in one transaction (store.DispatchEvents).
//
// It runs as a loop on every replica rather than as a periodic job on the
// leader: events reach receivers within half a second, a replica that dies
// leaves no gap (the others keep dispatching), and SKIP LOCKED makes the
// loops share the work instead of repeating it.

// Dispatcher defaults.
const (
	// DefaultDispatchInterval is how often an idle dispatcher looks for events.
	DefaultDispatchInterval = 500 * time.Millisecond
	// dispatchBatch is how many events one transaction takes.
	dispatchBatch = 100
)

// Dispatcher moves events from the outbox to delivery jobs.
type Dispatcher struct {
	st          *store.Store
	client      *river.Client[pgx.Tx]
	logger      *slog.Logger
	interval    time.Duration
	maxAttempts int
}

// NewDispatcher returns a dispatcher that inserts delivery jobs with client,
// each with the attempts that retry base spans (maxDeliveryAttempts). An
// interval of 0 is DefaultDispatchInterval.
func NewDispatcher(st *store.Store, client *river.Client[pgx.Tx], logger *slog.Logger, cfg WebhookConfig, interval time.Duration) *Dispatcher {
	if interval <= 0 {
		interval = DefaultDispatchInterval
	}
	return &Dispatcher{st: st, client: client, logger: logger, interval: interval,
		maxAttempts: maxDeliveryAttempts(cfg.retryBase())}
}

// Run dispatches until ctx ends: a full batch is followed at once by the
// next, an empty or partial one by a pause of the interval.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := d.dispatchOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.logger.WarnContext(ctx, "dispatch webhook events", "err", err)
		}
		if n == dispatchBatch {
			t.Reset(0)
		} else {
			t.Reset(d.interval)
		}
	}
}

// dispatchOnce dispatches one batch and returns the number of events taken.
func (d *Dispatcher) dispatchOnce(ctx context.Context) (int, error) {
	return d.st.DispatchEvents(ctx, dispatchBatch, func(ctx context.Context, tx pgx.Tx, ds []store.NewDelivery) error {
		params := make([]river.InsertManyParams, len(ds))
		for i, nd := range ds {
			params[i] = river.InsertManyParams{Args: DeliverArgs{DeliveryID: nd.ID},
				InsertOpts: &river.InsertOpts{Queue: QueueWebhooks, MaxAttempts: d.maxAttempts}}
		}
		_, err := d.client.InsertManyTx(ctx, tx, params)
		return err
	})
}
