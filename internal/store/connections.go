package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// connectionColumns lists, in order, the columns that connectionRow scans.
const connectionColumns = `id, account, name, instance_url, cloud, client_id, tenant_id,
	secret_ciphertext, secret_wrapped_dek, secret_kek_id, secret_updated_at, secret_expires_at,
	status, last_test, created_at, updated_at`

// connectionRow is a connections row as pgx scans it by column name.
type connectionRow struct {
	ID               string          `db:"id"`
	Account          string          `db:"account"`
	Name             string          `db:"name"`
	InstanceURL      string          `db:"instance_url"`
	Cloud            string          `db:"cloud"`
	ClientID         string          `db:"client_id"`
	TenantID         *string         `db:"tenant_id"`
	SecretCiphertext []byte          `db:"secret_ciphertext"`
	SecretWrappedDEK []byte          `db:"secret_wrapped_dek"`
	SecretKEKID      string          `db:"secret_kek_id"`
	SecretUpdatedAt  time.Time       `db:"secret_updated_at"`
	SecretExpiresAt  *time.Time      `db:"secret_expires_at"`
	Status           string          `db:"status"`
	LastTest         json.RawMessage `db:"last_test"`
	CreatedAt        time.Time       `db:"created_at"`
	UpdatedAt        time.Time       `db:"updated_at"`
}

// toModel converts r, with times in UTC (pgx returns them in time.Local).
func (r connectionRow) toModel() model.Connection {
	c := model.Connection{
		ID:          r.ID,
		Account:     r.Account,
		Name:        r.Name,
		InstanceURL: r.InstanceURL,
		Cloud:       model.Cloud(r.Cloud),
		ClientID:    r.ClientID,
		TenantID:    r.TenantID,
		Secret: model.SealedSecret{
			Ciphertext: r.SecretCiphertext,
			WrappedDEK: r.SecretWrappedDEK,
			KEKID:      r.SecretKEKID,
		},
		SecretUpdatedAt: r.SecretUpdatedAt.UTC(),
		Status:          model.Status(r.Status),
		LastTest:        r.LastTest,
		CreatedAt:       r.CreatedAt.UTC(),
		UpdatedAt:       r.UpdatedAt.UTC(),
	}
	if r.SecretExpiresAt != nil {
		t := r.SecretExpiresAt.UTC()
		c.SecretExpiresAt = &t
	}
	return c
}

// timeOrNow returns nil for the zero time, so that COALESCE($n, now()) lets
// the database fill it in.
func timeOrNow(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// canonicalID returns id as Postgres prints a uuid, and reports whether it is
// one. Anything else cannot name a row, so callers answer ErrNotFound rather
// than let Postgres fail on the cast.
func canonicalID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

const insertConnection = `
INSERT INTO connections (` + connectionColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE($11, now()), $12, $13, $14,
	COALESCE($15, now()), COALESCE($16, now()))
