package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// IdempotencyTTL is how long a create's response is replayed for its key.
const IdempotencyTTL = 24 * time.Hour

// ErrIdempotencyInFlight means another request with the same key is being
// handled right now.
var ErrIdempotencyInFlight = errors.New("a request with this idempotency key is in progress")

// ErrIdempotencyMismatch means the key was used before with another body.
var ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")

// IdempotencyKey is a client's Idempotency-Key and what it was sent with.
type IdempotencyKey struct {
	Key string
	// RequestHash is a hash of the request body: the same key with another
	// body is refused.
	RequestHash []byte
}

// lockKey maps (account, key) to the 64-bit id of a transaction-scoped
// advisory lock. A hash collision only makes an unrelated request wait for its
// turn as "in flight", which the client retries.
func (k IdempotencyKey) lockKey(account string) int64 {
	h := sha256.Sum256([]byte(account + "\x00" + k.Key))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

const selectIdempotent = `
SELECT request_hash, body FROM idempotency_keys
WHERE account = $1 AND key = $2 AND expires_at > now()`

// insertIdempotent keeps a create's body for replays. The status and
// location columns held the replay's HTTP status and Location header for
// binaries before the API derived them from the body. No code reads them
// now; they are still filled as those binaries expect, so that a replica not
// yet upgraded replays a key that an upgraded one stored, until a later
// migration drops them.
const insertIdempotent = `
INSERT INTO idempotency_keys (account, key, request_hash, status, location, body, expires_at)
VALUES ($1, $2, $3, 201, '/connections/' || $4::text, $5, now() + $6::interval)
ON CONFLICT (account, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status,
	location = EXCLUDED.location, body = EXCLUDED.body, created_at = now(), expires_at = EXCLUDED.expires_at`

// CreateConnectionOnce creates c as CreateConnection does, at most once per
// idempotency key of the account within IdempotencyTTL. The first call
// creates the connection and keeps the body that render makes of it, in the
// same transaction, and returns that body; later calls with the same key and
// body return the kept body unchanged, with replayed true, and create
// nothing. The store does not look into the body: it is the caller's answer
// to the first request, to repeat as it was.
//
// A transaction-scoped advisory lock on the key serialises the requests that
// share it across every server process on the database: while one holds it,
// the others get ErrIdempotencyInFlight at once instead of waiting. A crash
// releases it with its transaction, so a key is never stuck. It returns
// ErrIdempotencyMismatch when the key was used with another body, and the
// errors of CreateConnection. A failed create keeps nothing, so the client can
// retry with the same key.
func (s *Store) CreateConnectionOnce(ctx context.Context, c model.Connection, a Audit, k IdempotencyKey,
	render func(model.Connection) ([]byte, error)) (body []byte, replayed bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, k.lockKey(c.Account)).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			return ErrIdempotencyInFlight
		}
		var hash []byte
		err := tx.QueryRow(ctx, selectIdempotent, c.Account, k.Key).Scan(&hash, &body)
		switch {
		case err == nil && bytes.Equal(hash, k.RequestHash):
			replayed = true
			return nil
		case err == nil:
			return ErrIdempotencyMismatch
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		created, err := createConnection(ctx, tx, c, a)
		if err != nil {
			return err
		}
		if body, err = render(created); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, insertIdempotent, c.Account, k.Key, k.RequestHash, created.ID, body,
			fmt.Sprintf("%d seconds", int(IdempotencyTTL.Seconds())))
		return err
	})
	switch {
	case errors.Is(err, ErrIdempotencyInFlight), errors.Is(err, ErrIdempotencyMismatch):
		return nil, false, err
	case err != nil:
		return nil, false, s.createError(ctx, c, err)
	}
	return body, replayed, nil
}

// PurgeIdempotencyKeys deletes expired keys and returns how many. The server
// calls it periodically; lookups ignore expired keys in any case.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= now()`)
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}
