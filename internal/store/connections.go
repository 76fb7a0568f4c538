package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// connectionColumns lists, in order, the columns that connectionRow scans.
const connectionColumns = `id, account, name, instance_url, cloud, client_id, tenant_id,
	secret_ciphertext, secret_wrapped_dek, secret_kek_id, secret_updated_at, secret_expires_at,
	secret_expired_at, status, status_since, last_test, last_checked_at, next_check_at, version, created_at, updated_at`

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
	SecretExpiredAt  *time.Time      `db:"secret_expired_at"`
	Status           string          `db:"status"`
	StatusSince      *time.Time      `db:"status_since"`
	LastTest         json.RawMessage `db:"last_test"`
	LastCheckedAt    *time.Time      `db:"last_checked_at"`
	NextCheckAt      *time.Time      `db:"next_check_at"`
	Version          int64           `db:"version"`
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
		SecretExpiresAt: utc(r.SecretExpiresAt),
		SecretExpiredAt: utc(r.SecretExpiredAt),
		Status:          model.Status(r.Status),
		StatusSince:     utc(r.StatusSince),
		LastTest:        r.LastTest,
		LastCheckedAt:   utc(r.LastCheckedAt),
		NextCheckAt:     utc(r.NextCheckAt),
		Version:         r.Version,
		CreatedAt:       r.CreatedAt.UTC(),
		UpdatedAt:       r.UpdatedAt.UTC(),
	}
	return c
}

// utc returns *t in UTC, or nil for nil.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// timeOrNow returns nil for the zero time, so that COALESCE($n, now()) lets
// the database fill it in.
func timeOrNow(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// InitialVersion is the Version of a connection as CreateConnection stores
// it; every change adds one.
const InitialVersion = 1

// insertConnection stores a connection, its audit event and its
// connection.created event in one statement: one round trip, one implicit
// transaction.
const insertConnection = `
WITH created AS (
	INSERT INTO connections (id, account, name, instance_url, cloud, client_id, tenant_id,
		secret_ciphertext, secret_wrapped_dek, secret_kek_id, secret_updated_at, secret_expires_at,
		status, last_test, created_at, updated_at, version, status_since)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE($11, now()), $12, $13, $14,
		COALESCE($15, now()), COALESCE($16, now()), $17, COALESCE($15, now()))
	RETURNING ` + connectionColumns + `
), audit AS (
	INSERT INTO audit_events (account, connection_id, actor, action, request_id, details)
	SELECT account, id, $18, '` + ActionCreated + `', $19, $20 FROM created
), event AS (
	INSERT INTO events (public_id, account, type, connection_id, data)
	SELECT event_public_id(), account, '` + EventConnectionCreated + `', id, jsonb_build_object('connection_id', id) FROM created
)
SELECT ` + connectionColumns + ` FROM created`

// CreateConnection stores c, with its audit event by a and its
// connection.created event, atomically, and returns c as stored. The caller
// sets c.ID (a uuid), since the sealed secret is bound to it. Zero CreatedAt,
// UpdatedAt and SecretUpdatedAt become the database's now(); an empty Status
// is untested; Version is InitialVersion whatever c says. An expiry notice
// that is due already (a secret that expires within 30 days) is written too.
//
// It returns a *ConflictError (errors.Is ErrConflict) naming the existing
// connection if the account already has one with c's instance URL and client
// id.
func (s *Store) CreateConnection(ctx context.Context, c model.Connection, a Audit) (model.Connection, error) {
	var created model.Connection
	var err error
	if hasCredentialExpiry(c) {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			created, err = createConnection(ctx, tx, c, a)
			return err
		})
	} else {
		created, err = createConnection(ctx, s.pool, c, a) // one statement needs no transaction of its own
	}
	return created, s.createError(ctx, c, err)
}

