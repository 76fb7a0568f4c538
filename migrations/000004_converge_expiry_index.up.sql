-- 000002 once created connections_account_secret_expires_at_idx and was later
-- edited to drop it, so databases migrated before that edit still have the
-- index. Drop it wherever it exists, so every database has one schema.
DROP INDEX IF EXISTS connections_account_secret_expires_at_idx;
