package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// Scheduled re-checks: every connection has a next_check_at, which every
// recorded test moves about one RECHECK_INTERVAL ahead (recordTest). The
// scheduler job takes the due ones in batches (ClaimDueChecks) and queues one
// re-check each, in the same transaction.

// spreadChecks gives a batch of connections without a next check (new ones,
// or all of them when re-checks were off) a random one within the interval
// $1, so that they do not all come due at once; and brings in the ones
// scheduled further out than the interval allows (it was shortened).
const spreadChecks = `
UPDATE connections c SET next_check_at = now() + $1::interval * random()
FROM (
	SELECT id FROM connections
	WHERE next_check_at IS NULL OR next_check_at > now() + $1::interval * 1.1
	LIMIT $2 FOR UPDATE SKIP LOCKED
) spread
WHERE c.id = spread.id`

// SpreadChecks schedules, within interval from now, every connection that has
// no next check or one too far out, and returns how many, in batches of
// batch.
func (s *Store) SpreadChecks(ctx context.Context, interval time.Duration, batch int) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, spreadChecks, interval, batch)
		if err != nil {
			return total, fmt.Errorf("spread checks: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
	}
}

// claimDueChecks takes up to $2 due connections, oldest due first, and moves
// their next check one interval ($1) ahead, so that no other run takes them;
// the re-check's record then sets the real next one. SKIP LOCKED lets
// concurrent runs take disjoint batches. now() is the time they were queued
// at, by the database's clock, which ClaimRechecks compares with theirs.
const claimDueChecks = `
UPDATE connections c SET next_check_at = now() + $1::interval
FROM (
	SELECT id FROM connections WHERE next_check_at <= now()
	ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED
) due
WHERE c.id = due.id
RETURNING c.id, now()`

// ClaimDueChecks takes up to limit connections whose re-check is due, on tx,
// so that the caller queues their re-checks in the same transaction: either
// both commit or neither does. It returns their ids and when they were
// queued.
func (s *Store) ClaimDueChecks(ctx context.Context, tx pgx.Tx, interval time.Duration, limit int) ([]uuid.UUID, time.Time, error) {
	rows, _ := tx.Query(ctx, claimDueChecks, interval, limit)
	var ids []uuid.UUID
	var id uuid.UUID
	var queuedAt time.Time
	if _, err := pgx.ForEachRow(rows, []any{&id, &queuedAt}, func() error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, time.Time{}, fmt.Errorf("claim due checks: %w", err)
	}
	return ids, queuedAt, nil
}

// claimRechecks claims the test of each connection of $1 for $3, unless it
// was tested since it was queued at $2 (a re-check ran already, or a manual
// test did), or a test of it is running (whose result will do), or it is
// gone: in one statement for all.
const claimRechecks = `
UPDATE connections SET test_lease_until = now() + $3::interval
WHERE id = ANY($1) AND (last_checked_at IS NULL OR last_checked_at < $2)
	AND (test_lease_until IS NULL OR test_lease_until < now())
RETURNING ` + connectionColumns

// ClaimRechecks claims the tests of connections queued for a re-check at
// queuedAt, for lease, as ClaimTest does, and returns the connections it
// claimed; the caller records each (RecordTestResults) or releases it
// (ReleaseTests). The others need no re-check now.
func (s *Store) ClaimRechecks(ctx context.Context, ids []uuid.UUID, queuedAt time.Time, lease time.Duration) ([]model.Connection, error) {
	rows, _ := s.pool.Query(ctx, claimRechecks, ids, queuedAt, lease)
	claimed, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.Connection, error) {
		r, err := pgx.RowToStructByName[connectionRow](row)
		return r.toModel(), err
	})
	if err != nil {
		return nil, fmt.Errorf("claim re-checks: %w", err)
	}
	return claimed, nil
}
