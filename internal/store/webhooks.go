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

// ErrWebhookNotFound means the webhook endpoint does not exist or belongs to
// another account; the API answers 404 for both, as for connections.
var ErrWebhookNotFound = errors.New("webhook not found")

// ErrWebhookLimit means the account already has model.MaxWebhooksPerAccount
// endpoints.
var ErrWebhookLimit = errors.New("too many webhook endpoints")

// Audit actions for webhooks (contract: listed in openapi.yaml). Do not
// rename: persisted.
const (
	ActionWebhookCreated = "webhook.created"
	ActionWebhookUpdated = "webhook.updated"
	ActionWebhookDeleted = "webhook.deleted"
	// ActionWebhookDisabled is a webhook disabled by dynconn itself (its
	// endpoint answered 410); a PATCH that disables one is webhook.updated.
	ActionWebhookDisabled = "webhook.disabled"
)

const insertWebhookAuditSQL = `
INSERT INTO audit_events (account, webhook_id, actor, action, request_id, details)
VALUES ($1, $2, $3, $4, $5, $6)`

// insertWebhookAudit records an audit event about a webhook on tx. details
// must never hold the secret.
func insertWebhookAudit(ctx context.Context, tx pgx.Tx, account, webhookID string, a Audit, action string, details map[string]any) error {
	b, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("encode audit details: %w", err)
	}
	if _, err := tx.Exec(ctx, insertWebhookAuditSQL, account, webhookID, a.Actor, action, a.RequestID, b); err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}

// webhookColumns lists, in order, the columns that webhookRow scans.
const webhookColumns = `id, account, url, event_types, description, disabled_reason,
	secret_ciphertext, secret_wrapped_dek, secret_kek_id, created_at, updated_at`

// webhookRow is a webhooks row as pgx scans it by column name.
type webhookRow struct {
	ID               string    `db:"id"`
	Account          string    `db:"account"`
	URL              string    `db:"url"`
	EventTypes       []string  `db:"event_types"`
	Description      string    `db:"description"`
	DisabledReason   *string   `db:"disabled_reason"`
	SecretCiphertext []byte    `db:"secret_ciphertext"`
	SecretWrappedDEK []byte    `db:"secret_wrapped_dek"`
	SecretKEKID      string    `db:"secret_kek_id"`
	CreatedAt        time.Time `db:"created_at"`
	UpdatedAt        time.Time `db:"updated_at"`
}

func (r webhookRow) toModel() model.Webhook {
	w := model.Webhook{
		ID: r.ID, Account: r.Account, URL: r.URL, EventTypes: r.EventTypes, Description: r.Description,
		Secret:    model.SealedSecret{Ciphertext: r.SecretCiphertext, WrappedDEK: r.SecretWrappedDEK, KEKID: r.SecretKEKID},
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.DisabledReason != nil {
		w.DisabledReason = *r.DisabledReason
	}
	return w
}

// nullIfEmpty stores "" as NULL.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// lockAccountWebhooks serialises creates of one account's webhooks for the
// rest of tx, so two concurrent creates cannot both pass the count. The
// lock is the account's, not the table's: other accounts do not wait.
const lockAccountWebhooks = `SELECT pg_advisory_xact_lock(hashtextextended('webhooks/' || $1, 0))`

const insertWebhook = `
INSERT INTO webhooks (id, account, url, event_types, description, disabled, disabled_reason,
	secret_ciphertext, secret_wrapped_dek, secret_kek_id)
SELECT $1, $2, $3, $4::text[], $5, $6::text IS NOT NULL, $6::text, $7, $8, $9
WHERE (SELECT count(*) FROM webhooks WHERE account = $2) < $10
RETURNING ` + webhookColumns

// CreateWebhook stores w, and the webhook.created audit event by a, in one
// transaction, and returns w as stored. The caller sets w.ID (a
// uuid), since the sealed secret is bound to it. It returns ErrWebhookLimit
// when the account already has model.MaxWebhooksPerAccount endpoints.
func (s *Store) CreateWebhook(ctx context.Context, w model.Webhook, a Audit) (model.Webhook, error) {
	var created model.Webhook
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockAccountWebhooks, w.Account); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, insertWebhook, w.ID, w.Account, w.URL, w.EventTypes, w.Description,
			nullIfEmpty(w.DisabledReason), w.Secret.Ciphertext, w.Secret.WrappedDEK, w.Secret.KEKID, model.MaxWebhooksPerAccount)
		row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[webhookRow])
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrWebhookLimit
		}
		if err != nil {
			return err
		}
		created = row.toModel()
		return insertWebhookAudit(ctx, tx, created.Account, created.ID, a, ActionWebhookCreated, map[string]any{
			"url": created.URL, "event_types": created.EventTypes, "description": created.Description,
		})
	})
	if errors.Is(err, ErrWebhookLimit) {
		return model.Webhook{}, ErrWebhookLimit
	}
	if err != nil {
		return model.Webhook{}, fmt.Errorf("insert webhook: %w", err)
	}
	return created, nil
}

const selectWebhook = `SELECT ` + webhookColumns + ` FROM webhooks WHERE account = $1 AND id = $2`

// Webhook returns the account's webhook with the given id, or
// ErrWebhookNotFound.
func (s *Store) Webhook(ctx context.Context, account string, id uuid.UUID) (model.Webhook, error) {
	return webhook(ctx, s.pool, selectWebhook, account, id)
}

