-- Version grows with every change to a connection; the API's ETag is made from
-- it, so If-Match can refuse an edit based on a stale read.
ALTER TABLE connections ADD COLUMN version bigint NOT NULL DEFAULT 1;
-- When a test found the secret expired (Microsoft's AADSTS7000222); a new
-- secret clears it.
ALTER TABLE connections ADD COLUMN secret_expired_at timestamptz;

-- The history of connection tests: the last 50 per connection are kept.
CREATE TABLE connection_tests (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id uuid        NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    account       text        NOT NULL,
    tested_at     timestamptz NOT NULL DEFAULT now(),
    -- The diagnosis code of a failed test, NULL when it passed.
    code          text,
    result        jsonb       NOT NULL
);
CREATE INDEX connection_tests_connection_id_id_idx
    ON connection_tests (connection_id, id DESC);

-- Who did what to which connection. Append-only (the triggers below refuse
-- UPDATE, DELETE and TRUNCATE), and without a foreign key: the events of a
-- deleted connection stay readable. Details never hold a secret.
CREATE TABLE audit_events (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account       text        NOT NULL,
    connection_id uuid        NOT NULL,
    actor         text        NOT NULL,
    action        text        NOT NULL CHECK (action IN (
        'connection.created', 'connection.updated', 'connection.secret_rotated',
        'connection.tested', 'connection.deleted')),
    request_id    text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    details       jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_account_connection_id_id_idx
    ON audit_events (account, connection_id, id DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Responses to creates made with an Idempotency-Key, replayed for 24 hours.
-- The body is the connection resource as first returned: it never holds a secret.
CREATE TABLE idempotency_keys (
    account      text        NOT NULL,
    key          text        NOT NULL,
    -- SHA-256 of the request body: the same key with another body is refused.
    request_hash bytea       NOT NULL,
    status       integer     NOT NULL,
    location     text        NOT NULL DEFAULT '',
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (account, key)
);
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
