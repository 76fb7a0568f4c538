-- The KEK registry's update trigger of 000007 ran on every UPDATE of
-- connections, collecting a transition table and running an INSERT, though
-- most updates (a test's claim and record, status, renames) write no key id.
-- A row trigger that fires only when a key-id column changes keeps the
-- registry as exact: an id a row keeps was registered when it was written,
-- and the prune never forgets an id that a row still uses.
CREATE FUNCTION register_connection_row_kek_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO encryption_keys_in_use (kek_id)
        SELECT DISTINCT k.kek_id
        FROM (VALUES (NEW.secret_kek_id), (NEW.cert_key_kek_id), (NEW.next_cert_key_kek_id)) AS k (kek_id)
        WHERE k.kek_id IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
DROP TRIGGER connections_register_kek_on_update ON connections;
CREATE TRIGGER connections_register_kek_on_update
    AFTER UPDATE OF secret_kek_id, cert_key_kek_id, next_cert_key_kek_id ON connections
    FOR EACH ROW
    WHEN (NEW.secret_kek_id IS DISTINCT FROM OLD.secret_kek_id
        OR NEW.cert_key_kek_id IS DISTINCT FROM OLD.cert_key_kek_id
        OR NEW.next_cert_key_kek_id IS DISTINCT FROM OLD.next_cert_key_kek_id)
    EXECUTE FUNCTION register_connection_row_kek_ids();
