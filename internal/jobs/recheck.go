package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// QueueRecheck is the queue of re-checks.
const QueueRecheck = "recheck"

// scheduleBatch is how many due connections one transaction of the
// scheduler takes, and the most one re-check job holds.
const scheduleBatch = 100

// uniqueWhileQueued makes a job unique among the jobs of its kind (and args)
// that have not finished: a second insert while one waits or runs is a no-op.
// Finished jobs are left out, so the next run is not refused while the last
// one's completed row awaits River's cleaner.
var uniqueWhileQueued = river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}}

// RecheckArgs is the scheduled re-checks of a batch of connections that came
// due together. One job per connection would make River's own work (a row
// inserted, fetched and completed per job) cost more than the re-check; the
// connections' rows, not the jobs, say which re-checks are done (see Work).
type RecheckArgs struct {
	ConnectionIDs []uuid.UUID `json:"connection_ids"`
	// QueuedAt is when the scheduler queued them, by the database's clock.
	QueuedAt time.Time `json:"queued_at"`
}

// Kind implements river.JobArgs. It is not "recheck", the kind of the jobs
// of one connection that releases before this one queued: during a rolling
// upgrade, a replica of those would take a batch for one of its own, find no
// connection in it and drop it.
func (RecheckArgs) Kind() string { return "recheck_batch" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RecheckArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueRecheck}
}

// legacyRecheckArgs is a re-check job of one connection, as releases before
// batches queued them; such jobs may still wait in a database that is
// upgraded. Remove once every deployment runs a release with batches.
type legacyRecheckArgs struct {
	ConnectionID uuid.UUID `json:"connection_id"`
}

// Kind implements river.JobArgs.
func (legacyRecheckArgs) Kind() string { return "recheck" }

// legacyRecheckWorker runs a legacy job as a batch of one, queued when the
// job was.
type legacyRecheckWorker struct {
	river.WorkerDefaults[legacyRecheckArgs]
	batch *recheckWorker
}

// Work implements river.Worker.
func (w *legacyRecheckWorker) Work(ctx context.Context, job *river.Job[legacyRecheckArgs]) error {
	return w.batch.run(ctx, job.ID, RecheckArgs{ConnectionIDs: []uuid.UUID{job.Args.ConnectionID}, QueuedAt: job.CreatedAt})
}

// recheckWorker runs re-checks through the checker, the path of manual tests
// (which also sends the expiry notice that is due), at most RECHECK_WORKERS
// at once per replica (slots, held while Microsoft is asked) however many
// jobs run. A transient failure (no setup step) is not retried here: its
// record schedules the connection's next check soon, with backoff, until
// the third in a row turns it failing.
type recheckWorker struct {
	river.WorkerDefaults[RecheckArgs]
	chk   *checker.Checker
	slots chan struct{}
	// budget is how long a job starts new re-checks; the rest of its batch
	// is left to its next run, so that the job ends within JobTimeout (see
	// recheckBudget).
	budget  time.Duration
	metrics *Metrics
	logger  *slog.Logger
}

// recheckBudget is the budget of re-check jobs bounded by jobTimeout: the
// re-checks started last need the test's deadline, and finishGrace to
// record. It is not positive when jobTimeout is too short for a re-check.
func recheckBudget(jobTimeout time.Duration) time.Duration {
	return jobTimeout - dynamics.DefaultDeadline - finishGrace
}

// Work implements river.Worker. It claims the batch's connections a chunk
// of RECHECK_WORKERS at a time, one chunk ahead of the tests, so that a
// free slot never waits for a claim. A run may be a second one (after a
// shutdown, a crash, an error or an exhausted budget): the connections
// tested since the batch was queued are not claimed, so each gets one
// re-check.
func (w *recheckWorker) Work(ctx context.Context, job *river.Job[RecheckArgs]) error {
	return w.run(ctx, job.ID, job.Args)
}

// run runs the re-checks of the batch of job jobID.
func (w *recheckWorker) run(ctx context.Context, jobID int64, batch RecheckArgs) error {
	stopClaiming := time.Now().Add(w.budget)
	var (
		mu         sync.Mutex
		errs       []error
		incomplete bool // some re-checks are left for the next run
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	claimed := make(chan model.Connection)
	go func() {
		defer close(claimed)
		ids := batch.ConnectionIDs
		for len(ids) > 0 {
			if ctx.Err() != nil || time.Now().After(stopClaiming) {
				mu.Lock()
				incomplete = true
				mu.Unlock()
				return
			}
			chunk := ids[:min(len(ids), cap(w.slots))]
			ids = ids[len(chunk):]
			// Not cancelled with ctx: a claim made must be known, to be
			// released below.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishGrace)
			conns, err := w.chk.ClaimRechecks(cctx, chunk, batch.QueuedAt)
			cancel()
			if err != nil {
				fail(err)
				return
			}
			w.metrics.recheckN("skipped", len(chunk)-len(conns))
			for i, c := range conns {
				select {
				case claimed <- c:
				case <-ctx.Done():
					w.release(ctx, conns[i:])
					return
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for conn := range claimed {
		if !w.takeSlot(ctx) {
			w.release(ctx, []model.Connection{conn})
			continue // drains what the claimer sends until it sees ctx end
		}
		wg.Go(func() {
			// The slot is free once Microsoft has answered: the record, which
			// waits for a statement shared with others, need not hold it.
			var once sync.Once
			free := func() { once.Do(func() { <-w.slots }) }
			defer free()
			o, err := w.chk.Recheck(ctx, conn, free)
			switch {
			case errors.Is(err, store.ErrNotFound):
				w.metrics.recheck("deleted")
			case err != nil && ctx.Err() != nil:
				// Stopped: nothing recorded, the claim released.
			case err != nil:
				w.metrics.recheck("error")
				fail(err)
			default:
				w.metrics.recheck(recheckOutcome(o))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err // River runs the job again later, with its backoff
	}
	if incomplete || ctx.Err() != nil {
		// Stopped (a shutdown), or out of budget: run the rest again at once,
		// on whichever replica takes it, without counting an attempt.
		w.logger.Info("re-checks left for the job's next run", "job_id", jobID)
		return river.JobSnooze(0)
	}
	return nil
}

// release ends the claims of re-checks that will not run now, so that
// manual tests need not wait for their leases and the job's next run claims
// them again.
func (w *recheckWorker) release(ctx context.Context, conns []model.Connection) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishGrace)
	defer cancel()
	if err := w.chk.ReleaseRechecks(rctx, conns); err != nil {
		w.logger.Warn("could not release re-checks that will not run; their leases run out by themselves", "error", err)
	}
}

// takeSlot waits for one of the replica's RECHECK_WORKERS slots. It reports
// false, holding none, when ctx ends first.
func (w *recheckWorker) takeSlot(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case w.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// recheckOutcome is the metrics label of a re-check that ran.
func recheckOutcome(o checker.Outcome) string {
	switch {
	case o.Transient:
		return "transient"
	case o.Recorded.To == "failing":
		return "failing"
	}
	return "connected"
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
			ids, queuedAt, err := w.st.ClaimDueChecks(ctx, tx, w.interval, scheduleBatch)
			if err != nil || len(ids) == 0 {
				return err
			}
			n = len(ids)
			_, err = client.InsertTx(ctx, tx, RecheckArgs{ConnectionIDs: ids, QueuedAt: queuedAt}, nil)
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
