-- Older binaries compare plain SHA-256 hashes: keyed ones would only mismatch.
DELETE FROM idempotency_keys;
COMMENT ON COLUMN idempotency_keys.request_hash IS NULL;
DROP TABLE service_keys;
ALTER TABLE connections DROP CONSTRAINT connections_secret_expires_at_range;