// createConnection stores c and its events on q; a connection whose
// credential has an expiry needs q to be a transaction, so that the expiry
// notices commit with it.
func createConnection(ctx context.Context, q querier, c model.Connection, a Audit) (model.Connection, error) {
	if c.Status == "" {
		c.Status = model.StatusUntested
	}
	details, err := json.Marshal(map[string]any{"name": c.Name, "instance_url": c.InstanceURL, "client_id": c.ClientID, "cloud": c.Cloud})
	if err != nil {
		return model.Connection{}, fmt.Errorf("encode audit details: %w", err)
	}
	rows, _ := q.Query(ctx, insertConnection,
		c.ID, c.Account, c.Name, c.InstanceURL, string(c.Cloud), c.ClientID, c.TenantID,
		c.Secret.Ciphertext, c.Secret.WrappedDEK, c.Secret.KEKID, timeOrNow(c.SecretUpdatedAt), c.SecretExpiresAt,
		string(c.Status), c.LastTest, timeOrNow(c.CreatedAt), timeOrNow(c.UpdatedAt), InitialVersion,
		a.Actor, a.RequestID, details)
	// A Query error comes back from CollectOneRow, as pgx intends.
	row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[connectionRow])
	if err != nil {
		return model.Connection{}, translate(err)
	}
	if hasCredentialExpiry(c) {
		if _, err := sendExpiryNotices(ctx, q, &row.ID); err != nil {
			return model.Connection{}, err
		}
	}
	return row.toModel(), nil
}

