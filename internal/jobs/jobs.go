// Package jobs runs dynconn's background work on River (riverqueue.com), in
// the same PostgreSQL database as everything else: scheduled re-checks,
// expiry notices, pruning, webhook delivery. Every replica runs a client;
// River elects one leader that enqueues periodic jobs, and unique jobs keep
// one job per piece of work, so the replicas together act as one service.
//
// River's tables are migrated by store.Migrate, beside ours.
package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/store"
)

// Config tunes the River client. The zero value runs the default queue with
// DefaultWorkers, expiry notices and pruning, and no re-checks.
type Config struct {
	// RecheckInterval is RECHECK_INTERVAL: how often every connection is
	// re-tested. 0 turns re-checks off. It must be the interval the Checker
	// was made with, which schedules the next re-check of every test.
	RecheckInterval time.Duration
	// RecheckWorkers is RECHECK_WORKERS: re-checks run at once per replica
	// (default DefaultRecheckWorkers).
	RecheckWorkers int
	// Checker runs re-checks; they are off without one.
	Checker *checker.Checker
	// Metrics records re-checks and job runs; nil records nothing.
	Metrics *Metrics
	// Queues maps more queues to the most jobs a replica works at once from
	// each. The default queue (river.QueueDefault) gets DefaultWorkers unless
	// set here.
	Queues map[string]int
	// PeriodicJobs are more jobs that the leader replica enqueues on a
	// schedule, beside dynconn's own.
	PeriodicJobs []*river.PeriodicJob
	// PollInterval is how often a replica looks for jobs it was not notified
	// of (River's FetchPollInterval); 0 is River's default (1s). Tests
	// shorten it.
	PollInterval time.Duration
	// JobTimeout bounds every job: River ends its context after this long
	// (River's JobTimeout). 0 is DefaultJobTimeout.
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before the leader
	// replica takes it for lost (its replica was killed: SIGKILL, a lost
	// node) and runs it again (River's RescueStuckJobsAfter). 0 is
	// DefaultRescueAfter. It must exceed JobTimeout by more than 5 s, the
	// time a job may take after its context ends to record what it did, or
	// a job still running could be run a second time at once. Tests shorten
	// both to see a rescue within seconds.
	RescueAfter time.Duration
}

// Defaults for Config.
const (
	DefaultWorkers        = 10
	DefaultRecheckWorkers = 10
	// DefaultJobTimeout is River's own default: a batch of re-checks starts
	// new ones for what is left after a test's deadline (25 s) and a record
	// (recheckBudget), a delivery is bounded by deliveryTimeout.
	DefaultJobTimeout = time.Minute
	// DefaultRescueAfter: a killed replica's jobs wait this long, plus up to
	// River's rescuer interval (30 s), before another replica runs them;
	// when the killed replica led, its leadership passes first, within
	// about 20 s (River's leader TTL). River's default is an hour; two
	// minutes is safe with DefaultJobTimeout.
	DefaultRescueAfter = 2 * time.Minute
)

// finishGrace is how long a job may still run after its context ends, to
// record what it did: a delivery its attempt (deliverWorker.Work), a
// re-check the release of its claim (checker.runClaimed, 5 s too).
const finishGrace = 5 * time.Second

// Jobs is a River client with the lifecycle the server needs.
type Jobs struct {
	// Client inserts and lists jobs; InsertTx puts a job in the transaction
	// of the change it follows from.
	Client  *river.Client[pgx.Tx]
	logger  *slog.Logger
	metrics *Metrics
	// stopEvents ends the subscription that feeds metrics; observed is
	// done when its goroutine has returned.
	stopEvents func()
	observed   sync.WaitGroup
}

