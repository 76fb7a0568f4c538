package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// The webhook outbox and its deliveries. Events are written by whoever makes
// a change (AppendEvent, in the change's transaction) with dispatched =
// false; DispatchEvents turns them into one delivery per (event, endpoint),
// and the delivery worker (package jobs) records every attempt on it.

// Delivery statuses (contract). Persisted: do not rename.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// ErrDeliveryNotFound means a delivery is gone: its endpoint was deleted or
// its event pruned, so there is nothing left to send.
var ErrDeliveryNotFound = errors.New("webhook delivery not found")

// ErrWebhookDisabled means the webhook is disabled, so nothing is sent to it.
var ErrWebhookDisabled = errors.New("webhook is disabled")

// NewDelivery is a delivery DispatchEvents created, for its River job.
type NewDelivery struct {
	ID        int64
	EventID   int64
	WebhookID string
}

// takeEvents marks up to $1 undispatched events dispatched and returns
// their ids, oldest first. SKIP LOCKED lets every replica run the
// dispatcher: each takes events no other transaction holds.
const takeEvents = `
UPDATE events SET dispatched = true
WHERE id IN (SELECT id FROM events WHERE NOT dispatched ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id`

// insertDeliveries makes a pending delivery of each taken event for every
// enabled endpoint of its account that wants its type. A webhook.ping goes
// only to the endpoint it names, whatever that endpoint's event types.
const insertDeliveries = `
INSERT INTO webhook_deliveries (event_id, webhook_id, account, next_attempt_at)
SELECT e.id, w.id, e.account, now()
FROM events e JOIN webhooks w ON w.account = e.account
WHERE e.id = ANY($1) AND NOT w.disabled AND CASE
	WHEN e.type = 'webhook.ping' THEN w.id::text = e.data->>'webhook_id'
	ELSE w.event_types IS NULL OR e.type = ANY(w.event_types) END
ORDER BY e.id, w.created_at, w.id
ON CONFLICT ON CONSTRAINT webhook_deliveries_event_id_webhook_id_key DO NOTHING
RETURNING id, event_id, webhook_id`

// DispatchEvents is one turn of the outbox dispatcher. In one transaction
// it takes up to limit undispatched events (skipping any that another
// replica's dispatcher holds), creates their deliveries, passes them to
// enqueue (which inserts their jobs on the same tx), and marks the events
// dispatched. Either all of that commits or none of it: an event is never
// marked without its deliveries and jobs, nor delivered twice. It returns
// the number of events taken; fewer than limit means the outbox is empty
// for now.
func (s *Store) DispatchEvents(ctx context.Context, limit int, enqueue func(ctx context.Context, tx pgx.Tx, ds []NewDelivery) error) (int, error) {
	var taken int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, takeEvents, limit)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(ids) == 0 {
			return err
		}
		taken = len(ids)
		rows, _ = tx.Query(ctx, insertDeliveries, ids)
		ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (NewDelivery, error) {
			var d NewDelivery
			err := row.Scan(&d.ID, &d.EventID, &d.WebhookID)
			return d, err
		})
		if err != nil || len(ds) == 0 {
			return err
		}
		return enqueue(ctx, tx, ds)
	})
	if err != nil {
		return 0, fmt.Errorf("dispatch events: %w", err)
	}
	return taken, nil
}

// Outgoing is what one delivery attempt needs: the delivery, its event and
// its endpoint.
type Outgoing struct {
	DeliveryID int64
	Status     string
	Event      Event
	Webhook    model.Webhook
}

const selectOutgoing = `
SELECT d.id, d.status,
	e.id, e.public_id, e.account, e.type, e.connection_id, e.data, e.created_at,
	w.id, w.url, w.disabled_reason, w.secret_ciphertext, w.secret_wrapped_dek, w.secret_kek_id
FROM webhook_deliveries d
JOIN events e ON e.id = d.event_id
JOIN webhooks w ON w.id = d.webhook_id
WHERE d.id = $1`

// Outgoing returns the delivery with the given id, with its event and
// endpoint, or ErrDeliveryNotFound.
func (s *Store) Outgoing(ctx context.Context, deliveryID int64) (Outgoing, error) {
	var (
		o      Outgoing
		reason *string
		w      = &o.Webhook
	)
	err := s.pool.QueryRow(ctx, selectOutgoing, deliveryID).Scan(&o.DeliveryID, &o.Status,
		&o.Event.ID, &o.Event.PublicID, &o.Event.Account, &o.Event.Type, &o.Event.ConnectionID, &o.Event.Data, &o.Event.CreatedAt,
		&w.ID, &w.URL, &reason, &w.Secret.Ciphertext, &w.Secret.WrappedDEK, &w.Secret.KEKID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Outgoing{}, ErrDeliveryNotFound
	}
	if err != nil {
		return Outgoing{}, fmt.Errorf("select delivery %d: %w", deliveryID, err)
	}
	o.Event.CreatedAt = o.Event.CreatedAt.UTC()
	w.Account = o.Event.Account
	if reason != nil {
		w.DisabledReason = *reason
	}
	return o, nil
}

