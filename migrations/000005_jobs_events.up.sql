-- The event feed (GET /events) and the webhook outbox: what happened to an
-- account's connections, in the contract's shape. Written in the transaction
-- of the change it reports. Unlike audit_events (who did what, kept for good,
-- append-only) these are pruned after 30 days, and the webhook dispatcher
-- flips `dispatched`.
CREATE TABLE events (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id     text        NOT NULL UNIQUE,      -- "evt_" + 32 hex (a UUIDv7 without dashes)
    account       text        NOT NULL,
    type          text        NOT NULL,             -- connection.created, …, webhook.ping
    connection_id uuid,                             -- NULL for webhook.ping
    data          jsonb       NOT NULL,             -- the contract's data object
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction's id. GET /events pages by (txid, id) and shows
    -- only events of transactions older than every running one, so an event
    -- that commits late never lands behind a cursor already handed out.
    txid          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- The webhook outbox: false until the dispatcher has created its deliveries.
    dispatched    boolean     NOT NULL DEFAULT false
);
CREATE INDEX events_undispatched_idx ON events (id) WHERE NOT dispatched;
CREATE INDEX events_account_txid_id_idx ON events (account, txid, id);
CREATE INDEX events_created_at_idx ON events (created_at);

-- A new event id: "evt_" and a UUIDv7 (time-ordered) as 32 hex digits.
-- PostgreSQL 15 has no uuidv7(): take a random UUID, put the Unix time in
-- milliseconds in its first 48 bits and turn its version 4 into 7.
CREATE FUNCTION event_public_id() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'evt_' || encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')
$$;

-- Scheduled re-checks and status tracking.
ALTER TABLE connections
    -- When the scheduler re-tests it next; NULL until it first spreads it
    -- over an interval. Every recorded test moves it.
    ADD COLUMN next_check_at      timestamptz,
    -- When a test result was last recorded, by any trigger.
    ADD COLUMN last_checked_at    timestamptz,
    -- Scheduled failures in a row without a setup step (throttling, outages):
    -- status turns failing at the third.
    ADD COLUMN transient_failures integer     NOT NULL DEFAULT 0,
    -- Since when status has its value; NULL for rows from before this column.
    ADD COLUMN status_since       timestamptz,
    -- While set and in the future, a test of this connection is running on
    -- some replica: others wait for its result instead of starting their own.
    ADD COLUMN test_lease_until   timestamptz,
    -- The credential expiry that expiry notices were last sent for, and the
    -- last notice sent for it: 30, 7 or 1 (days before), 0 (expired).
    ADD COLUMN expiry_notice_for  timestamptz,
    ADD COLUMN expiry_notice_days smallint;
ALTER TABLE connections ALTER COLUMN status_since SET DEFAULT now();
CREATE INDEX connections_next_check_at_idx ON connections (next_check_at);

-- The per-account rate limit of test endpoints, shared by every replica: a
-- token bucket kept as its theoretical arrival time (GCRA). A test is allowed
-- while max(tat, now) + interval stays within burst × interval of now.
CREATE TABLE test_rate_limits (
    account text        PRIMARY KEY,
    tat     timestamptz NOT NULL
);

-- Which expiry notice is due for a credential that expires at expires_at:
-- 30, 7 or 1 (days before, the smallest threshold reached), 0 once it has
-- expired, NULL while it is more than 30 days away. The store compares it
-- with expiry_notice_days, so each notice goes out once per credential.
CREATE FUNCTION expiry_notice_due(expires_at timestamptz) RETURNS smallint
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN expires_at IS NULL THEN NULL
        WHEN expires_at <= now() THEN 0
        WHEN expires_at <= now() + interval '1 day' THEN 1
        WHEN expires_at <= now() + interval '7 days' THEN 7
        WHEN expires_at <= now() + interval '30 days' THEN 30
    END
$$;

-- t as RFC 3339 in UTC, like the API's JSON times (Go's time.Time): event
-- data built in SQL must not depend on the session's TimeZone.
CREATE FUNCTION rfc3339(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT rtrim(rtrim(to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '0'), '.') || 'Z'
$$;
