// Package jobs runs dynconn's background work on River (riverqueue.com), in
// the same PostgreSQL database as everything else: scheduled re-checks,
// expiry notices, pruning, webhook delivery. Every replica runs a client;
// River elects one leader that enqueues periodic jobs, and unique jobs keep
// one job per piece of work, so the replicas together act as one service.
//
// River's tables are migrated by store.Migrate, beside ours.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Config tunes the River client. The zero value runs the default queue with
// DefaultWorkers and no periodic jobs.
type Config struct {
	// Queues maps each queue to the most jobs a replica works at once from it.
	// The default queue (river.QueueDefault) gets DefaultWorkers unless set.
	Queues map[string]int
	// PeriodicJobs are enqueued by the leader replica only.
	PeriodicJobs []*river.PeriodicJob
	// PollInterval is how often a replica looks for jobs it was not notified
	// of (River's FetchPollInterval); 0 is River's default (1s). Tests
	// shorten it.
	PollInterval time.Duration
}

// DefaultWorkers is the default queue's concurrency per replica.
const DefaultWorkers = 10

// Jobs is a River client with the lifecycle the server needs.
type Jobs struct {
	// Client inserts and lists jobs; InsertTx puts a job in the transaction
	// of the change it follows from.
	Client *river.Client[pgx.Tx]
	logger *slog.Logger
}

// New returns a River client on pool that works the jobs of workers. It does
// not start working until Start.
func New(pool *pgxpool.Pool, logger *slog.Logger, cfg Config, workers *river.Workers) (*Jobs, error) {
	queues := map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: DefaultWorkers}}
	for name, n := range cfg.Queues {
		queues[name] = river.QueueConfig{MaxWorkers: n}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            logger,
		Queues:            queues,
		Workers:           workers,
		PeriodicJobs:      cfg.PeriodicJobs,
		FetchPollInterval: cfg.PollInterval,
		FetchCooldown:     min(cfg.PollInterval, 100*time.Millisecond),
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &Jobs{Client: client, logger: logger}, nil
}

// Start starts working jobs. ctx is only for starting: cancelling it later
// does not stop the client (River would cancel running jobs at once); Stop
// does.
func (j *Jobs) Start(ctx context.Context) error {
	if err := j.Client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	return nil
}

// Stop stops fetching jobs and waits for running ones to finish until ctx
// ends; then it cancels the rest, whose jobs River retries later (on this or
// another replica).
func (j *Jobs) Stop(ctx context.Context) error {
	err := j.Client.Stop(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	j.logger.Warn("jobs still running at the end of the shutdown budget: cancelling them; they will be retried")
	// A short budget of its own: cancelled jobs return at once.
	cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := j.Client.StopAndCancel(cancelCtx); err != nil {
		return fmt.Errorf("stop river: %w", err)
	}
	return nil
}
