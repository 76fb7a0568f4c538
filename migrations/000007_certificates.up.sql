-- Certificate credentials (design.md, "Certificate credentials"). A connection
-- authenticates with a client secret or with a certificate whose key pair
-- dynconn generated: the public certificate is kept in the clear (the
-- customer uploads it to the app registration), the private key (PKCS #8) is
-- sealed exactly like a secret: its own data key, associated data binding it
-- to the account, the connection and the slot (current or next, so a sealed
-- key cannot be moved from one to the other), the KEK's id recorded.
--
-- A pending next certificate (renewal, or moving a secret connection to
-- certificates) has the same columns under next_cert_; next_cert_passed_at is
-- when a test with it last passed, which activation requires.
ALTER TABLE connections
    ADD COLUMN credential_type text NOT NULL DEFAULT 'client_secret'
        CHECK (credential_type IN ('client_secret', 'certificate')),
    ALTER COLUMN secret_ciphertext DROP NOT NULL,
    ALTER COLUMN secret_wrapped_dek DROP NOT NULL,
    ALTER COLUMN secret_kek_id DROP NOT NULL,
    ALTER COLUMN secret_updated_at DROP NOT NULL,

    ADD COLUMN cert_der                    bytea,
    -- SHA-1 of the DER in upper-case hex, as the Azure portal shows it.
    ADD COLUMN cert_thumbprint             text,
    ADD COLUMN cert_thumbprint_sha256      text,
    ADD COLUMN cert_not_before             timestamptz,
    ADD COLUMN cert_not_after              timestamptz,
    ADD COLUMN cert_key_ciphertext         bytea,
    ADD COLUMN cert_key_wrapped_dek        bytea,
    ADD COLUMN cert_key_kek_id             text,

    ADD COLUMN next_cert_der               bytea,
    ADD COLUMN next_cert_thumbprint        text,
    ADD COLUMN next_cert_thumbprint_sha256 text,
    ADD COLUMN next_cert_not_before        timestamptz,
    ADD COLUMN next_cert_not_after         timestamptz,
    ADD COLUMN next_cert_key_ciphertext    bytea,
    ADD COLUMN next_cert_key_wrapped_dek   bytea,
    ADD COLUMN next_cert_key_kek_id        text,
    ADD COLUMN next_cert_passed_at         timestamptz,

    -- A sealed value is whole or absent.
    ADD CONSTRAINT connections_secret_whole CHECK (
        num_nulls(secret_ciphertext, secret_wrapped_dek, secret_kek_id, secret_updated_at) IN (0, 4)),
    ADD CONSTRAINT connections_cert_whole CHECK (
        num_nulls(cert_der, cert_thumbprint, cert_thumbprint_sha256, cert_not_before, cert_not_after,
                  cert_key_ciphertext, cert_key_wrapped_dek, cert_key_kek_id) IN (0, 8)),
    ADD CONSTRAINT connections_next_cert_whole CHECK (
        num_nulls(next_cert_der, next_cert_thumbprint, next_cert_thumbprint_sha256, next_cert_not_before,
                  next_cert_not_after, next_cert_key_ciphertext, next_cert_key_wrapped_dek,
                  next_cert_key_kek_id) IN (0, 8)
        AND (next_cert_der IS NOT NULL OR next_cert_passed_at IS NULL)),
    -- Exactly the credential of its type: a certificate connection holds no
    -- secret (nor anything about one), a secret connection no certificate.
    ADD CONSTRAINT connections_one_credential CHECK (CASE credential_type
        WHEN 'client_secret' THEN secret_ciphertext IS NOT NULL AND cert_der IS NULL
        ELSE secret_ciphertext IS NULL AND secret_expires_at IS NULL AND secret_expired_at IS NULL
             AND cert_der IS NOT NULL END);

-- The KEK registry of 000003 learns the new key-id columns, so readiness and
-- `keys status` cover private keys too. Connections get a trigger function
-- of their own: register_kek_ids() stays as it is for other tables whose
-- rows hold one secret_kek_id (webhooks). A NULL (a certificate connection's
-- secret, an absent certificate) names no key.
CREATE FUNCTION register_connection_kek_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- DO NOTHING takes no lock on an existing row, so writers never queue on
    -- the active key's row; the prune takes a SHARE lock on connections instead.
    INSERT INTO encryption_keys_in_use (kek_id)
        SELECT DISTINCT k.kek_id
        FROM new_rows,
             LATERAL (VALUES (secret_kek_id), (cert_key_kek_id), (next_cert_key_kek_id)) AS k (kek_id)
        WHERE k.kek_id IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
DROP TRIGGER connections_register_kek_on_insert ON connections;
DROP TRIGGER connections_register_kek_on_update ON connections;
CREATE TRIGGER connections_register_kek_on_insert AFTER INSERT ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_connection_kek_ids();
CREATE TRIGGER connections_register_kek_on_update AFTER UPDATE ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_connection_kek_ids();

-- The audit trail names the certificate changes. The list keeps every action
-- allowed before, including the webhook actions of 000006, which a parallel
-- branch adds: a CHECK cannot be extended, only replaced.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check CHECK (action IN (
    'connection.created', 'connection.updated', 'connection.secret_rotated',
    'connection.tested', 'connection.deleted',
    'webhook.created', 'webhook.updated', 'webhook.deleted', 'webhook.disabled',
    'connection.next_certificate_created', 'connection.certificate_activated'));
