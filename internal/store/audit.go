package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Audit says who made a change and in which request; every write to a
// connection records it as an audit event in the same transaction.
type Audit struct {
	// Actor is the caller's JWT subject.
	Actor string
	// RequestID is the API request's X-Request-Id.
	RequestID string
}

// Audit actions (contract: listed in openapi.yaml). Do not rename: persisted.
const (
	ActionCreated       = "connection.created"
	ActionUpdated       = "connection.updated"
	ActionSecretRotated = "connection.secret_rotated"
	ActionTested        = "connection.tested"
	ActionDeleted       = "connection.deleted"
)

// AuditEvent is one entry of a connection's audit trail.
type AuditEvent struct {
	ID           int64           `db:"id"`
	ConnectionID string          `db:"connection_id"`
	Actor        string          `db:"actor"`
	Action       string          `db:"action"`
	RequestID    string          `db:"request_id"`
	CreatedAt    time.Time       `db:"created_at"`
	Details      json.RawMessage `db:"details"`
}

const insertAuditSQL = `
INSERT INTO audit_events (account, connection_id, actor, action, request_id, details)
VALUES ($1, $2, $3, $4, $5, $6)`

// insertAudit records an audit event on tx, so it commits or rolls back with the
// change it describes. details must never hold a secret.
func insertAudit(ctx context.Context, tx pgx.Tx, account, connectionID string, a Audit, action string, details map[string]any) error {
	b, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("encode audit details: %w", err)
	}
	if _, err := tx.Exec(ctx, insertAuditSQL, account, connectionID, a.Actor, action, a.RequestID, b); err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}

const listEvents = `
SELECT id, connection_id, actor, action, request_id, created_at, details FROM audit_events
WHERE account = $1 AND connection_id = $2 AND ($3::bigint = 0 OR id < $3)
ORDER BY id DESC
LIMIT $4`

// AuditTrail returns a page of the audit trail of the account's connection with
// the given id, newest first, and the next page's cursor ("" on the last).
// The events of a deleted connection stay readable. It returns ErrNotFound
// when the account has no events for that id (every connection has at least
// its connection.created event), and ErrInvalidCursor for a bad cursor.
func (s *Store) AuditTrail(ctx context.Context, account string, connectionID uuid.UUID, p Page) ([]AuditEvent, string, error) {
	before, err := decodeIDCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.limit()
	rows, _ := s.pool.Query(ctx, listEvents, account, connectionID, before, limit+1)
	events, err := pgx.CollectRows(rows, pgx.RowToStructByName[AuditEvent])
	if err != nil {
		return nil, "", fmt.Errorf("list audit events: %w", err)
	}
	if len(events) == 0 && before == 0 {
		return nil, "", ErrNotFound
	}
	events, next := cut(events, limit, func(e AuditEvent) string { return encodeIDCursor(e.ID) })
	for i := range events {
		events[i].CreatedAt = events[i].CreatedAt.UTC()
	}
	return events, next, nil
}
