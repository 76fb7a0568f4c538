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
// locks a batch of rows with a sealed value whose data key is wrapped by a
// KEK other than the active one, hands each such value to a RewrapFunc, and
// writes back the new wrapped DEKs and KEK ids. A row holds up to three
// sealed values: the client secret and the private keys of the current and
// the next certificate. Package rotation combines it with crypto.

// ErrSkipRow, returned by a RewrapFunc, leaves that row as it is (all of its
// sealed values) and goes on with the rest of the batch; any other error
// rolls the whole batch back. Return it (or an error wrapping it) for a value
// that can never be rewrapped, such as one whose wrapped DEK does not
// authenticate, so that one damaged row cannot stop a rotation.
var ErrSkipRow = errors.New("skip row")

// SealedValue is one sealed value of a connection, as RewrapBatch hands it
// to a RewrapFunc: what it is bound to (account, connection id, slot) and
// the sealed bytes.
type SealedValue struct {
	Account, ConnectionID string
	// Slot is the certificate slot of a private key, "" for the client secret.
	Slot   model.CertificateSlot
	Sealed model.SealedSecret
}

// RewrapFunc returns v.Sealed with its data key wrapped by the active KEK.
// It must return the same Ciphertext and the active KEK's id, or RewrapBatch
// fails: only the wrapped DEK and the KEK id are written. It is called while
// the batch's rows are locked, so it should not be slow.
type RewrapFunc func(ctx context.Context, v SealedValue) (model.SealedSecret, error)

