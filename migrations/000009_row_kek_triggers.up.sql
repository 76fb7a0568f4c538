-- The KEK registry of 000003 and 000007 was kept by statement triggers with
-- transition tables. Those fire on every UPDATE of connections, and most
-- updates never touch a key id: a test's claim and its record, the scheduler
-- moving next_check_at, edits of the name. Each firing gathers the updated
-- rows into a tuplestore and runs plpgsql, about 75 µs per statement here,
-- which was a third of a test's database time.
--
-- Row triggers with a WHEN clause cost nothing when the clause is false (it
-- is evaluated in C, before any plpgsql runs), so updates fire them only when
-- a key id changes: a new or rotated secret or certificate key. Key rotation
-- changes the id of every row it touches, so it fires them once per row, one
-- statement each.
CREATE FUNCTION register_connection_row_kek_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- NOT EXISTS first: a registered id (nearly always) costs a primary-key
    -- probe, not an attempted insert. DO NOTHING takes no lock on an existing
    -- row, so writers never queue on a key's row; the prune takes a SHARE
    -- lock on the tables instead.
    INSERT INTO encryption_keys_in_use (kek_id)
        SELECT id FROM unnest(ARRAY[NEW.secret_kek_id, NEW.cert_key_kek_id, NEW.next_cert_key_kek_id]) AS id
        WHERE id IS NOT NULL AND NOT EXISTS (SELECT FROM encryption_keys_in_use k WHERE k.kek_id = id)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION register_webhook_row_kek_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO encryption_keys_in_use (kek_id)
        SELECT NEW.secret_kek_id
        WHERE NOT EXISTS (SELECT FROM encryption_keys_in_use k WHERE k.kek_id = NEW.secret_kek_id)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

DROP TRIGGER connections_register_kek_on_insert ON connections;
DROP TRIGGER connections_register_kek_on_update ON connections;
DROP FUNCTION register_connection_kek_ids();
CREATE TRIGGER connections_register_kek_on_insert AFTER INSERT ON connections
    FOR EACH ROW EXECUTE FUNCTION register_connection_row_kek_ids();
CREATE TRIGGER connections_register_kek_on_update AFTER UPDATE ON connections
    FOR EACH ROW WHEN (NEW.secret_kek_id IS DISTINCT FROM OLD.secret_kek_id
        OR NEW.cert_key_kek_id IS DISTINCT FROM OLD.cert_key_kek_id
        OR NEW.next_cert_key_kek_id IS DISTINCT FROM OLD.next_cert_key_kek_id)
    EXECUTE FUNCTION register_connection_row_kek_ids();

DROP TRIGGER webhooks_register_kek_on_insert ON webhooks;
DROP TRIGGER webhooks_register_kek_on_update ON webhooks;
DROP FUNCTION register_kek_ids();
CREATE TRIGGER webhooks_register_kek_on_insert AFTER INSERT ON webhooks
    FOR EACH ROW EXECUTE FUNCTION register_webhook_row_kek_ids();
CREATE TRIGGER webhooks_register_kek_on_update AFTER UPDATE ON webhooks
    FOR EACH ROW WHEN (NEW.secret_kek_id IS DISTINCT FROM OLD.secret_kek_id)
    EXECUTE FUNCTION register_webhook_row_kek_ids();
