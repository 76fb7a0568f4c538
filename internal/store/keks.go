package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// The key-encryption keys (KEKs) that stored secrets are wrapped with, as
// the store sees them: ids only. Readiness asks which are in use, key
// rotation counts the rows under each and forgets ids no longer used. A sealed value is a client secret or a certificate's private key
// (current or next): a row holds up to three, each under its own KEK id.

// sealedKEKIDs is, for each connections row, the KEK ids of its sealed
// values as a column kek_id, NULL where a row has no such value.
const sealedKEKIDs = `LATERAL (VALUES (secret_kek_id), (cert_key_kek_id), (next_cert_key_kek_id)) AS k (kek_id)`

// kekUsedBy is true for a row with a sealed value under the KEK id $1.
const kekUsedBy = `(secret_kek_id = $1 OR cert_key_kek_id = $1 OR next_cert_key_kek_id = $1)`

// KEKIDsInUse returns, sorted, the ids of the key-encryption keys that stored
// secrets may be wrapped with, across all accounts: every id in use, and
// possibly ids whose last secret moved away since the last PruneKEKIDs. It
// reads the small table that triggers keep (migration 000003), so readiness
// can ask every second; KEKInUse answers exactly for one id.
func (s *Store) KEKIDsInUse(ctx context.Context) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT kek_id FROM encryption_keys_in_use ORDER BY kek_id`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("select kek ids: %w", err)
	}
	return ids, nil
}

// KEKInUse reports whether any stored secret is wrapped with the key id. It
// reads the table (there is deliberately no index on the key id), so callers
// ask only about ids that KEKIDsInUse lists and that matter, such as a key
// that is not loaded.
func (s *Store) KEKInUse(ctx context.Context, id string) (bool, error) {
	var used bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM connections WHERE `+kekUsedBy+`)`, id).Scan(&used)
	if err != nil {
		return false, fmt.Errorf("look up kek %s: %w", id, err)
	}
	return used, nil
}

// MissingKEKs returns, sorted, the ids of keys that stored secrets use and
// loaded rejects: readiness's rule. KEKIDsInUse may list a key whose last
// secret moved away, so an id that is not loaded is checked against the rows
// before it counts.
func (s *Store) MissingKEKs(ctx context.Context, loaded func(id string) bool) ([]string, error) {
	ids, err := s.KEKIDsInUse(ctx)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range ids {
		if loaded(id) {
			continue
		}
		used, err := s.KEKInUse(ctx, id)
		if err != nil {
			return nil, err
		}
		if used {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// pruneKEKIDs forgets the ids that no stored secret uses. The SHARE lock
// waits for writers in flight and holds new ones off until the delete is
// done, so no secret can be written under an id while it is being forgotten.
const pruneKEKIDs = `
DELETE FROM encryption_keys_in_use u
WHERE NOT EXISTS (SELECT 1 FROM connections c
	WHERE u.kek_id IN (c.secret_kek_id, c.cert_key_kek_id, c.next_cert_key_kek_id))
RETURNING kek_id`

// PruneKEKIDs forgets, and returns sorted, the key ids that KEKIDsInUse
// lists but no stored secret uses. Key rotation calls it when it is done.
func (s *Store) PruneKEKIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE connections IN SHARE MODE`); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, pruneKEKIDs)
		var err error
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prune kek ids: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

const selectKEKCounts = `
SELECT k.kek_id, count(DISTINCT id) FROM connections, ` + sealedKEKIDs + `
WHERE k.kek_id IS NOT NULL GROUP BY k.kek_id`

// KEKCounts returns the number of rows with a sealed value (a secret or a
// private key) wrapped by each KEK id, across all accounts; ids without rows
// are absent. A row whose values are under two KEKs counts for each. Its ids are the ones
// KEKIDsInUse returns, but it counts every row, so it suits key status and
// rotation progress rather than a probe.
func (s *Store) KEKCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, selectKEKCounts)
	if err != nil {
		return nil, fmt.Errorf("count rows per kek id: %w", err)
	}
	counts := make(map[string]int64)
	var (
		id string
		n  int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		counts[id] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count rows per kek id: %w", err)
	}
	return counts, nil
}
