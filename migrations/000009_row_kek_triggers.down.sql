-- Back to the statement triggers of 000006 and 000007.
DROP TRIGGER connections_register_kek_on_insert ON connections;
DROP TRIGGER connections_register_kek_on_update ON connections;
DROP TRIGGER webhooks_register_kek_on_insert ON webhooks;
DROP TRIGGER webhooks_register_kek_on_update ON webhooks;
DROP FUNCTION register_connection_row_kek_ids();
DROP FUNCTION register_webhook_row_kek_ids();

CREATE FUNCTION register_kek_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO encryption_keys_in_use (kek_id)
        SELECT DISTINCT secret_kek_id FROM new_rows
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE FUNCTION register_connection_kek_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO encryption_keys_in_use (kek_id)
        SELECT DISTINCT k.kek_id
        FROM new_rows,
             LATERAL (VALUES (secret_kek_id), (cert_key_kek_id), (next_cert_key_kek_id)) AS k (kek_id)
        WHERE k.kek_id IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER connections_register_kek_on_insert AFTER INSERT ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_connection_kek_ids();
CREATE TRIGGER connections_register_kek_on_update AFTER UPDATE ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_connection_kek_ids();
CREATE TRIGGER webhooks_register_kek_on_insert AFTER INSERT ON webhooks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_kek_ids();
CREATE TRIGGER webhooks_register_kek_on_update AFTER UPDATE ON webhooks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_kek_ids();
