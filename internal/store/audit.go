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

// recordChangeSQL writes one audit event and the events of a change in one
// statement ($7 and $8: the events' types and data, in order).
const recordChangeSQL = `
WITH audit AS (
	INSERT INTO audit_events (account, connection_id, actor, action, request_id, details)
	VALUES ($1, $2, $3, $4, $5, $6)
)
INSERT INTO events (public_id, account, type, connection_id, data)
SELECT event_public_id(), $1, e.type, $2, e.data::jsonb
FROM unnest($7::text[], $8::text[]) WITH ORDINALITY AS e(type, data, n)
ORDER BY e.n`

// recordChange records a change of the account's connection on tx, so both
// commit or roll back with it: the audit event of action by a (details must
// never hold a secret), and events, whose Account and ConnectionID are
// those given.
func recordChange(ctx context.Context, tx pgx.Tx, account, connectionID string, a Audit, action string, details map[string]any, events []NewEvent) error {
	b, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("encode audit details: %w", err)
	}
	types, data := make([]string, len(events)), make([]string, len(events))
	for i, e := range events {
		d, err := json.Marshal(e.Data)
		if err != nil {
			return fmt.Errorf("encode event data: %w", err)
		}
		types[i], data[i] = e.Type, string(d)
	}
	if _, err := tx.Exec(ctx, recordChangeSQL, account, connectionID, a.Actor, action, a.RequestID, b, types, data); err != nil {
		return fmt.Errorf("record %s: %w", action, err)
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
