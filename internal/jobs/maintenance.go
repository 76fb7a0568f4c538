package jobs

import (
	"context"
	"log/slog"

	"github.com/riverqueue/river"

	"github.com/dynconn/dynconn/internal/store"
)

// ExpiryNoticesArgs is the daily run of expiry notices over every connection.
type ExpiryNoticesArgs struct{}

// Kind implements river.JobArgs.
func (ExpiryNoticesArgs) Kind() string { return "expiry_notices" }

// expiryWorker writes every expiry notice that is due. Notices are also
// evaluated at every re-check and when a secret or expiry changes; this run
// catches connections whose re-checks are off.
type expiryWorker struct {
	river.WorkerDefaults[ExpiryNoticesArgs]
	st     *store.Store
	logger *slog.Logger
}

// Work implements river.Worker.
func (w *expiryWorker) Work(ctx context.Context, job *river.Job[ExpiryNoticesArgs]) error {
	n, err := w.st.SendExpiryNotices(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		w.logger.Info("sent expiry notices", "count", n)
	}
	return nil
}

// PruneArgs is the hourly clean-up: events past their retention, expired
// idempotency keys, rate-limit buckets that are full again.
type PruneArgs struct{}

// Kind implements river.JobArgs.
func (PruneArgs) Kind() string { return "prune" }

type pruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	st     *store.Store
	logger *slog.Logger
}

// Work implements river.Worker.
func (w *pruneWorker) Work(ctx context.Context, job *river.Job[PruneArgs]) error {
	events, err := w.st.PruneEvents(ctx, store.EventRetention)
	if err != nil {
		return err
	}
	keys, err := w.st.PurgeIdempotencyKeys(ctx)
	if err != nil {
		return err
	}
	buckets, err := w.st.PruneRateLimits(ctx)
	if err != nil {
		return err
	}
	if events+keys > 0 {
		w.logger.Info("pruned", "events", events, "idempotency_keys", keys, "rate_limit_buckets", buckets)
	}
	return nil
}
