package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// The store side of key rotation. It knows nothing about cryptography: it
// locks a batch of rows whose data keys are wrapped by a KEK other than the
// active one, hands each sealed secret to a RewrapFunc, and writes back the
// new wrapped DEK and KEK id. Package rotation combines it with crypto.

// ErrSkipRow, returned by a RewrapFunc, leaves that row as it is and goes on
// with the rest of the batch; any other error rolls the whole batch back.
// Return it (or an error wrapping it) for a row that can never be rewrapped,
// such as one whose wrapped DEK does not authenticate, so that one damaged row
// cannot stop a rotation.
var ErrSkipRow = errors.New("skip row")

// RewrapFunc returns sealed with its data key wrapped by the active KEK. It
// is given the row's account and id, which the sealed secret is bound to. It
// must return the same Ciphertext and the active KEK's id, or RewrapBatch
// fails: only the wrapped DEK and the KEK id are written. It is called while
// the batch's rows are locked, so it should not be slow.
type RewrapFunc func(ctx context.Context, account, id string, sealed model.SealedSecret) (model.SealedSecret, error)

// RewrapOptions select the rows of one RewrapBatch call.
type RewrapOptions struct {
	// Kind is the kind of secrets to rewrap (required).
	Kind SecretKind
	// ActiveKEKID is the KEK that new wrapped DEKs are under: rows under any
	// other KEK id are selected.
	ActiveKEKID string
	// After continues a pass over the table: only rows with an id greater than
	// After are selected. "" starts at the first row. Pass the previous
	// batch's LastID, so that each batch reads on from where the last one
	// stopped and rows that were skipped are not read again in the same pass.
	After string
	// Limit is the most rows to select (at least 1).
	Limit int
	// Wait makes the batch wait for rows that other transactions hold locked
	// (a PATCH of that connection, another rotation's batch) instead of
	// skipping them. A final pass with Wait set catches the rows that an
	// earlier pass skipped. A wait for a lock fails after 5 seconds (a
	// transaction left open elsewhere), and then the batch returns an error.
	Wait bool
}

// RewrapResult says what one RewrapBatch call did.
type RewrapResult struct {
	// Selected is the number of rows locked and passed to the RewrapFunc.
	// Zero means the pass is over: no row after After needs rewrapping,
	// except rows that others hold locked when Wait is false.
	Selected int
	// Rewrapped is the number of rows written.
	Rewrapped int
	// Skipped is the number of rows the RewrapFunc skipped with ErrSkipRow.
	Skipped int
	// LastID is the largest id selected: the After of the next batch.
	LastID string
}

// rewrapLockTimeout bounds how long a batch with Wait set waits for one row
// lock, so a transaction left open elsewhere makes the rotation fail with an
// error instead of hanging; running it again finishes the work.
const rewrapLockTimeout = "5s"

// rewrapSelect is the batch's SELECT without its WHERE clause's keyset
// condition and locking clause, which RewrapBatch adds. FOR NO KEY UPDATE is
// the lock an UPDATE of non-key columns takes: it conflicts with a PATCH
// (FOR UPDATE) and with other rotations, but not with inserts of rows that
// reference the connection (FOR KEY SHARE), such as test history.
const (
	rewrapSelect = `
SELECT id, account, secret_ciphertext, secret_wrapped_dek, secret_kek_id
FROM %s
WHERE secret_kek_id <> $1`
	rewrapAfter = ` AND id > $3`
	rewrapOrder = `
ORDER BY id
LIMIT $2
FOR NO KEY UPDATE`
	rewrapSkipLocked = ` SKIP LOCKED`
)

// rewrapUpdate writes a whole batch in one statement: a round trip and a
// plan per batch rather than per row. It touches the wrapped DEK and the KEK
// id only. The ciphertext is unchanged, and so are updated_at, version and
// secret_updated_at: the connection (or webhook) and its secret are the same
// as before (an If-Match ETag stays valid, and a test result recorded for the
// secret still matches it).
const rewrapUpdate = `
UPDATE %s AS c
SET secret_wrapped_dek = u.wrapped_dek, secret_kek_id = $3
FROM unnest($1::uuid[], $2::bytea[]) AS u(id, wrapped_dek)
WHERE c.id = u.id`

