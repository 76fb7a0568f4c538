package store

import (
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

// InitialVersion is the Version of a connection as CreateConnection stores
// it; every change adds one.
const InitialVersion = 1

// insertConnection stores a connection, its audit event and its
// connection.created event in one statement: one round trip, one implicit
// transaction, so the events are written if and only if the connection is
// (a unique violation fails all three). The events take the connection's id
// and account from the arguments rather than from the insert's RETURNING, so
// PostgreSQL need not keep the new row in a CTE and scan it for each of them.
//
// A secret's updated_at defaults to now(), and stays NULL without a secret
// (a certificate connection). It returns only the columns whose values the
// database decides (the times that default to now()) or writes in a form of
// its own (a timestamp to the microsecond, jsonb): the others are stored as
// given (the model's GUIDs are canonical already, certificate times are
// X.509's whole seconds), and reading all 52 back made pgx plan and allocate a
// scan of each on every create.
const insertConnection = `
WITH audit AS (
	INSERT INTO audit_events (account, connection_id, actor, action, request_id, details)
	VALUES ($2, $1, $35, '` + ActionCreated + `', $36, $37)
), event AS (
	INSERT INTO events (public_id, account, type, connection_id, data)
	VALUES (event_public_id(), $2, '` + EventConnectionCreated + `', $1, jsonb_build_object('connection_id', $1::uuid))
)
INSERT INTO connections (id, account, name, instance_url, cloud, client_id, tenant_id, credential_type,
	secret_ciphertext, secret_wrapped_dek, secret_kek_id, secret_updated_at, secret_expires_at,
	status, last_test, created_at, updated_at, version, status_since,
	` + certColumns + `, ` + nextCertColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
	CASE WHEN $9::bytea IS NOT NULL THEN COALESCE($12, now()) END, $13, $14, $15,
	COALESCE($16, now()), COALESCE($17, now()), $18, COALESCE($16, now()),
	$19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34)
