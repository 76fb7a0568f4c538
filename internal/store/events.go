package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// Event types (contract: design.md, "Scheduled re-checks and events"). Do not
// rename: persisted, and customers' webhook receivers branch on them.
const (
	EventConnectionCreated        = "connection.created"
	EventConnectionUpdated        = "connection.updated"
	EventConnectionDeleted        = "connection.deleted"
	EventConnectionStatusChanged  = "connection.status_changed"
	EventConnectionSecretExpiring = "connection.secret_expiring"
	EventConnectionSecretExpired  = "connection.secret_expired"
	EventWebhookPing              = "webhook.ping"
)

// EventTypes lists every event type, in the contract's order.
var EventTypes = []string{
	EventConnectionCreated, EventConnectionUpdated, EventConnectionDeleted, EventConnectionStatusChanged,
	EventConnectionSecretExpiring, EventConnectionSecretExpired, EventWebhookPing,
}

// EventRetention is how long events are kept at least; PruneEvents deletes
// older ones.
const EventRetention = 30 * 24 * time.Hour

// NewEvent is an event to append.
type NewEvent struct {
	Account string
	Type    string
	// ConnectionID is the connection it is about; nil for webhook.ping.
	ConnectionID *uuid.UUID
	// Data is the contract's data object; it is marshalled to JSON, and must
	// never hold a secret.
	Data any
}

// Event is a stored event. The API makes the contract's JSON of it
// ({"id","type","timestamp","data"}).
type Event struct {
	ID           int64
	PublicID     string // "evt_" + 32 hex digits
	Account      string
	Type         string
	ConnectionID *uuid.UUID
	Data         json.RawMessage
	CreatedAt    time.Time
}

// eventRow is an events row as the queries here select it.
type eventRow struct {
	ID           int64           `db:"id"`
	PublicID     string          `db:"public_id"`
	Account      string          `db:"account"`
	Type         string          `db:"type"`
	ConnectionID *uuid.UUID      `db:"connection_id"`
	Data         json.RawMessage `db:"data"`
	CreatedAt    time.Time       `db:"created_at"`
	TxID         string          `db:"txid"`
}

func (r eventRow) toEvent() Event {
	return Event{ID: r.ID, PublicID: r.PublicID, Account: r.Account, Type: r.Type,
		ConnectionID: r.ConnectionID, Data: r.Data, CreatedAt: r.CreatedAt.UTC()}
}

const eventColumns = `id, public_id, account, type, connection_id, data, created_at, txid::text AS txid`

// insertEventSQL is the one statement that writes events; event_public_id()
// is migration 000005's.
const insertEventSQL = `
INSERT INTO events (public_id, account, type, connection_id, data)
VALUES (event_public_id(), $1, $2, $3, $4)
RETURNING ` + eventColumns

// AppendEvent writes e on tx, so that it commits or rolls back with the change
// it reports, and returns it as stored.
func (s *Store) AppendEvent(ctx context.Context, tx pgx.Tx, e NewEvent) (Event, error) {
	return appendEvent(ctx, tx, e)
}

// appendEvent is AppendEvent for the store's own transactions.
func appendEvent(ctx context.Context, tx pgx.Tx, e NewEvent) (Event, error) {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return Event{}, fmt.Errorf("encode event data: %w", err)
	}
	rows, _ := tx.Query(ctx, insertEventSQL, e.Account, e.Type, e.ConnectionID, data)
	row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[eventRow])
	if err != nil {
		return Event{}, fmt.Errorf("insert %s event: %w", e.Type, err)
	}
	return row.toEvent(), nil
}

// EventQuery selects a page of an account's events.
type EventQuery struct {
	// After is "" for the oldest events, else a cursor ListEvents returned.
	After string
	// Types keeps only events of these types; empty keeps all.
	Types []string
	// Limit is the page size, as Page.Limit.
	Limit int
}

// listEventsSQL pages by (txid, id) and shows only events of transactions
// that ended before every transaction still running began (txid below the
// snapshot's xmin). Ids and txids are handed out when a transaction writes,
// not when it commits; without that condition an event committed late, with a
// lower txid, could appear behind a cursor a client already holds, and be
// missed for good.
const listEventsSQL = `
SELECT ` + eventColumns + ` FROM events
WHERE account = $1
	AND ($2::text IS NULL OR (txid, id) > ($2::xid8, $3::bigint))
	AND txid < pg_snapshot_xmin(pg_current_snapshot())
	AND (cardinality($4::text[]) = 0 OR type = ANY($4))
ORDER BY txid, id
LIMIT $5`

// ListEvents returns the account's events oldest first, a page after q.After,
// and the cursor after the page's last event. The feed has no last page: the
// cursor is returned whenever the page has events (and q.After again when it
// has none), so a client polls with it for newer ones. It returns
// ErrInvalidCursor for a cursor it did not make.
func (s *Store) ListEvents(ctx context.Context, account string, q EventQuery) ([]Event, string, error) {
	var txid *string
	var id int64
	if q.After != "" {
		t, i, err := decodeEventCursor(q.After)
		if err != nil {
			return nil, "", err
		}
		txid, id = &t, i
	}
	types := q.Types
	if types == nil {
		types = []string{}
	}
	rows, _ := s.pool.Query(ctx, listEventsSQL, account, txid, id, types, Page{Limit: q.Limit}.limit())
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[eventRow])
	if err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	if len(list) == 0 {
		return nil, q.After, nil
	}
	events := make([]Event, len(list))
	for i, r := range list {
		events[i] = r.toEvent()
	}
	last := list[len(list)-1]
	return events, encodeEventCursor(last.TxID, last.ID), nil
}

// encodeEventCursor makes the opaque cursor after the event (txid, id).
func encodeEventCursor(txid string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("ev:" + txid + ":" + strconv.FormatInt(id, 10)))
}

// decodeEventCursor reverses encodeEventCursor.
func decodeEventCursor(cursor string) (txid string, id int64, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", 0, ErrInvalidCursor
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != "ev" {
		return "", 0, ErrInvalidCursor
	}
	if _, err := strconv.ParseUint(parts[1], 10, 64); err != nil {
		return "", 0, ErrInvalidCursor
	}
	id, err = strconv.ParseInt(parts[2], 10, 64)
	if err != nil || id <= 0 {
		return "", 0, ErrInvalidCursor
	}
	return parts[1], id, nil
}

// pruneEventsSQL deletes one batch of old events. Batches keep each
// transaction short, so a large backlog never holds locks for long.
const pruneEventsSQL = `
DELETE FROM events WHERE id IN (
	SELECT id FROM events WHERE created_at < now() - $1::interval LIMIT $2)`

// pruneBatch is how many events PruneEvents deletes per statement.
const pruneBatch = 5000

// PruneEvents deletes events older than retention, in batches, and returns
// how many it deleted.
func (s *Store) PruneEvents(ctx context.Context, retention time.Duration) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, pruneEventsSQL, retention, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune events: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}

// statusChanged is the connection.status_changed event of the connection
// with the given id: from and to, and the failure that made it (nil when the
// change is not a failure).
func statusChanged(connectionID string, from, to model.Status, failure *model.TestError, trigger model.Trigger) NewEvent {
	data := map[string]any{"connection_id": connectionID, "from": from, "to": to, "code": nil, "setup_step": nil, "trigger": trigger}
	if failure != nil {
		data["code"], data["setup_step"] = failure.Code, failure.SetupStep
	}
	return NewEvent{Type: EventConnectionStatusChanged, Data: data}
}