// RewrapOptions select the rows of one RewrapBatch call.
type RewrapOptions struct {
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
// reference the connection (FOR KEY SHARE), such as test history. A NULL
// key id (no such value) never differs from $1.
const (
	rewrapSelect = `
SELECT id, account, secret_ciphertext, secret_wrapped_dek, secret_kek_id,
	cert_key_ciphertext, cert_key_wrapped_dek, cert_key_kek_id,
	next_cert_key_ciphertext, next_cert_key_wrapped_dek, next_cert_key_kek_id
FROM connections
WHERE (secret_kek_id <> $1 OR cert_key_kek_id <> $1 OR next_cert_key_kek_id <> $1)`
	rewrapAfter = ` AND id > $3`
	rewrapOrder = `
ORDER BY id
LIMIT $2
FOR NO KEY UPDATE`
	rewrapSkipLocked = ` SKIP LOCKED`
)

// rewrapUpdate writes a whole batch in one statement: a round trip and a
// plan per batch rather than per row. It touches wrapped DEKs and KEK ids
// only, each value's where the batch has a new wrapped DEK for it (NULL
// leaves the value as it is). The ciphertexts are unchanged, and so are
// updated_at, version and secret_updated_at: the connection and its
// credentials are the same as before (an If-Match ETag stays valid, and a
// test result recorded for the credential still matches it).
const rewrapUpdate = `
UPDATE connections AS c SET
	secret_wrapped_dek = COALESCE(u.secret_dek, c.secret_wrapped_dek),
	secret_kek_id = CASE WHEN u.secret_dek IS NULL THEN c.secret_kek_id ELSE $5 END,
	cert_key_wrapped_dek = COALESCE(u.cert_dek, c.cert_key_wrapped_dek),
	cert_key_kek_id = CASE WHEN u.cert_dek IS NULL THEN c.cert_key_kek_id ELSE $5 END,
	next_cert_key_wrapped_dek = COALESCE(u.next_dek, c.next_cert_key_wrapped_dek),
	next_cert_key_kek_id = CASE WHEN u.next_dek IS NULL THEN c.next_cert_key_kek_id ELSE $5 END
FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[]) AS u(id, secret_dek, cert_dek, next_dek)
WHERE c.id = u.id`

// rewrapRow is a row as the batch's SELECT reads it.
type rewrapRow struct {
	ID                 string  `db:"id"`
	Account            string  `db:"account"`
	SecretCiphertext   []byte  `db:"secret_ciphertext"`
	SecretWrappedDEK   []byte  `db:"secret_wrapped_dek"`
	SecretKEKID        *string `db:"secret_kek_id"`
	CertCiphertext     []byte  `db:"cert_key_ciphertext"`
	CertWrappedDEK     []byte  `db:"cert_key_wrapped_dek"`
	CertKEKID          *string `db:"cert_key_kek_id"`
	NextCertCiphertext []byte  `db:"next_cert_key_ciphertext"`
	NextCertWrappedDEK []byte  `db:"next_cert_key_wrapped_dek"`
	NextCertKEKID      *string `db:"next_cert_key_kek_id"`
}

// values returns the row's sealed values in the order of rewrapUpdate's
// arrays (secret, certificate key, next certificate key); a nil entry for a
// value the row does not have.
func (r rewrapRow) values() [3]*SealedValue {
	var vs [3]*SealedValue
	for i, v := range []struct {
		slot            model.CertificateSlot
		ciphertext, dek []byte
		kek             *string
	}{
		{"", r.SecretCiphertext, r.SecretWrappedDEK, r.SecretKEKID},
		{model.SlotCurrent, r.CertCiphertext, r.CertWrappedDEK, r.CertKEKID},
		{model.SlotNext, r.NextCertCiphertext, r.NextCertWrappedDEK, r.NextCertKEKID},
	} {
		if v.kek != nil {
			vs[i] = &SealedValue{Account: r.Account, ConnectionID: r.ID, Slot: v.slot,
				Sealed: model.SealedSecret{Ciphertext: v.ciphertext, WrappedDEK: v.dek, KEKID: *v.kek}}
		}
	}
	return vs
}

// RewrapBatch rewraps one batch in one transaction: it locks up to o.Limit
// rows, in id order after o.After, with a sealed value whose KEK id is not
// o.ActiveKEKID (skipping rows others hold locked, unless o.Wait), calls
// rewrap for each such value, and writes the new wrapped DEKs and KEK ids.
// Either the whole batch is written or none of it, so stopping the process
// at any moment loses at most the open batch.
//
// It is safe to run while connections are created, updated and tested, and
// while other RewrapBatch calls run: a row is rewrapped from its latest
// committed version, under its lock, and a row whose credentials were
// replaced under the active KEK in the meantime is no longer selected.
//
// It returns rewrap's first error other than ErrSkipRow, naming the row, and
// then nothing is written.
func (s *Store) RewrapBatch(ctx context.Context, o RewrapOptions, rewrap RewrapFunc) (RewrapResult, error) {
	if o.ActiveKEKID == "" || o.Limit < 1 {
		return RewrapResult{}, errors.New("rewrap batch: need an active kek id and a limit of at least 1")
	}
	query := rewrapSelect
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
		var deks [3][][]byte // per value of rewrapRow.values: the new wrapped DEK, or nil
	batchRows:
		for _, r := range batch {
			// Rows can come back out of id order only if an id changed, which
			// ids never do; taking the maximum costs nothing and is exact.
			if r.ID > res.LastID {
				res.LastID = r.ID
			}
			var row [3][]byte
			for i, v := range r.values() {
				if v == nil || v.Sealed.KEKID == o.ActiveKEKID {
					continue
				}
				sealed, err := rewrap(ctx, *v)
				if errors.Is(err, ErrSkipRow) {
					res.Skipped++
					continue batchRows
				}
				if err != nil {
					return fmt.Errorf("rewrap connection %s: %w", r.ID, err)
				}
				if !bytes.Equal(sealed.Ciphertext, v.Sealed.Ciphertext) {
					return fmt.Errorf("rewrap connection %s: the ciphertext changed; only the data key may be rewrapped", r.ID)
				}
				if sealed.KEKID != o.ActiveKEKID || len(sealed.WrappedDEK) == 0 {
					return fmt.Errorf("rewrap connection %s: got kek id %q, want the active %q", r.ID, sealed.KEKID, o.ActiveKEKID)
				}
				row[i] = sealed.WrappedDEK
			}
			ids = append(ids, r.ID)
			for i := range row {
				deks[i] = append(deks[i], row[i])
			}
		}
		if len(ids) == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, rewrapUpdate, ids, deks[0], deks[1], deks[2], o.ActiveKEKID)
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