RETURNING ` + createdColumns

// createdColumns are what insertConnection returns, in the order
// createConnection scans them.
const createdColumns = `secret_updated_at, secret_expires_at, last_test, status_since, created_at, updated_at`

// CreateConnection stores c, with its audit event by a and its
// connection.created event, atomically, and returns c as stored. The caller
// sets c.ID (a uuid), since the sealed secret is bound to it. Zero CreatedAt,
// UpdatedAt and SecretUpdatedAt become the database's now() (SecretUpdatedAt
// only with a secret); an empty Status is untested, an empty CredentialType
// client_secret; Version is InitialVersion whatever c says. An expiry notice
// that is due already (a credential that expires within 30 days) is written too.
//
// It returns a *ConflictError (errors.Is ErrConflict) naming the existing
// connection if the account already has one with c's instance URL and client
// id.
//
// A create that needs no transaction of its own (no credential expiry, so no
// notice) shares its statement with the creates that come while another
// runs (group commit, see insertConnections): PostgreSQL spends less than
// half the work per create on a few rows a statement. Such a create goes on
// once started, for at most groupcommit.Timeout, even if ctx ends.
func (s *Store) CreateConnection(ctx context.Context, c model.Connection, a Audit) (model.Connection, error) {
	var created model.Connection
	var err error
	switch {
	case hasCredentialExpiry(c):
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			created, err = createConnection(ctx, tx, c, a)
			return err
		})
	case c.NextCertificate == nil:
		created, err = s.createBatched(ctx, c, a) // one statement needs no transaction of its own
	default:
		created, err = createConnection(ctx, s.pool, c, a)
	}
	return created, s.createError(ctx, c, err)
}

// createConnection stores c and its events on q; a connection whose
// credential has an expiry needs q to be a transaction, so that the expiry
// notices commit with it.
func createConnection(ctx context.Context, q querier, c model.Connection, a Audit) (model.Connection, error) {
	details, err := createDefaults(&c)
	if err != nil {
		return model.Connection{}, err
	}
	args := make([]any, 0, 37) // insertConnection's $1 to $37
	args = append(args, c.ID, c.Account, c.Name, c.InstanceURL, string(c.Cloud), c.ClientID, c.TenantID, string(c.CredentialType))
	args = append(args, secretArgs(c.Secret)...)
	args = append(args, timeOrNow(c.SecretUpdatedAt), c.SecretExpiresAt,
		string(c.Status), c.LastTest, timeOrNow(c.CreatedAt), timeOrNow(c.UpdatedAt), InitialVersion)
	args = append(args, certArgs(c.Certificate)...)
	args = append(args, certArgs(c.NextCertificate)...)
	args = append(args, a.Actor, a.RequestID, details)
	var secretUpdatedAt *time.Time
	err = q.QueryRow(ctx, insertConnection, args...).
		Scan(&secretUpdatedAt, &c.SecretExpiresAt, &c.LastTest, &c.StatusSince, &c.CreatedAt, &c.UpdatedAt)
	if err != nil {
		return model.Connection{}, translate(err)
	}
	if hasCredentialExpiry(c) {
		if _, err := sendExpiryNotices(ctx, q, &c.ID); err != nil {
			return model.Connection{}, err
		}
	}
	return asCreated(c, secretUpdatedAt), nil
}

// createDefaults fills in c's defaults for a create (an untested
// client-secret connection) and returns the details of its audit event.
func createDefaults(c *model.Connection) ([]byte, error) {
	if c.Status == "" {
		c.Status = model.StatusUntested
	}
	if c.CredentialType == "" {
		c.CredentialType = model.CredentialClientSecret
	}
	audit := map[string]any{"name": c.Name, "instance_url": c.InstanceURL, "client_id": c.ClientID, "cloud": c.Cloud,
		"credential_type": c.CredentialType}
	if c.Certificate != nil {
		audit["thumbprint"] = c.Certificate.Thumbprint
	}
	details, err := json.Marshal(audit)
	if err != nil {
		return nil, fmt.Errorf("encode audit details: %w", err)
	}
	return details, nil
}

// asCreated returns c as a read returns it once created, c holding the
// values the insert returned but for secret_updated_at (NULL without a
// secret). The rest of c is as stored, but for what the insert leaves NULL or
// sets.
func asCreated(c model.Connection, secretUpdatedAt *time.Time) model.Connection {
	c.SecretUpdatedAt = time.Time{}
	if secretUpdatedAt != nil {
		c.SecretUpdatedAt = secretUpdatedAt.UTC()
	}
	c.SecretExpiresAt, c.StatusSince = utc(c.SecretExpiresAt), utc(c.StatusSince)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	c.SecretExpiredAt, c.NextCertificatePassedAt, c.LastCheckedAt, c.NextCheckAt = nil, nil, nil, nil
	c.Version = InitialVersion
	return c
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
	name = $3, instance_url = $4, cloud = $5, client_id = $6, tenant_id = $7, credential_type = $8,
	secret_ciphertext = $9, secret_wrapped_dek = $10, secret_kek_id = $11,
	secret_updated_at = CASE WHEN $9::bytea IS NOT NULL THEN COALESCE($12, now()) END,
	secret_expires_at = $13, secret_expired_at = $14,
	status = $15, last_test = $16, version = version + 1, updated_at = now(),
	(` + certColumns + `) = ($17, $18, $19, $20, $21, $22, $23, $24),
	(` + nextCertColumns + `) = ($25, $26, $27, $28, $29, $30, $31, $32),
	next_cert_passed_at = $33,
	status_since = CASE WHEN status <> $15 THEN now() ELSE status_since END,
	transient_failures = CASE WHEN status <> $15 THEN 0 ELSE transient_failures END,
	expiry_notice_for = CASE WHEN $34 THEN NULL ELSE expiry_notice_for END,
	expiry_notice_days = CASE WHEN $34 THEN NULL ELSE expiry_notice_days END
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
// secret, as did the notices sent about it. A replaced or removed next
// certificate loses NextCertificatePassedAt: that test was of another one.
// An update that changes nothing writes nothing: no event, the same Version.
//
// If update returns an error, nothing is written and that error is returned
// unwrapped (so update can refuse a stale If-Match). It returns ErrNotFound as
// Connection does, and a *ConflictError if the new instance URL and client id
// are another connection's.
func (s *Store) UpdateConnection(ctx context.Context, account string, id uuid.UUID, a Audit, update func(*model.Connection) error) (model.Connection, error) {
	var (
		c         model.Connection
		updateErr error
		updated   model.Connection
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
		ch := changesOf(before, c)
		if unchanged(before, c, ch) {
			updated = before // nothing to write, record or bump: PATCH {} keeps the ETag
			return nil
		}
		secretUpdatedAt := timeOrNow(c.SecretUpdatedAt)
		if ch.secret {
			c.SecretExpiredAt = nil
			if c.SecretUpdatedAt.Equal(before.SecretUpdatedAt) {
				secretUpdatedAt = nil // now()
			}
		}
		if ch.nextCertificate {
			c.NextCertificatePassedAt = nil
		}
		// A new secret or certificate starts the expiry notices over.
		newCredential := ch.secret || ch.certificate
		args := []any{account, id, c.Name, c.InstanceURL, string(c.Cloud), c.ClientID, c.TenantID, string(c.CredentialType)}
		args = append(args, secretArgs(c.Secret)...)
		args = append(args, secretUpdatedAt, c.SecretExpiresAt, c.SecretExpiredAt, string(c.Status), c.LastTest)
		args = append(args, certArgs(c.Certificate)...)
		args = append(args, certArgs(c.NextCertificate)...)
		args = append(args, c.NextCertificatePassedAt, newCredential)
		rows, _ := tx.Query(ctx, updateConnection, args...)
		row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[connectionRow])
		if err != nil {
			return translate(err)
		}
		updated = row.toModel()
		action, details := ch.audit(before, c)
		changed := details["changed"].([]string)
		var events []NewEvent
		if len(changed) > 0 {
			events = append(events, NewEvent{Type: EventConnectionUpdated, Data: map[string]any{"connection_id": before.ID, "changed": changed}})
		}
		if c.Status != before.Status {
			events = append(events, statusChanged(before.ID, before.Status, c.Status, nil, model.TriggerUpdate))
		}
		if err := recordChange(ctx, tx, account, before.ID, a, action, details, events); err != nil {
			return err
		}
		if newCredential || slices.Contains(changed, "client_secret_expires_at") {
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
	return updated, nil
}

const deleteConnection = `DELETE FROM connections WHERE account = $1 AND id = $2`

// DeleteConnection deletes the account's connection with the given id, and
// with it the sealed secret or private keys and the test history, and records the
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