RETURNING ` + connectionColumns

// CreateConnection stores c and returns it as stored. The caller sets c.ID (a
// uuid), since the sealed secret is bound to it. Zero CreatedAt, UpdatedAt and
// SecretUpdatedAt become the database's now(); an empty Status is untested.
//
// It returns a *ConflictError (errors.Is ErrConflict) naming the existing
// connection if the account already has one with c's instance URL and client
// id.
func (s *Store) CreateConnection(ctx context.Context, c model.Connection) (model.Connection, error) {
	if c.Status == "" {
		c.Status = model.StatusUntested
	}
	rows, _ := s.pool.Query(ctx, insertConnection,
		c.ID, c.Account, c.Name, c.InstanceURL, string(c.Cloud), c.ClientID, c.TenantID,
		c.Secret.Ciphertext, c.Secret.WrappedDEK, c.Secret.KEKID, timeOrNow(c.SecretUpdatedAt), c.SecretExpiresAt,
		string(c.Status), c.LastTest, timeOrNow(c.CreatedAt), timeOrNow(c.UpdatedAt))
	// A Query error comes back from CollectOneRow, as pgx intends.
	row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[connectionRow])
	if err = translate(err); errors.Is(err, ErrConflict) {
		return model.Connection{}, s.conflict(ctx, c.Account, c.InstanceURL, c.ClientID)
	}
	if err != nil {
		return model.Connection{}, fmt.Errorf("insert connection: %w", err)
	}
	return row.toModel(), nil
}

const selectConflicting = `
SELECT id FROM connections WHERE account = $1 AND instance_url = $2 AND client_id = $3`

// conflict returns the *ConflictError for a write that broke the unique
// (account, instance URL, client id) constraint, with the existing row's id.
// It runs after the failed write's transaction has ended, because a failed
// statement aborts its transaction.
func (s *Store) conflict(ctx context.Context, account, instanceURL, clientID string) error {
	var id string
	err := s.pool.QueryRow(ctx, selectConflicting, account, instanceURL, clientID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return &ConflictError{} // deleted in the meantime; still a conflict
	}
	if err != nil {
		return fmt.Errorf("%w; look up existing connection: %w", &ConflictError{}, err)
	}
	return &ConflictError{ExistingID: id}
}

const selectConnection = `
SELECT ` + connectionColumns + ` FROM connections WHERE account = $1 AND id = $2`

const selectConnectionForUpdate = selectConnection + ` FOR UPDATE`

// Connection returns the account's connection with the given id. It returns
// ErrNotFound if there is none: unknown id, another account's id, or an id
// that is not a uuid.
func (s *Store) Connection(ctx context.Context, account, id string) (model.Connection, error) {
	id, ok := canonicalID(id)
	if !ok {
		return model.Connection{}, ErrNotFound
	}
	return connection(ctx, s.pool, selectConnection, account, id)
}

// connection runs query (selectConnection or selectConnectionForUpdate) on q.
func connection(ctx context.Context, q querier, query, account, id string) (model.Connection, error) {
	rows, _ := q.Query(ctx, query, account, id)
	row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[connectionRow])
	if err = translate(err); errors.Is(err, ErrNotFound) {
		return model.Connection{}, ErrNotFound
	}
	if err != nil {
		return model.Connection{}, fmt.Errorf("select connection: %w", err)
	}
	return row.toModel(), nil
}

// Page limits.
const (
	// DefaultLimit is the page size when Page.Limit is zero.
	DefaultLimit = 50
	// MaxLimit is the largest page size; larger limits are clamped to it.
	MaxLimit = 200
)

// Page selects a page of a list.
type Page struct {
	// Limit is the page size: 0 means DefaultLimit, and values outside
	// 1..MaxLimit are clamped. The API validates it before this.
	Limit int
	// Cursor is "" for the first page, else a nextCursor from the previous page.
	Cursor string
}

// limit returns p.Limit clamped to 1..MaxLimit, with 0 as DefaultLimit.
func (p Page) limit() int {
	switch {
	case p.Limit == 0:
		return DefaultLimit
	case p.Limit < 1:
		return 1
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

const listConnections = `
SELECT ` + connectionColumns + ` FROM connections
WHERE account = $1
ORDER BY created_at, id
LIMIT $2`

const listConnectionsAfter = `
SELECT ` + connectionColumns + ` FROM connections
WHERE account = $1 AND (created_at, id) > ($3, $4)
ORDER BY created_at, id
LIMIT $2`

// Connections returns a page of the account's connections, oldest first (by
// created_at, then id for rows created in the same microsecond), and the
// cursor of the next page, "" on the last page. Pagination is by keyset, so
// rows created or deleted between pages neither repeat nor shift others.
//
// It returns ErrInvalidCursor if p.Cursor is not a cursor it returned.
func (s *Store) Connections(ctx context.Context, account string, p Page) (items []model.Connection, nextCursor string, err error) {
	limit := p.limit()
	// One more row than asked tells whether there is a next page, so the last
	// page says so and the client never fetches an empty one.
	args := []any{account, limit + 1}
	query := listConnections
	if p.Cursor != "" {
		createdAt, id, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, createdAt, id)
		query = listConnectionsAfter
	}
	rows, _ := s.pool.Query(ctx, query, args...)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[connectionRow])
	if err != nil {
		return nil, "", fmt.Errorf("list connections: %w", err)
	}
	if len(list) > limit {
		list = list[:limit]
		last := list[limit-1]
		nextCursor = encodeCursor(last.CreatedAt, last.ID)
	}
	items = make([]model.Connection, len(list))
	for i, r := range list {
		items[i] = r.toModel()
	}
	return items, nextCursor, nil
}

// cursorSep separates the two parts of a cursor; neither a timestamp nor a
// uuid contains it.
const cursorSep = "|"

// encodeCursor returns the opaque cursor that continues after the row with
// createdAt and id. Postgres keeps microseconds, which RFC 3339 with
// nanoseconds carries exactly.
func encodeCursor(createdAt time.Time, id string) string {
	raw := createdAt.UTC().Format(time.RFC3339Nano) + cursorSep + id
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor reverses encodeCursor, returning ErrInvalidCursor for anything
// that encodeCursor cannot have made.
func decodeCursor(cursor string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", ErrInvalidCursor
	}
	ts, id, ok := strings.Cut(string(raw), cursorSep)
	if !ok {
		return time.Time{}, "", ErrInvalidCursor
	}
	createdAt, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", ErrInvalidCursor
	}
	id, ok = canonicalID(id)
	if !ok {
		return time.Time{}, "", ErrInvalidCursor
	}
	return createdAt, id, nil
}

const updateConnection = `
UPDATE connections SET
	name = $3, instance_url = $4, cloud = $5, client_id = $6, tenant_id = $7,
	secret_ciphertext = $8, secret_wrapped_dek = $9, secret_kek_id = $10,
	secret_updated_at = COALESCE($11, now()), secret_expires_at = $12,
	status = $13, last_test = $14, updated_at = now()
