-- The ids of the key-encryption keys that stored secrets use, kept by
-- triggers instead of an index on connections.secret_kek_id. An index on that
-- column would make every key rotation update write every index of the table
-- (no HOT update is possible when an indexed column changes), and rotation
-- changes exactly that column. Readiness reads this small table every second.
--
-- It may also hold ids no secret uses any more (their last secret was
-- re-wrapped or deleted); `keys rotate` prunes those, and readiness checks an
-- id against the rows before it reports it missing.
CREATE TABLE encryption_keys_in_use (
    kek_id text PRIMARY KEY
);
INSERT INTO encryption_keys_in_use (kek_id)
    SELECT DISTINCT secret_kek_id FROM connections;

CREATE FUNCTION register_kek_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- DO NOTHING takes no lock on an existing row, so writers never queue on
    -- the active key's row; the prune takes a SHARE lock on connections instead.
    INSERT INTO encryption_keys_in_use (kek_id)
        SELECT DISTINCT secret_kek_id FROM new_rows
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER connections_register_kek_on_insert AFTER INSERT ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_kek_ids();
CREATE TRIGGER connections_register_kek_on_update AFTER UPDATE ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_kek_ids();

DROP INDEX connections_secret_kek_id_idx;
