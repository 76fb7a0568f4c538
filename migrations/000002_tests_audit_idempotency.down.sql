DROP TABLE idempotency_keys;
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE connection_tests;
ALTER TABLE connections DROP COLUMN secret_expired_at;
ALTER TABLE connections DROP COLUMN version;
