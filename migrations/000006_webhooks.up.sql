-- A customer's webhook endpoint. The signing secret ("whsec_…") is stored
-- only envelope-encrypted, in the same three columns as a connection's
-- client secret, so the KEK registry's trigger function and key rotation
-- treat both alike.
CREATE TABLE webhooks (
    id                 uuid        PRIMARY KEY,
    account            text        NOT NULL,
    url                text        NOT NULL CHECK (length(url) <= 2048),
    -- NULL: every event type, including types added later.
    event_types        text[]      CHECK (cardinality(event_types) > 0),
    description        text        NOT NULL DEFAULT '',
    disabled           boolean     NOT NULL DEFAULT false,
    -- Why it is disabled: 'api' (PATCH), 'gone' (the endpoint answered 410).
    disabled_reason    text        CHECK (disabled_reason IN ('api', 'gone')),

    secret_ciphertext  bytea       NOT NULL,
    secret_wrapped_dek bytea       NOT NULL,
    secret_kek_id      text        NOT NULL,

    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),

    CHECK (disabled = (disabled_reason IS NOT NULL))
);

-- Keyset pagination of GET /webhooks, and the dispatcher's look-up of an
-- account's endpoints (an account has at most ten).
CREATE INDEX webhooks_account_created_at_id_idx ON webhooks (account, created_at, id);

-- The KEK registry of 000003 covers webhook secrets too: the same trigger
-- function reads secret_kek_id from the new rows.
CREATE TRIGGER webhooks_register_kek_on_insert AFTER INSERT ON webhooks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_kek_ids();
CREATE TRIGGER webhooks_register_kek_on_update AFTER UPDATE ON webhooks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_kek_ids();

-- One row per (event, endpoint): the outbox dispatcher creates it with the
-- River job that delivers it, and every attempt updates it. It goes when its
-- event is pruned or its endpoint deleted.
CREATE TABLE webhook_deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        bigint      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    account         text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    status          text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed')),
    -- The latest attempt: the receiver's status (NULL: no answer), why it
    -- failed, how long it took.
    http_status     integer,
    error           text,
    duration_ms     integer,
    -- When the next attempt is due; NULL once delivered or failed.
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_event_id_webhook_id_key UNIQUE (event_id, webhook_id)
);
-- GET /webhooks/{id}/deliveries, newest first.
CREATE INDEX webhook_deliveries_webhook_id_id_idx ON webhook_deliveries (webhook_id, id DESC);

-- Changes to webhooks join the audit trail: an entry is about a connection or
-- about a webhook, never both.
ALTER TABLE audit_events
    ALTER COLUMN connection_id DROP NOT NULL,
    ADD COLUMN webhook_id uuid,
    ADD CONSTRAINT audit_events_subject_check CHECK (num_nonnulls(connection_id, webhook_id) = 1),
    DROP CONSTRAINT audit_events_action_check,
    ADD CONSTRAINT audit_events_action_check CHECK (action IN (
        'connection.created', 'connection.updated', 'connection.secret_rotated',
        'connection.tested', 'connection.deleted',
        'webhook.created', 'webhook.updated', 'webhook.deleted', 'webhook.disabled'));
CREATE INDEX audit_events_account_webhook_id_id_idx
    ON audit_events (account, webhook_id, id DESC) WHERE webhook_id IS NOT NULL;
