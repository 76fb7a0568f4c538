-- A certificate connection has no secret to put back in the NOT NULL secret
-- columns: refuse rather than delete customers' connections.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM connections WHERE credential_type = 'certificate') THEN
        RAISE EXCEPTION 'certificate connections exist: move them back to client secrets or delete them before migrating below version 7';
    END IF;
END
$$;

-- Existing events may name the new actions, and audit_events is append-only:
-- the old rule holds for new rows only.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check CHECK (action IN (
    'connection.created', 'connection.updated', 'connection.secret_rotated',
    'connection.tested', 'connection.deleted',
    'webhook.created', 'webhook.updated', 'webhook.deleted', 'webhook.disabled')) NOT VALID;

DROP TRIGGER connections_register_kek_on_insert ON connections;
DROP TRIGGER connections_register_kek_on_update ON connections;
CREATE TRIGGER connections_register_kek_on_insert AFTER INSERT ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_kek_ids();
CREATE TRIGGER connections_register_kek_on_update AFTER UPDATE ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_kek_ids();
DROP FUNCTION register_connection_kek_ids();

ALTER TABLE connections
    DROP CONSTRAINT connections_one_credential,
    DROP CONSTRAINT connections_next_cert_whole,
    DROP CONSTRAINT connections_cert_whole,
    DROP CONSTRAINT connections_secret_whole,
    DROP COLUMN next_cert_passed_at,
    DROP COLUMN next_cert_key_kek_id,
    DROP COLUMN next_cert_key_wrapped_dek,
    DROP COLUMN next_cert_key_ciphertext,
    DROP COLUMN next_cert_not_after,
    DROP COLUMN next_cert_not_before,
    DROP COLUMN next_cert_thumbprint_sha256,
    DROP COLUMN next_cert_thumbprint,
    DROP COLUMN next_cert_der,
    DROP COLUMN cert_key_kek_id,
    DROP COLUMN cert_key_wrapped_dek,
    DROP COLUMN cert_key_ciphertext,
    DROP COLUMN cert_not_after,
    DROP COLUMN cert_not_before,
    DROP COLUMN cert_thumbprint_sha256,
    DROP COLUMN cert_thumbprint,
    DROP COLUMN cert_der,
    ALTER COLUMN secret_updated_at SET NOT NULL,
    ALTER COLUMN secret_kek_id SET NOT NULL,
    ALTER COLUMN secret_wrapped_dek SET NOT NULL,
    ALTER COLUMN secret_ciphertext SET NOT NULL,
    DROP COLUMN credential_type;