// createError turns the error of a create transaction into the one to return.
func (s *Store) createError(ctx context.Context, c model.Connection, err error) error {
	if errors.Is(err, ErrConflict) {
		return s.conflict(ctx, c.Account, c.InstanceURL, c.ClientID)
	}
	if err != nil {
		return fmt.Errorf("insert connection: %w", err)
	}
	return nil
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
// ErrNotFound if there is none: unknown id or another account's id.
func (s *Store) Connection(ctx context.Context, account string, id uuid.UUID) (model.Connection, error) {
	return connection(ctx, s.pool, selectConnection, account, id)
}

// connection runs query (selectConnection or selectConnectionForUpdate) on q.
func connection(ctx context.Context, q querier, query, account string, id uuid.UUID) (model.Connection, error) {
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

const updateConnection = `
UPDATE connections SET
	name = $3, instance_url = $4, cloud = $5, client_id = $6, tenant_id = $7,
	secret_ciphertext = $8, secret_wrapped_dek = $9, secret_kek_id = $10,
	secret_updated_at = COALESCE($11, now()), secret_expires_at = $12, secret_expired_at = $13,
	status = $14, last_test = $15, version = version + 1, updated_at = now(),
	status_since = CASE WHEN status <> $14 THEN now() ELSE status_since END,
	transient_failures = CASE WHEN status <> $14 THEN 0 ELSE transient_failures END,
	expiry_notice_for = CASE WHEN $16 THEN NULL ELSE expiry_notice_for END,
	expiry_notice_days = CASE WHEN $16 THEN NULL ELSE expiry_notice_days END
WHERE account = $1 AND id = $2
RETURNING ` + connectionColumns

// UpdateConnection changes the account's connection with the given id in one
// transaction: it locks the row, passes it to update, writes back every
// mutable field (all but ID, Account, Version, CreatedAt and the scheduling
// fields, whose changes are ignored), and records the change by a as one
// audit event: connection.updated with the names of the changed fields, or
// connection.secret_rotated when the secret was replaced. It writes the
// connection.updated event (when a field changed), connection.status_changed
// with trigger "update" (when update changed Status, as a new credential
// does), and the expiry notices a new secret or expiry makes due. UpdatedAt
// becomes now and Version grows by one. If update replaced the sealed secret
// without changing SecretUpdatedAt, SecretUpdatedAt becomes now too, and a
// recorded expiry (SecretExpiredAt) is cleared: it belonged to the old
// secret, as did the notices sent about it.
//
// If update returns an error, nothing is written and that error is returned
// unwrapped (so update can refuse a stale If-Match). It returns ErrNotFound as
// Connection does, and a *ConflictError if the new instance URL and client id
// are another connection's.
func (s *Store) UpdateConnection(ctx context.Context, account string, id uuid.UUID, a Audit, update func(*model.Connection) error) (model.Connection, error) {
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
		rotated := secretChanged(before.Secret, c.Secret)
		secretUpdatedAt := timeOrNow(c.SecretUpdatedAt)
		if rotated {
			c.SecretExpiredAt = nil
			if c.SecretUpdatedAt.Equal(before.SecretUpdatedAt) {
				secretUpdatedAt = nil // now()
			}
		}
		rows, _ := tx.Query(ctx, updateConnection, account, id,
			c.Name, c.InstanceURL, string(c.Cloud), c.ClientID, c.TenantID,
			c.Secret.Ciphertext, c.Secret.WrappedDEK, c.Secret.KEKID, secretUpdatedAt, c.SecretExpiresAt,
			c.SecretExpiredAt, string(c.Status), c.LastTest, rotated)
		row, err = pgx.CollectOneRow(rows, pgx.RowToStructByName[connectionRow])
		if err != nil {
			return translate(err)
		}
		action := ActionUpdated
		if rotated {
			action = ActionSecretRotated
		}
		changed := changedFields(before, c, rotated)
		var events []NewEvent
		if len(changed) > 0 {
			events = append(events, NewEvent{Type: EventConnectionUpdated, Data: map[string]any{"connection_id": before.ID, "changed": changed}})
		}
		if c.Status != before.Status {
			events = append(events, statusChanged(before.ID, before.Status, c.Status, nil, model.TriggerUpdate))
		}
		if err := recordChange(ctx, tx, account, before.ID, a, action, map[string]any{"changed": changed}, events); err != nil {
			return err
		}
		if slices.Contains(changed, "client_secret") || slices.Contains(changed, "client_secret_expires_at") {
			_, err = sendExpiryNotices(ctx, tx, &before.ID)
		}
		return err
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

// changedFields names, as the API does, the fields an update changed. It
// names client_secret, never its value.
func changedFields(before, after model.Connection, rotated bool) []string {
	changed := []string{}
	add := func(name string, differ bool) {
		if differ {
			changed = append(changed, name)
		}
	}
	add("name", before.Name != after.Name)
	add("instance_url", before.InstanceURL != after.InstanceURL)
	add("client_id", before.ClientID != after.ClientID)
	add("tenant_id", !equalPtr(before.TenantID, after.TenantID))
	add("client_secret", rotated)
	add("client_secret_expires_at", !equalTimePtr(before.SecretExpiresAt, after.SecretExpiresAt))
	return changed
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func equalTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// secretChanged reports whether a and b are different sealed secrets.
func secretChanged(a, b model.SealedSecret) bool {
	return a.KEKID != b.KEKID || !bytes.Equal(a.Ciphertext, b.Ciphertext) || !bytes.Equal(a.WrappedDEK, b.WrappedDEK)
}

const deleteConnection = `DELETE FROM connections WHERE account = $1 AND id = $2`

// DeleteConnection deletes the account's connection with the given id, and
// with it the sealed secret and the test history, and records the
// connection.deleted audit event by a and the connection.deleted event, in
// one transaction. check sees the locked
// row first and may refuse (a stale If-Match): its error is returned
// unwrapped and nothing is deleted. It returns ErrNotFound as Connection does.
func (s *Store) DeleteConnection(ctx context.Context, account string, id uuid.UUID, a Audit, check func(model.Connection) error) error {
	var checkErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		c, err := connection(ctx, tx, selectConnectionForUpdate, account, id)
		if err != nil {
			return err
		}
		if checkErr = check(c); checkErr != nil {
			return checkErr
		}
		if _, err := tx.Exec(ctx, deleteConnection, account, id); err != nil {
			return err
		}
		// The audit event keeps what identifies the connection, for when it is gone.
		return recordChange(ctx, tx, account, c.ID, a, ActionDeleted, map[string]any{
			"name": c.Name, "instance_url": c.InstanceURL, "client_id": c.ClientID,
		}, []NewEvent{{Type: EventConnectionDeleted, Data: map[string]any{"connection_id": c.ID}}})
	})
	switch {
	case checkErr != nil:
		return checkErr
	case errors.Is(err, ErrNotFound):
		return ErrNotFound
	case err != nil:
		return fmt.Errorf("delete connection: %w", err)
	}
	return nil
}
