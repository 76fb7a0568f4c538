package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The key-encryption keys (KEKs) that stored secrets are wrapped with, as
// the store sees them: ids only. Readiness asks which are in use, key
// rotation counts the rows under each and forgets ids no longer used.

// SecretKind is one kind of envelope-encrypted secret the store keeps: a
// table whose rows hold it in the columns secret_ciphertext,
// secret_wrapped_dek and secret_kek_id, registered in encryption_keys_in_use
// by the same trigger function.
type SecretKind struct {
	// Name says what a secret of this kind belongs to, for messages.
	Name  string
	table string
}

// The kinds of stored secrets.
var (
	ConnectionSecrets = SecretKind{Name: "connection", table: "connections"}
	WebhookSecrets    = SecretKind{Name: "webhook", table: "webhooks"}
)

// SecretKinds lists every kind of stored secret: what readiness, key status
// and key rotation cover.
var SecretKinds = []SecretKind{ConnectionSecrets, WebhookSecrets}

// eachKind joins format, with %s as each kind's table, by sep.
func eachKind(format, sep string) string {
	parts := make([]string, len(SecretKinds))
	for i, k := range SecretKinds {
		parts[i] = fmt.Sprintf(format, k.table)
	}
	return strings.Join(parts, sep)
}

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

var kekInUse = `SELECT ` + eachKind(`EXISTS (SELECT 1 FROM %s WHERE secret_kek_id = $1)`, " OR ")

// KEKInUse reports whether any stored secret is wrapped with the key id. It
// reads the table (there is deliberately no index on the key id), so callers
// ask only about ids that KEKIDsInUse lists and that matter, such as a key
// that is not loaded.
func (s *Store) KEKInUse(ctx context.Context, id string) (bool, error) {
	var used bool
	err := s.pool.QueryRow(ctx, kekInUse, id).Scan(&used)
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

// pruneKEKIDs forgets the ids that no stored secret uses. The SHARE locks
// wait for writers in flight and hold new ones off until the delete is
// done, so no secret can be written under an id while it is being forgotten.
var (
	lockSecretTables = `LOCK TABLE ` + eachKind("%s", ", ") + ` IN SHARE MODE`
	pruneKEKIDs      = `
DELETE FROM encryption_keys_in_use k
WHERE ` + eachKind(`NOT EXISTS (SELECT 1 FROM %s s WHERE s.secret_kek_id = k.kek_id)`, " AND ") + `
RETURNING kek_id`
)

// PruneKEKIDs forgets, and returns sorted, the key ids that KEKIDsInUse
// lists but no stored secret uses. Key rotation calls it when it is done.
func (s *Store) PruneKEKIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSecretTables); err != nil {
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

var selectKEKCounts = `
SELECT secret_kek_id, count(*) FROM (` + eachKind(`SELECT secret_kek_id FROM %s`, " UNION ALL ") + `) s
GROUP BY secret_kek_id`

// KEKCounts returns the number of stored secrets wrapped by each KEK id,
// across all accounts and kinds; ids without rows are absent. Its ids are the ones
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
