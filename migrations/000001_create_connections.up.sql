-- A customer's Dynamics 365 connection. The client secret is stored only in
-- envelope-encrypted form: the ciphertext, its data key wrapped by a
-- key-encryption key (KEK), and that KEK's id. Plaintext never reaches here.
CREATE TABLE connections (
    id                 uuid        PRIMARY KEY,
    account            text        NOT NULL,
    name               text        NOT NULL DEFAULT '',
    -- Normalised by the API: https://host, lower case, no path.
    instance_url       text        NOT NULL,
    cloud              text        NOT NULL
        CHECK (cloud IN ('public', 'gcc', 'gcc_high', 'dod', 'china')),
    client_id          uuid        NOT NULL,
    -- NULL: discover the tenant from the instance when testing.
    tenant_id          uuid,

    secret_ciphertext  bytea       NOT NULL,
    secret_wrapped_dek bytea       NOT NULL,
    secret_kek_id      text        NOT NULL,
    secret_updated_at  timestamptz NOT NULL,
    -- What the customer told us about the secret's expiry in Entra ID, if anything.
    secret_expires_at  timestamptz,

    status             text        NOT NULL DEFAULT 'untested'
        CHECK (status IN ('untested', 'connected', 'failing')),
    -- The latest test result (the API's TestResult JSON), NULL until tested.
    last_test          jsonb,

    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),

    -- One connection per app registration and instance in an account: a second
    -- create is a 409 that names this row's id. The constraint name is relied on
    -- by internal/store.
    CONSTRAINT connections_account_instance_url_client_id_key
        UNIQUE (account, instance_url, client_id)
);

-- Keyset pagination: WHERE account = $1 AND (created_at, id) > ($2, $3)
-- ORDER BY created_at, id reads this index in order and stops at the limit.
CREATE INDEX connections_account_created_at_id_idx
    ON connections (account, created_at, id);

-- Which KEKs stored rows use (readiness, key rotation). Dropped again in
-- 000003: the encryption_keys_in_use table, kept by triggers, answers that now.
CREATE INDEX connections_secret_kek_id_idx
    ON connections (secret_kek_id);