func webhook(ctx context.Context, q querier, query, account string, id uuid.UUID) (model.Webhook, error) {
	rows, _ := q.Query(ctx, query, account, id)
	row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[webhookRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return model.Webhook{}, ErrWebhookNotFound
	}
	if err != nil {
		return model.Webhook{}, fmt.Errorf("select webhook: %w", err)
	}
	return row.toModel(), nil
}

const listWebhooks = `
SELECT ` + webhookColumns + ` FROM webhooks
WHERE account = $1 AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid))
ORDER BY created_at, id
LIMIT $2`

// Webhooks returns a page of the account's webhooks, oldest first, and the
// next page's cursor ("" on the last page). It returns ErrInvalidCursor for
// a cursor it did not make.
func (s *Store) Webhooks(ctx context.Context, account string, p Page) ([]model.Webhook, string, error) {
	limit := p.limit()
	createdAt, afterID, err := keysetAfter(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, _ := s.pool.Query(ctx, listWebhooks, account, limit+1, createdAt, afterID)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[webhookRow])
	if err != nil {
		return nil, "", fmt.Errorf("list webhooks: %w", err)
	}
	list, next := cut(list, limit, func(r webhookRow) string { return encodeCursor(r.CreatedAt, r.ID) })
	items := make([]model.Webhook, len(list))
	for i, r := range list {
		items[i] = r.toModel()
	}
	return items, next, nil
}

const updateWebhook = `
UPDATE webhooks SET url = $3, event_types = $4::text[], description = $5,
	disabled = $6::text IS NOT NULL, disabled_reason = $6::text, updated_at = now()
WHERE account = $1 AND id = $2
RETURNING ` + webhookColumns

// UpdateWebhook changes the account's webhook with the given id in one
// transaction: it locks the row, passes it to update, writes back URL,
// EventTypes, Description and DisabledReason (other changes are ignored;
// the secret never changes), and records webhook.updated by a with the
// names of the changed fields. If update returns an error, nothing is
// written and that error is returned unwrapped. It returns
// ErrWebhookNotFound as Webhook does.
func (s *Store) UpdateWebhook(ctx context.Context, account string, id uuid.UUID, a Audit, update func(*model.Webhook) error) (model.Webhook, error) {
	var (
		updated   model.Webhook
		updateErr error
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		before, err := webhook(ctx, tx, selectWebhook+` FOR UPDATE`, account, id)
		if err != nil {
			return err
		}
		w := before
		w.EventTypes = slices.Clone(before.EventTypes)
		if updateErr = update(&w); updateErr != nil {
			return updateErr
		}
		rows, _ := tx.Query(ctx, updateWebhook, account, id, w.URL, w.EventTypes, w.Description, nullIfEmpty(w.DisabledReason))
		row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[webhookRow])
		if err != nil {
			return err
		}
		updated = row.toModel()
		return insertWebhookAudit(ctx, tx, account, updated.ID, a, ActionWebhookUpdated,
			map[string]any{"changed": changedWebhookFields(before, updated)})
	})
	switch {
	case updateErr != nil:
		return model.Webhook{}, updateErr
	case errors.Is(err, ErrWebhookNotFound):
		return model.Webhook{}, ErrWebhookNotFound
	case err != nil:
		return model.Webhook{}, fmt.Errorf("update webhook: %w", err)
	}
	return updated, nil
}

// changedWebhookFields names, as the API does, the fields an update changed.
func changedWebhookFields(before, after model.Webhook) []string {
	changed := []string{}
	add := func(name string, differ bool) {
		if differ {
			changed = append(changed, name)
		}
	}
	add("url", before.URL != after.URL)
	add("event_types", !slices.Equal(before.EventTypes, after.EventTypes) || (before.EventTypes == nil) != (after.EventTypes == nil))
	add("description", before.Description != after.Description)
	add("disabled", before.DisabledReason != after.DisabledReason)
	return changed
}

const deleteWebhook = `DELETE FROM webhooks WHERE account = $1 AND id = $2 RETURNING url`

// DeleteWebhook deletes the account's webhook with the given id, its sealed
// secret and its deliveries, and records webhook.deleted by a, in one
// transaction. It returns ErrWebhookNotFound as Webhook does.
func (s *Store) DeleteWebhook(ctx context.Context, account string, id uuid.UUID, a Audit) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var url string
		if err := tx.QueryRow(ctx, deleteWebhook, account, id).Scan(&url); errors.Is(err, pgx.ErrNoRows) {
			return ErrWebhookNotFound
		} else if err != nil {
			return err
		}
		return insertWebhookAudit(ctx, tx, account, id.String(), a, ActionWebhookDeleted, map[string]any{"url": url})
	})
	switch {
	case errors.Is(err, ErrWebhookNotFound):
		return ErrWebhookNotFound
	case err != nil:
		return fmt.Errorf("delete webhook: %w", err)
	}
	return nil
}

const disableWebhook = `
UPDATE webhooks SET disabled = true, disabled_reason = $3, updated_at = now()
WHERE account = $1 AND id = $2 AND NOT disabled`

// DisableWebhook disables the account's webhook with the given id for
// reason (model.DisabledGone), recording webhook.disabled by a with details,
// in one transaction. It reports whether it did: false when the webhook is
// already disabled or gone.
func (s *Store) DisableWebhook(ctx context.Context, account, id, reason string, a Audit, details map[string]any) (bool, error) {
	var disabled bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, disableWebhook, account, id, reason)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		disabled = true
		return insertWebhookAudit(ctx, tx, account, id, a, ActionWebhookDisabled, details)
	})
	if err != nil {
		return false, fmt.Errorf("disable webhook: %w", err)
	}
	return disabled, nil
}
