package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/store"
)

// QueueRecheck is the queue of re-checks; RECHECK_WORKERS of them run at
// once per replica.
const QueueRecheck = "recheck"

// scheduleBatch is how many due connections one transaction of the
// scheduler takes (and queues re-checks for).
const scheduleBatch = 500

// uniqueWhileQueued makes a job unique among the jobs of its kind (and args)
// that have not finished: a second insert while one waits or runs is a no-op.
// Finished jobs are left out, so the next interval's re-check is not refused
// while the last one's completed row awaits River's cleaner.
var uniqueWhileQueued = river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}}

// RecheckArgs is one scheduled re-check of a connection.
type RecheckArgs struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	Account      string    `json:"account"`
}

// Kind implements river.JobArgs.
func (RecheckArgs) Kind() string { return "recheck" }

// InsertOpts implements river.JobArgsWithInsertOpts: one queued re-check per
// connection, whichever replica's scheduler asked.
func (RecheckArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueRecheck, UniqueOpts: uniqueWhileQueued}
}

// recheckWorker runs a re-check through the checker, the path of manual
// tests, and sends the expiry notices that are due. A transient failure
// (no setup step) is tried again after a backoff that honours Retry-After,
// until the third in a row has turned the connection failing: at most two
// retries per interval, so re-checks never storm a throttled Dataverse.
type recheckWorker struct {
	river.WorkerDefaults[RecheckArgs]
	st       *store.Store
	chk      *checker.Checker
	interval time.Duration
	metrics  *Metrics
	logger   *slog.Logger
}

// Work implements river.Worker.
func (w *recheckWorker) Work(ctx context.Context, job *river.Job[RecheckArgs]) error {
	a := job.Args
	o, err := w.chk.Recheck(ctx, a.Account, a.ConnectionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		w.metrics.recheck("deleted")
		return nil
	case err != nil && ctx.Err() != nil:
		// Stopped (shutdown): nothing was recorded; run it again at once,
		// on whichever replica takes it, without counting an attempt.
		return river.JobSnooze(0)
	case err != nil:
		w.metrics.recheck("error")
		return err // River retries with its own backoff
	}
	if _, err := w.st.SendConnectionExpiryNotices(ctx, a.ConnectionID.String()); err != nil {
		return err
	}
	w.metrics.recheck(recheckOutcome(o))
	if n := o.Recorded.TransientFailures; o.Transient && n > 0 && n < store.TransientFailuresToFail {
		delay := retryDelay(n, o.RetryAfter, w.interval)
		w.logger.Info("re-check failed for a transient reason; trying again", "connection_id", a.ConnectionID,
			"failures_in_a_row", n, "retry_in", delay.String())
		return river.JobSnooze(delay)
	}
	return nil
}

// recheckOutcome is the metrics label of a re-check that ran.
func recheckOutcome(o checker.Outcome) string {
	switch {
	case o.Shared:
		return "shared"
	case o.Transient:
		return "transient"
	case o.Recorded.To == "failing":
		return "failing"
	}
	return "connected"
}

// retryDelay is how long to wait before trying a re-check again after its
// n-th transient failure in a row: a base of a twentieth of the interval
// (at most 5 minutes) doubled per failure, ±20 % so that connections
// throttled together do not come back together, and never less than
// Microsoft's Retry-After.
func retryDelay(n int, retryAfter, interval time.Duration) time.Duration {
	base := min(interval/20, 5*time.Minute)
	d := base << (n - 1)
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return max(d, retryAfter)
}

// ScheduleArgs is a run of the re-check scheduler.
type ScheduleArgs struct{}

// Kind implements river.JobArgs.
func (ScheduleArgs) Kind() string { return "recheck_schedule" }

// scheduleWorker queues a re-check for every connection that is due, and
// spreads new connections over the interval. It runs on any replica; the
// leader enqueues it, and one runs at a time.
type scheduleWorker struct {
	river.WorkerDefaults[ScheduleArgs]
	pool     *pgxpool.Pool
	st       *store.Store
	interval time.Duration
}

// Work implements river.Worker.
func (w *scheduleWorker) Work(ctx context.Context, job *river.Job[ScheduleArgs]) error {
	if _, err := w.st.SpreadChecks(ctx, w.interval, scheduleBatch); err != nil {
		return err
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	for {
		var n int
		err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			due, err := w.st.ClaimDueChecks(ctx, tx, w.interval, scheduleBatch)
			if err != nil || len(due) == 0 {
				return err
			}
			params := make([]river.InsertManyParams, len(due))
			for i, d := range due {
				params[i] = river.InsertManyParams{Args: RecheckArgs{ConnectionID: d.ConnectionID, Account: d.Account}}
			}
			n = len(due)
			_, err = client.InsertManyTx(ctx, tx, params)
			return err
		})
		if err != nil {
			return fmt.Errorf("queue re-checks: %w", err)
		}
		if n < scheduleBatch {
			return nil
		}
	}
}

// scheduleEvery is how often the scheduler runs for a re-check interval: a
// tenth of it, between 100 ms (tests run with seconds) and a minute.
func scheduleEvery(interval time.Duration) time.Duration {
	return min(max(interval/10, 100*time.Millisecond), time.Minute)
}