// rewrapRow is a row as the batch's SELECT reads it.
type rewrapRow struct {
	ID         string `db:"id"`
	Account    string `db:"account"`
	Ciphertext []byte `db:"secret_ciphertext"`
	WrappedDEK []byte `db:"secret_wrapped_dek"`
	KEKID      string `db:"secret_kek_id"`
}

// RewrapBatch rewraps one batch in one transaction: it locks up to o.Limit
// rows, in id order after o.After, whose KEK id is not o.ActiveKEKID
// (skipping rows others hold locked, unless o.Wait), calls rewrap for each,
// and writes the new wrapped DEKs and KEK ids. Either the whole batch is
// written or none of it, so stopping the process at any moment loses at most
// the open batch.
//
// It is safe to run while connections are created, updated and tested, and
// while other RewrapBatch calls run: a row is rewrapped from its latest
// committed version, under its lock, and a row whose secret was replaced
// under the active KEK in the meantime is no longer selected.
//
// It returns rewrap's first error other than ErrSkipRow, naming the row, and
// then nothing is written.
func (s *Store) RewrapBatch(ctx context.Context, o RewrapOptions, rewrap RewrapFunc) (RewrapResult, error) {
	if o.Kind.table == "" || o.ActiveKEKID == "" || o.Limit < 1 {
		return RewrapResult{}, errors.New("rewrap batch: need a kind, an active kek id and a limit of at least 1")
	}
	query := fmt.Sprintf(rewrapSelect, o.Kind.table)
	args := []any{o.ActiveKEKID, o.Limit}
	if o.After != "" {
		query += rewrapAfter
		args = append(args, o.After)
	}
	query += rewrapOrder
	if !o.Wait {
		query += rewrapSkipLocked
	}
	var res RewrapResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if o.Wait {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+rewrapLockTimeout+"'"); err != nil {
				return fmt.Errorf("set lock timeout: %w", err)
			}
		}
		rows, _ := tx.Query(ctx, query, args...)
		batch, err := pgx.CollectRows(rows, pgx.RowToStructByName[rewrapRow])
		if err != nil {
			return fmt.Errorf("select rows to rewrap: %w", err)
		}
		res.Selected = len(batch)
		ids := make([]string, 0, len(batch))
		deks := make([][]byte, 0, len(batch))
		for _, r := range batch {
			// Rows can come back out of id order only if an id changed, which
			// ids never do; taking the maximum costs nothing and is exact.
			if r.ID > res.LastID {
				res.LastID = r.ID
			}
			old := model.SealedSecret{Ciphertext: r.Ciphertext, WrappedDEK: r.WrappedDEK, KEKID: r.KEKID}
			sealed, err := rewrap(ctx, r.Account, r.ID, old)
			if errors.Is(err, ErrSkipRow) {
				res.Skipped++
				continue
			}
			if err != nil {
				return fmt.Errorf("rewrap %s %s: %w", o.Kind.Name, r.ID, err)
			}
			if !bytes.Equal(sealed.Ciphertext, r.Ciphertext) {
				return fmt.Errorf("rewrap %s %s: the ciphertext changed; only the data key may be rewrapped", o.Kind.Name, r.ID)
			}
			if sealed.KEKID != o.ActiveKEKID || len(sealed.WrappedDEK) == 0 {
				return fmt.Errorf("rewrap %s %s: got kek id %q, want the active %q", o.Kind.Name, r.ID, sealed.KEKID, o.ActiveKEKID)
			}
			ids = append(ids, r.ID)
			deks = append(deks, sealed.WrappedDEK)
		}
		if len(ids) == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf(rewrapUpdate, o.Kind.table), ids, deks, o.ActiveKEKID)
		if err != nil {
			return fmt.Errorf("update rewrapped rows: %w", err)
		}
		if int(tag.RowsAffected()) != len(ids) {
			// The rows are locked, so this would be a bug: better no write.
			return fmt.Errorf("update rewrapped rows: wrote %d of %d", tag.RowsAffected(), len(ids))
		}
		res.Rewrapped = len(ids)
		return nil
	})
	if err != nil {
		return RewrapResult{}, fmt.Errorf("rewrap batch: %w", err)
	}
	return res, nil
}
