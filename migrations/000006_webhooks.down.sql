-- The webhooks' audit entries go with them: the append-only trigger steps
-- aside for this one delete.
ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change;
DELETE FROM audit_events WHERE webhook_id IS NOT NULL;
ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_change;
DROP INDEX audit_events_account_webhook_id_id_idx;
ALTER TABLE audit_events
    DROP CONSTRAINT audit_events_action_check,
    ADD CONSTRAINT audit_events_action_check CHECK (action IN (
        'connection.created', 'connection.updated', 'connection.secret_rotated',
        'connection.tested', 'connection.deleted')),
    DROP CONSTRAINT audit_events_subject_check,
    DROP COLUMN webhook_id,
    ALTER COLUMN connection_id SET NOT NULL;

DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
