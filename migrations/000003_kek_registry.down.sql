CREATE INDEX connections_secret_kek_id_idx ON connections (secret_kek_id);
DROP TRIGGER connections_register_kek_on_update ON connections;
DROP TRIGGER connections_register_kek_on_insert ON connections;
DROP FUNCTION register_kek_ids();
DROP TABLE encryption_keys_in_use;
