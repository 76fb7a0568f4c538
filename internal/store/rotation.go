package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// The store side of key rotation. It knows nothing about cryptography: it
// locks a batch of rows of one SecretKind with a sealed value whose data key
// is wrapped by a KEK other than the active one, hands each such value to a
// RewrapFunc, and writes back the new wrapped DEKs and KEK ids. A connection
// holds up to three sealed values (the client secret and the private keys of
// the current and the next certificate), a webhook one. Package rotation
// combines it with crypto.

// ErrSkipRow, returned by a RewrapFunc, leaves that row as it is (all of its
// sealed values) and goes on with the rest of the batch; any other error
// rolls the whole batch back. Return it (or an error wrapping it) for a value
// that can never be rewrapped, such as one whose wrapped DEK does not
// authenticate, so that one damaged row cannot stop a rotation.
var ErrSkipRow = errors.New("skip row")

// SealedValue is one sealed value, as RewrapBatch hands it to a RewrapFunc:
// what it is bound to (kind, account, row id, slot) and the sealed bytes.
type SealedValue struct {
	Kind        SecretKind
	Account, ID string
	// Slot is the certificate slot of a private key, "" for a secret.
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
	// Kind is the kind of rows to rewrap (required).
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

// rewrapSelect returns the batch's SELECT for kind without its keyset
// condition and locking clause, which RewrapBatch adds. FOR NO KEY UPDATE is
// the lock an UPDATE of non-key columns takes: it conflicts with a PATCH
// (FOR UPDATE) and with other rotations, but not with inserts of rows that
// reference the connection (FOR KEY SHARE), such as test history. A NULL
// key id (no such value) never differs from $1.
func rewrapSelect(kind SecretKind) string {
	cols, differ := []string{"id", "account"}, []string{}
	for _, sl := range kind.slots {
		cols = append(cols, sl.prefix+"ciphertext", sl.prefix+"wrapped_dek", sl.prefix+"kek_id")
		differ = append(differ, sl.prefix+"kek_id <> $1")
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + kind.table + " WHERE (" + strings.Join(differ, " OR ") + ")"
}

const (
	rewrapAfter = ` AND id > $3`
	rewrapOrder = `
ORDER BY id
LIMIT $2
FOR NO KEY UPDATE`
	rewrapSkipLocked = ` SKIP LOCKED`
)

// rewrapUpdate returns the statement that writes a whole batch of kind: a
// round trip and a plan per batch rather than per row. $1 holds the ids, $2…
// one array of new wrapped DEKs per sealed value (NULL leaves that value as
// it is), and the last parameter the active KEK id. It touches wrapped DEKs
// and KEK ids only: the ciphertexts are unchanged, and so are updated_at,
// version and secret_updated_at, since the row and its credentials are the
// same as before (an If-Match ETag stays valid, and a test result recorded
// for the credential still matches it).
func rewrapUpdate(kind SecretKind) string {
	n := len(kind.slots)
	var sets, arrays, names []string
	for i, sl := range kind.slots {
		d := fmt.Sprintf("u.dek%d", i)
		sets = append(sets,
			fmt.Sprintf("%[1]swrapped_dek = COALESCE(%[2]s, c.%[1]swrapped_dek)", sl.prefix, d),
			fmt.Sprintf("%[1]skek_id = CASE WHEN %[2]s IS NULL THEN c.%[1]skek_id ELSE $%[3]d END", sl.prefix, d, n+2))
		arrays = append(arrays, fmt.Sprintf("$%d::bytea[]", i+2))
		names = append(names, fmt.Sprintf("dek%d", i))
	}
	return "UPDATE " + kind.table + " AS c SET " + strings.Join(sets, ", ") +
		" FROM unnest($1::uuid[], " + strings.Join(arrays, ", ") + ") AS u(id, " + strings.Join(names, ", ") + ")" +
		" WHERE c.id = u.id"
}

// scanRewrapRow reads a row of rewrapSelect(kind): its id, account and
// sealed values, nil where the row has none.
func scanRewrapRow(kind SecretKind, row pgx.CollectableRow) (id, account string, values []*SealedValue, err error) {
	type sealed struct {
		ciphertext, dek []byte
		kek             *string
	}
	vals := make([]sealed, len(kind.slots))
	dest := []any{&id, &account}
	for i := range vals {
		dest = append(dest, &vals[i].ciphertext, &vals[i].dek, &vals[i].kek)
	}
	if err := row.Scan(dest...); err != nil {
		return "", "", nil, err
	}
	values = make([]*SealedValue, len(kind.slots))
	for i, v := range vals {
		if v.kek != nil {
			values[i] = &SealedValue{Kind: kind, Account: account, ID: id, Slot: kind.slots[i].slot,
				Sealed: model.SealedSecret{Ciphertext: v.ciphertext, WrappedDEK: v.dek, KEKID: *v.kek}}
		}
	}
	return id, account, values, nil
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
	kind := o.Kind
	if kind.table == "" || o.ActiveKEKID == "" || o.Limit < 1 {
		return RewrapResult{}, errors.New("rewrap batch: need a kind, an active kek id and a limit of at least 1")
	}
	query := rewrapSelect(kind)
	args := []any{o.ActiveKEKID, o.Limit}
	if o.After != "" {
		query += rewrapAfter
		args = append(args, o.After)
	}
	query += rewrapOrder
	if !o.Wait {
		query += rewrapSkipLocked
	}
	type batchRow struct {
		id     string
		values []*SealedValue
	}
	var res RewrapResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if o.Wait {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+rewrapLockTimeout+"'"); err != nil {
				return fmt.Errorf("set lock timeout: %w", err)
			}
		}
		rows, _ := tx.Query(ctx, query, args...)
		batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (batchRow, error) {
			id, _, values, err := scanRewrapRow(kind, row)
			return batchRow{id, values}, err
		})
		if err != nil {
			return fmt.Errorf("select rows to rewrap: %w", err)
		}
		res.Selected = len(batch)
		ids := make([]string, 0, len(batch))
		deks := make([][][]byte, len(kind.slots)) // per sealed value: the new wrapped DEKs, nil to keep
	batchRows:
		for _, r := range batch {
			// Rows can come back out of id order only if an id changed, which
			// ids never do; taking the maximum costs nothing and is exact.
			if r.id > res.LastID {
				res.LastID = r.id
			}
			row := make([][]byte, len(kind.slots))
			for i, v := range r.values {
				if v == nil || v.Sealed.KEKID == o.ActiveKEKID {
					continue
				}
				sealed, err := rewrap(ctx, *v)
				if errors.Is(err, ErrSkipRow) {
					res.Skipped++
					continue batchRows
				}
				if err != nil {
					return fmt.Errorf("rewrap %s %s: %w", kind.Name, r.id, err)
				}
				if !bytes.Equal(sealed.Ciphertext, v.Sealed.Ciphertext) {
					return fmt.Errorf("rewrap %s %s: the ciphertext changed; only the data key may be rewrapped", kind.Name, r.id)
				}
				if sealed.KEKID != o.ActiveKEKID || len(sealed.WrappedDEK) == 0 {
					return fmt.Errorf("rewrap %s %s: got kek id %q, want the active %q", kind.Name, r.id, sealed.KEKID, o.ActiveKEKID)
				}
				row[i] = sealed.WrappedDEK
			}
			ids = append(ids, r.id)
			for i := range row {
				deks[i] = append(deks[i], row[i])
			}
		}
		if len(ids) == 0 {
			return nil
		}
		args := []any{ids}
		for _, d := range deks {
			args = append(args, d)
		}
		args = append(args, o.ActiveKEKID)
		tag, err := tx.Exec(ctx, rewrapUpdate(kind), args...)
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
