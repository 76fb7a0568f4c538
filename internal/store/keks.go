package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// The key-encryption keys (KEKs) that stored secrets are wrapped with, as
// the store sees them: ids only. Readiness asks which are in use, key
// rotation counts the rows under each and forgets ids no longer used.

// SecretKind is one kind of row that holds envelope-encrypted values: a
// table, and the column prefixes of its sealed values (each with
// <prefix>ciphertext, <prefix>wrapped_dek and <prefix>kek_id, NULL where the
// row has no such value), registered in encryption_keys_in_use by triggers.
type SecretKind struct {
	// Name says what a sealed value of this kind belongs to, for messages.
	Name  string
	table string
	slots []sealedSlot
}

// sealedSlot is one sealed value of a row: its column prefix, and the
// certificate slot it is the private key of ("" for a secret).
type sealedSlot struct {
	prefix string
	slot   model.CertificateSlot
}

// The kinds of rows with sealed values. A connection holds up to three: its
// client secret and the private keys of its current and next certificates.
var (
	ConnectionSecrets = SecretKind{Name: "connection", table: "connections", slots: []sealedSlot{
		{"secret_", ""}, {"cert_key_", model.SlotCurrent}, {"next_cert_key_", model.SlotNext}}}
	WebhookSecrets = SecretKind{Name: "webhook", table: "webhooks", slots: []sealedSlot{{"secret_", ""}}}
)

// SecretKinds lists every kind of row with sealed values: what readiness,
// key status and key rotation cover.
var SecretKinds = []SecretKind{ConnectionSecrets, WebhookSecrets}

// eachSealed joins format, with %[1]s as each kind's table and %[2]s as each
// sealed value's column prefix, by sep.
func eachSealed(format, sep string) string {
	var parts []string
	for _, k := range SecretKinds {
		for _, sl := range k.slots {
			parts = append(parts, fmt.Sprintf(format, k.table, sl.prefix))
		}
	}
	return strings.Join(parts, sep)
}

// eachTable joins format, with %s as each kind's table, by sep.
func eachTable(format, sep string) string {
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

var kekInUse = `SELECT ` + eachSealed(`EXISTS (SELECT 1 FROM %[1]s WHERE %[2]skek_id = $1)`, " OR ")

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
	lockSecretTables = `LOCK TABLE ` + eachTable("%s", ", ") + ` IN SHARE MODE`
	pruneKEKIDs      = `
DELETE FROM encryption_keys_in_use k
WHERE ` + eachSealed(`NOT EXISTS (SELECT 1 FROM %[1]s s WHERE s.%[2]skek_id = k.kek_id)`, " AND ") + `
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

// selectKEKCounts counts, per KEK id, the rows with a sealed value under it:
// a row counts once per KEK its values use.
var selectKEKCounts = func() string {
	var parts []string
	for _, k := range SecretKinds {
		var cols []string
		for _, sl := range k.slots {
			cols = append(cols, "("+sl.prefix+"kek_id)")
		}
		parts = append(parts, `SELECT k.kek_id, count(DISTINCT id) AS n FROM `+k.table+
			`, LATERAL (VALUES `+strings.Join(cols, ", ")+`) AS k (kek_id) WHERE k.kek_id IS NOT NULL GROUP BY k.kek_id`)
	}
	return `SELECT kek_id, sum(n)::bigint FROM (` + strings.Join(parts, " UNION ALL ") + `) s GROUP BY kek_id`
}()

// KEKCounts returns the number of rows (connections, webhooks) with a sealed
// value (a client secret, a private key, a webhook secret) wrapped by each
// KEK id, across all accounts; ids without rows are absent. A row whose
// values are under two KEKs counts for each. Its ids are the ones
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
