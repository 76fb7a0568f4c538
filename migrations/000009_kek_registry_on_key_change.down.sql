DROP TRIGGER connections_register_kek_on_update ON connections;
CREATE TRIGGER connections_register_kek_on_update AFTER UPDATE ON connections
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION register_connection_kek_ids();
DROP FUNCTION register_connection_row_kek_ids();