// New returns a River client on pool that works dynconn's own jobs and those
// of workers (which may be empty, never nil). It does not start working
// until Start.
func New(pool *pgxpool.Pool, logger *slog.Logger, cfg Config, workers *river.Workers) (*Jobs, error) {
	jobTimeout := cmp.Or(cfg.JobTimeout, DefaultJobTimeout)
	rescueAfter := cmp.Or(cfg.RescueAfter, DefaultRescueAfter)
	if jobTimeout < 0 || rescueAfter <= jobTimeout+finishGrace {
		return nil, fmt.Errorf("RescueAfter (%s) must exceed JobTimeout (%s) by more than %s, the time a job may take to record its outcome, "+
			"or a running job could be run twice", rescueAfter, jobTimeout, finishGrace)
	}
	st := store.New(pool)
	queues := map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: DefaultWorkers}}
	for name, n := range cfg.Queues {
		queues[name] = river.QueueConfig{MaxWorkers: n}
	}
	periodic := append([]*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour), func() (river.JobArgs, *river.InsertOpts) {
			return ExpiryNoticesArgs{}, &river.InsertOpts{UniqueOpts: uniqueWhileQueued}
		}, &river.PeriodicJobOpts{ID: "expiry_notices", RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(time.Hour), func() (river.JobArgs, *river.InsertOpts) {
			return PruneArgs{}, &river.InsertOpts{UniqueOpts: uniqueWhileQueued}
		}, &river.PeriodicJobOpts{ID: "prune", RunOnStart: true}),
	}, cfg.PeriodicJobs...)
	river.AddWorker(workers, &expiryWorker{st: st, logger: logger})
	river.AddWorker(workers, &pruneWorker{st: st, logger: logger})
	if cfg.Checker != nil && cfg.RecheckInterval > 0 {
		n := cfg.RecheckWorkers
		if n <= 0 {
			n = DefaultRecheckWorkers
		}
		// As many jobs as slots: a job whose last re-checks wait on a slow
		// Microsoft does not keep the others' batches from the free slots.
		queues[QueueRecheck] = river.QueueConfig{MaxWorkers: n}
		budget := recheckBudget(jobTimeout)
		if budget <= 0 {
			return nil, fmt.Errorf("JobTimeout (%s) leaves re-checks no time: it must exceed a test's deadline (%s) and %s to record it",
				jobTimeout, dynamics.DefaultDeadline, finishGrace)
		}
		rw := &recheckWorker{chk: cfg.Checker, slots: make(chan struct{}, n), budget: budget, metrics: cfg.Metrics, logger: logger}
		river.AddWorker(workers, rw)
		river.AddWorker(workers, &legacyRecheckWorker{batch: rw})
		river.AddWorker(workers, &scheduleWorker{pool: pool, st: st, interval: cfg.RecheckInterval})
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(scheduleEvery(cfg.RecheckInterval)),
			func() (river.JobArgs, *river.InsertOpts) {
				return ScheduleArgs{}, &river.InsertOpts{UniqueOpts: uniqueWhileQueued}
			}, &river.PeriodicJobOpts{ID: "recheck_schedule", RunOnStart: true}))
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            logger,
		Queues:            queues,
		Workers:           workers,
		PeriodicJobs:      periodic,
		FetchPollInterval: cfg.PollInterval,
		FetchCooldown:     min(cfg.PollInterval, 100*time.Millisecond),
		// Completed jobs are kept an hour (River's default is a day): with
		// 10,000 re-checks a day there is no need to keep more.
		CompletedJobRetentionPeriod: time.Hour,
		JobTimeout:                  jobTimeout,
		// A replica killed mid-job leaves its jobs "running"; the leader's
		// rescuer hands them to another replica after this long.
		RescueStuckJobsAfter: rescueAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &Jobs{Client: client, logger: logger, metrics: cfg.Metrics}, nil
}

// Start starts working jobs. ctx is only for starting: cancelling it later
// does not stop the client (River would cancel running jobs at once); Stop
// does.
func (j *Jobs) Start(ctx context.Context) error {
	if j.metrics != nil {
		events, stop := j.Client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed,
			river.EventKindJobSnoozed, river.EventKindJobCancelled)
		j.stopEvents = stop
		j.observed.Go(func() { j.metrics.observe(events) })
	}
	if err := j.Client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	return nil
}

// CancelTimeout bounds how long Stop takes, after its context ends, to
// cancel the jobs still running: cancelled jobs return at once.
const CancelTimeout = 5 * time.Second

// Stop stops fetching jobs and waits for running ones to finish until ctx
// ends; then it cancels the rest, which River runs again later (on this or
// another replica). It returns within CancelTimeout of ctx's end.
func (j *Jobs) Stop(ctx context.Context) error {
	defer func() {
		if j.stopEvents != nil {
			j.stopEvents()
			j.observed.Wait()
		}
	}()
	err := j.Client.Stop(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	j.logger.Warn("jobs still running at the end of the shutdown budget: cancelling them; they will run again")
	cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CancelTimeout)
	defer cancel()
	if err := j.Client.StopAndCancel(cancelCtx); err != nil {
		return fmt.Errorf("stop river: %w", err)
	}
	return nil
}
