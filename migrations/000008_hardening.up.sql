-- A client secret expiry that JSON cannot carry (after the year 9999 in UTC,
-- such as "9999-12-31T23:59:59-23:59") made every read of the account's
-- connections fail. The API now refuses expiries more than 10 years ahead;
-- rows stored before lose theirs (the expiry becomes unknown), and the
-- database refuses such values from any writer, so that a row it accepted can
-- always be answered.
UPDATE connections SET secret_expires_at = NULL, version = version + 1, updated_at = now()
    WHERE secret_expires_at < '0001-01-01 00:00:00+00' OR secret_expires_at >= '10000-01-01 00:00:00+00';
ALTER TABLE connections ADD CONSTRAINT connections_secret_expires_at_range
    CHECK (secret_expires_at >= '0001-01-01 00:00:00+00' AND secret_expires_at < '10000-01-01 00:00:00+00');

-- Keys that dynconn itself needs, sealed as client secrets are: a random key,
-- encrypted with a data key that a key-encryption key of the keyring wraps,
-- bound to its name. The first server to start makes each; servers re-wrap
-- one they find under a key that is no longer the active one.
CREATE TABLE service_keys (
    name        text        PRIMARY KEY,
    ciphertext  bytea       NOT NULL,
    wrapped_dek bytea       NOT NULL,
    kek_id      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Idempotency request hashes are keyed now (HMAC-SHA256 with the service key
-- "idempotency_request_hash"): a plain SHA-256 of a body that holds the client
-- secret let whoever can read this table confirm a guessed secret. The plain
-- hashes cannot be compared with keyed ones and are what must not be kept, so
-- they go. A create retried across the upgrade is then not a replay; it names
-- the same connection, so it is answered 409 with the existing id.
DELETE FROM idempotency_keys;
COMMENT ON COLUMN idempotency_keys.request_hash IS
    'HMAC-SHA256 of the account, the key and the canonical request body, keyed with the service key idempotency_request_hash';