WHERE account = $1 AND id = $2
RETURNING ` + connectionColumns

// UpdateConnection changes the account's connection with the given id in one
// transaction: it locks the row, passes it to update, and writes back every
// mutable field (all but ID, Account and CreatedAt, whose changes are
// ignored), setting UpdatedAt to now. If update replaced the sealed secret
// without changing SecretUpdatedAt, SecretUpdatedAt becomes now too.
//
// If update returns an error, nothing is written and that error is returned
// unwrapped. It returns ErrNotFound as Connection does, and a *ConflictError if
// the new instance URL and client id are another connection's.
func (s *Store) UpdateConnection(ctx context.Context, account, id string, update func(*model.Connection) error) (model.Connection, error) {
	id, ok := canonicalID(id)
	if !ok {
		return model.Connection{}, ErrNotFound
	}
	var (
		c         model.Connection
		updateErr error
		row       connectionRow
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		before, err := connection(ctx, tx, selectConnectionForUpdate, account, id)
		if err != nil {
			return err
		}
		c = before
		if updateErr = update(&c); updateErr != nil {
			return updateErr
		}
		secretUpdatedAt := timeOrNow(c.SecretUpdatedAt)
		if secretChanged(before.Secret, c.Secret) && c.SecretUpdatedAt.Equal(before.SecretUpdatedAt) {
			secretUpdatedAt = nil // now()
		}
		rows, _ := tx.Query(ctx, updateConnection, account, id,
			c.Name, c.InstanceURL, string(c.Cloud), c.ClientID, c.TenantID,
			c.Secret.Ciphertext, c.Secret.WrappedDEK, c.Secret.KEKID, secretUpdatedAt, c.SecretExpiresAt,
			string(c.Status), c.LastTest)
		row, err = pgx.CollectOneRow(rows, pgx.RowToStructByName[connectionRow])
		return translate(err)
	})
	switch {
	case updateErr != nil:
		return model.Connection{}, updateErr
	case errors.Is(err, ErrNotFound):
		return model.Connection{}, ErrNotFound
	case errors.Is(err, ErrConflict):
		return model.Connection{}, s.conflict(ctx, account, c.InstanceURL, c.ClientID)
	case err != nil:
		return model.Connection{}, fmt.Errorf("update connection: %w", err)
	}
	return row.toModel(), nil
}

// secretChanged reports whether a and b are different sealed secrets.
func secretChanged(a, b model.SealedSecret) bool {
	return a.KEKID != b.KEKID || !bytes.Equal(a.Ciphertext, b.Ciphertext) || !bytes.Equal(a.WrappedDEK, b.WrappedDEK)
}

const deleteConnection = `DELETE FROM connections WHERE account = $1 AND id = $2`

// DeleteConnection deletes the account's connection with the given id, and
// with it the sealed secret. It returns ErrNotFound as Connection does.
func (s *Store) DeleteConnection(ctx context.Context, account, id string) error {
	id, ok := canonicalID(id)
	if !ok {
		return ErrNotFound
	}
	tag, err := s.pool.Exec(ctx, deleteConnection, account, id)
	if err != nil {
		return fmt.Errorf("delete connection: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

const saveTestResult = `
UPDATE connections SET status = $3, last_test = $4, updated_at = now()
WHERE account = $1 AND id = $2`

// SaveTestResult records the outcome of a connection test: the new status and
// the result as JSON (a model.TestResult). It returns ErrNotFound as
// Connection does.
func (s *Store) SaveTestResult(ctx context.Context, account, id string, status model.Status, result []byte) error {
	id, ok := canonicalID(id)
	if !ok {
		return ErrNotFound
	}
	tag, err := s.pool.Exec(ctx, saveTestResult, account, id, string(status), json.RawMessage(result))
	if err != nil {
		return fmt.Errorf("save test result: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// selectKEKIDs is a loose index scan: each step fetches the next larger KEK id
// from connections_secret_kek_id_idx, so the cost grows with the number of
// distinct keys (a handful), not with the number of rows as DISTINCT would.
const selectKEKIDs = `
WITH RECURSIVE kek AS (
	(SELECT secret_kek_id AS id FROM connections ORDER BY secret_kek_id LIMIT 1)
	UNION ALL
	SELECT (SELECT c.secret_kek_id FROM connections c
	        WHERE c.secret_kek_id > kek.id ORDER BY c.secret_kek_id LIMIT 1)
	FROM kek WHERE kek.id IS NOT NULL
)
SELECT id FROM kek WHERE id IS NOT NULL`

// KEKIDsInUse returns, sorted, the ids of the key-encryption keys that stored
// secrets are wrapped with, across all accounts: readiness checks that each is
// loaded, and key rotation knows when an old key is no longer needed.
func (s *Store) KEKIDsInUse(ctx context.Context) ([]string, error) {
	rows, _ := s.pool.Query(ctx, selectKEKIDs)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("select kek ids: %w", err)
	}
	return ids, nil
}
