package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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

// DueCheck is a connection whose re-check is due.
type DueCheck struct {
	ConnectionID uuid.UUID `db:"id"`
	Account      string    `db:"account"`
}

// claimDueChecks takes up to $2 due connections, oldest due first, and moves
// their next check one interval ($1) ahead, so that no other run takes them;
// the re-check's record then sets the real next one. SKIP LOCKED lets
// concurrent runs take disjoint batches.
const claimDueChecks = `
UPDATE connections c SET next_check_at = now() + $1::interval
FROM (
	SELECT id FROM connections WHERE next_check_at <= now()
	ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED
) due
WHERE c.id = due.id
RETURNING c.id, c.account`

// ClaimDueChecks takes up to limit connections whose re-check is due, on tx,
// so that the caller queues their re-checks in the same transaction: either
// both commit or neither does.
func (s *Store) ClaimDueChecks(ctx context.Context, tx pgx.Tx, interval time.Duration, limit int) ([]DueCheck, error) {
	rows, _ := tx.Query(ctx, claimDueChecks, interval, limit)
	due, err := pgx.CollectRows(rows, pgx.RowToStructByName[DueCheck])
	if err != nil {
		return nil, fmt.Errorf("claim due checks: %w", err)
	}
	return due, nil
}