// Attempt is the outcome of one delivery attempt, as RecordAttempt stores it.
type Attempt struct {
	// Number is the attempt's number, from 1, when the caller counts them
	// (the delivery job's attempt): an attempt whose replica died before it
	// could record it is then counted too. 0 counts one more.
	Number int
	// Status is the delivery's status after it: pending (another attempt
	// follows at NextAttemptAt), delivered or failed.
	Status        string
	HTTPStatus    int // 0: no answer
	Error         string
	Duration      time.Duration
	NextAttemptAt *time.Time
}

const recordAttempt = `
UPDATE webhook_deliveries SET attempts = GREATEST(attempts + 1, $7), status = $2, http_status = $3, error = $4,
	duration_ms = $5, next_attempt_at = $6, updated_at = now()
WHERE id = $1`

// RecordAttempt adds one attempt to the delivery with the given id. A
// delivery that is gone (endpoint deleted) is not an error.
func (s *Store) RecordAttempt(ctx context.Context, deliveryID int64, a Attempt) error {
	var httpStatus *int
	if a.HTTPStatus != 0 {
		httpStatus = &a.HTTPStatus
	}
	_, err := s.pool.Exec(ctx, recordAttempt, deliveryID, a.Status, httpStatus, nullIfEmpty(a.Error),
		a.Duration.Milliseconds(), a.NextAttemptAt, a.Number)
	if err != nil {
		return fmt.Errorf("record attempt of delivery %d: %w", deliveryID, err)
	}
	return nil
}

// Delivery is one event's delivery to one endpoint, as GET
// /webhooks/{id}/deliveries shows it.
type Delivery struct {
	ID            int64      `db:"id"`
	EventID       string     `db:"event_id"` // the event's public id
	Type          string     `db:"type"`
	Attempts      int        `db:"attempts"`
	Status        string     `db:"status"`
	HTTPStatus    *int       `db:"http_status"`
	Error         *string    `db:"error"`
	DurationMS    *int64     `db:"duration_ms"`
	NextAttemptAt *time.Time `db:"next_attempt_at"`
	UpdatedAt     time.Time  `db:"updated_at"`
}

const listDeliveries = `
SELECT d.id, e.public_id AS event_id, e.type, d.attempts, d.status, d.http_status, d.error,
	d.duration_ms, d.next_attempt_at, d.updated_at
FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
WHERE d.account = $1 AND d.webhook_id = $2 AND ($3::bigint = 0 OR d.id < $3)
ORDER BY d.id DESC
LIMIT $4`

// Deliveries returns a page of the deliveries to the account's webhook with
// the given id, newest first, and the next page's cursor ("" on the last).
// It returns ErrWebhookNotFound when the account has no such webhook, and
// ErrInvalidCursor for a bad cursor.
func (s *Store) Deliveries(ctx context.Context, account string, webhookID uuid.UUID, p Page) ([]Delivery, string, error) {
	before, err := decodeIDCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.Webhook(ctx, account, webhookID); err != nil {
		return nil, "", err
	}
	limit := p.limit()
	rows, _ := s.pool.Query(ctx, listDeliveries, account, webhookID, before, limit+1)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Delivery])
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	list, next := cut(list, limit, func(d Delivery) string { return encodeIDCursor(d.ID) })
	for i := range list {
		list[i].UpdatedAt = list[i].UpdatedAt.UTC()
		list[i].NextAttemptAt = utc(list[i].NextAttemptAt)
	}
	return list, next, nil
}

// PingWebhook appends a webhook.ping event for the account's webhook with
// the given id, which the dispatcher delivers to that endpoint only. It
// returns ErrWebhookNotFound as Webhook does, and ErrWebhookDisabled for a
// disabled webhook (enable it first: nothing would be sent).
func (s *Store) PingWebhook(ctx context.Context, account string, id uuid.UUID) (Event, error) {
	var ev Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// FOR SHARE: a concurrent delete or disable waits for the ping.
		w, err := webhook(ctx, tx, selectWebhook+` FOR SHARE`, account, id)
		if err != nil {
			return err
		}
		if w.Disabled() {
			return ErrWebhookDisabled
		}
		ev, err = appendEvent(ctx, tx, NewEvent{Account: account, Type: EventWebhookPing, Data: map[string]string{"webhook_id": w.ID}})
		return err
	})
	switch {
	case errors.Is(err, ErrWebhookNotFound), errors.Is(err, ErrWebhookDisabled):
		return Event{}, err
	case err != nil:
		return Event{}, fmt.Errorf("ping webhook: %w", err)
	}
	return ev, nil
}
