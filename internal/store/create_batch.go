package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// maxCreateBatch is the most connections one insertConnections stores.
const maxCreateBatch = 64

// insertConnections is insertConnection for a batch of client-secret
// connections without an expiry (no certificate, no notice): the creates that
// come in while one runs share the next one (group commit, see
// CreateConnection). PostgreSQL's work per create falls to less than half
// with a few rows per statement. A row whose account already has its
// instance URL and client id is skipped, also for a second create of the
// same pair in the batch (the function scan keeps the array's order, so the
// first one wins, as if they ran one after the other); only the inserted rows
// get their audit event and connection.created event, and come back.
//
// The input is one JSON array with the row count $2 as a LIMIT, and the
// constants are in the text, so that PostgreSQL keeps a cheap generic plan
// (see recordTests).
var insertConnections = `
WITH input AS (
	SELECT * FROM jsonb_to_recordset($1) AS i (id uuid, account text, name text, instance_url text, cloud text,
		client_id uuid, tenant_id uuid, credential_type text, secret_ciphertext text, secret_wrapped_dek text,
		secret_kek_id text, secret_updated_at timestamptz, status text, last_test jsonb,
		created_at timestamptz, updated_at timestamptz, actor text, request_id text, details jsonb)
	LIMIT (SELECT $2::int)
), inserted AS (
	INSERT INTO connections (id, account, name, instance_url, cloud, client_id, tenant_id, credential_type,
		secret_ciphertext, secret_wrapped_dek, secret_kek_id, secret_updated_at,
		status, last_test, created_at, updated_at, version, status_since)
	SELECT id, account, name, instance_url, cloud, client_id, tenant_id, credential_type,
		decode(secret_ciphertext, 'base64'), decode(secret_wrapped_dek, 'base64'), secret_kek_id,
		CASE WHEN secret_ciphertext IS NOT NULL THEN COALESCE(secret_updated_at, now()) END,
		status, last_test, COALESCE(created_at, now()), COALESCE(updated_at, now()), ` + strconv.Itoa(InitialVersion) + `, COALESCE(created_at, now())
	FROM input
	ON CONFLICT (account, instance_url, client_id) DO NOTHING
	RETURNING id, secret_updated_at, last_test, status_since, created_at, updated_at
), audit AS (
	INSERT INTO audit_events (account, connection_id, actor, action, request_id, details)
	SELECT i.account, i.id, i.actor, '` + ActionCreated + `', i.request_id, i.details
	FROM inserted JOIN input i USING (id)
), event AS (
	INSERT INTO events (public_id, account, type, connection_id, data)
	SELECT event_public_id(), i.account, '` + EventConnectionCreated + `', i.id, jsonb_build_object('connection_id', i.id)
	FROM inserted JOIN input i USING (id)
)
SELECT * FROM inserted`

// createRow is a connection to create as insertConnections reads it. Times
// are cut to the microsecond as pgx sends them (PostgreSQL would round the
// text's nanoseconds); []byte is base64 in JSON.
type createRow struct {
	ID               string          `json:"id"`
	Account          string          `json:"account"`
	Name             string          `json:"name"`
	InstanceURL      string          `json:"instance_url"`
	Cloud            model.Cloud     `json:"cloud"`
	ClientID         string          `json:"client_id"`
	TenantID         *string         `json:"tenant_id"`
	CredentialType   string          `json:"credential_type"`
	SecretCiphertext []byte          `json:"secret_ciphertext"`
	SecretWrappedDEK []byte          `json:"secret_wrapped_dek"`
	SecretKEKID      *string         `json:"secret_kek_id"`
	SecretUpdatedAt  *time.Time      `json:"secret_updated_at"`
	Status           model.Status    `json:"status"`
	LastTest         json.RawMessage `json:"last_test"`
	CreatedAt        *time.Time      `json:"created_at"`
	UpdatedAt        *time.Time      `json:"updated_at"`
	Actor            string          `json:"actor"`
	RequestID        string          `json:"request_id"`
	Details          json.RawMessage `json:"details"`
}

// createdRow is what insertConnections did with one createRow: the values
// the database decided, or inserted false for a conflict.
type createdRow struct {
	inserted        bool
	secretUpdatedAt *time.Time
	lastTest        json.RawMessage
	statusSince     *time.Time
	createdAt       time.Time
	updatedAt       time.Time
}

// createBatched creates c through s.creates. If the batch's statement fails
// (not for a conflict, which skips a row), c is created alone, as every other
// create of the batch is, so that one create's failure is never another's;
// but not when the database cannot serve now (Unavailable), which a second
// try would only wait for again.
func (s *Store) createBatched(ctx context.Context, c model.Connection, a Audit) (model.Connection, error) {
	r, err := newCreateRow(&c, a)
	if err != nil {
		return model.Connection{}, err
	}
	res, err := s.creates.Do(r)
	if Unavailable(ctx, err) {
		return model.Connection{}, err
	}
	if err != nil {
		return createConnection(ctx, s.pool, c, a)
	}
	if !res.inserted {
		return model.Connection{}, ErrConflict
	}
	c.LastTest, c.StatusSince, c.CreatedAt, c.UpdatedAt = res.lastTest, res.statusSince, res.createdAt, res.updatedAt
	return asCreated(c, res.secretUpdatedAt), nil
}

// newCreateRow fills in c's defaults and returns its createRow.
func newCreateRow(c *model.Connection, a Audit) (createRow, error) {
	details, err := createDefaults(c)
	if err != nil {
		return createRow{}, err
	}
	r := createRow{ID: c.ID, Account: c.Account, Name: c.Name, InstanceURL: c.InstanceURL, Cloud: c.Cloud,
		ClientID: c.ClientID, TenantID: c.TenantID, CredentialType: string(c.CredentialType),
		SecretUpdatedAt: micros(timeOrNow(c.SecretUpdatedAt)), Status: c.Status, LastTest: c.LastTest,
		CreatedAt: micros(timeOrNow(c.CreatedAt)), UpdatedAt: micros(timeOrNow(c.UpdatedAt)),
		Actor: a.Actor, RequestID: a.RequestID, Details: details}
	if c.Secret.Ciphertext != nil {
		r.SecretCiphertext, r.SecretWrappedDEK, r.SecretKEKID = c.Secret.Ciphertext, c.Secret.WrappedDEK, &c.Secret.KEKID
	}
	return r, nil
}

// insertConnectionsBatch runs insertConnections for s.creates.
func (s *Store) insertConnectionsBatch(ctx context.Context, batch []createRow) ([]createdRow, error) {
	index := make(map[uuid.UUID]int, len(batch))
	for i, r := range batch {
		id, err := uuid.Parse(r.ID)
		if err != nil {
			return nil, fmt.Errorf("connection id: %w", err)
		}
		index[id] = i
	}
	body, err := json.Marshal(batch)
	if err != nil {
		return nil, fmt.Errorf("encode connections: %w", err)
	}
	res := make([]createdRow, len(batch))
	rows, _ := s.pool.Query(ctx, insertConnections, string(body), len(batch))
	var id uuid.UUID
	var r createdRow
	_, err = pgx.ForEachRow(rows, []any{&id, &r.secretUpdatedAt, &r.lastTest, &r.statusSince, &r.createdAt, &r.updatedAt}, func() error {
		r.inserted = true
		res[index[id]] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("insert connections: %w", err)
	}
	return res, nil
}

// micros returns t cut to the microsecond, or nil for nil.
func micros(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.Truncate(time.Microsecond)
	return &u
}
