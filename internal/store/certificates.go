package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
)

// Certificates are written with the rest of a connection (CreateConnection,
// UpdateConnection); what is theirs alone is the record of a passing test of
// the pending next certificate, which its activation requires.

// recordNextCertificatePass is RecordNextCertificatePass in one statement.
const recordNextCertificatePass = `
WITH updated AS (
	UPDATE connections SET next_cert_passed_at = now(), version = version + 1, updated_at = now()
	WHERE account = $1 AND id = $2 AND next_cert_thumbprint_sha256 = $3
	RETURNING id
), event AS (
	INSERT INTO audit_events (account, connection_id, actor, action, request_id, details)
	SELECT $1, id, $4, '` + ActionTested + `', $5, $6 FROM updated
)
SELECT count(*) FROM updated`

// RecordNextCertificatePass records that a test with the account's
// connection's next certificate, the one with the given SHA-256 thumbprint,
// passed just now, and the connection.tested event by a. It returns
// ErrNotFound when the connection has no such next certificate any more (it
// was replaced, activated or deleted while the test ran): then nothing is
// recorded, since the test was of another certificate.
func (s *Store) RecordNextCertificatePass(ctx context.Context, account string, id uuid.UUID, thumbprintSHA256 string, a Audit) error {
	details, err := json.Marshal(map[string]string{"outcome": "ok", "credential": "next_certificate", "thumbprint_sha256": thumbprintSHA256})
	if err != nil {
		return fmt.Errorf("encode audit details: %w", err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, recordNextCertificatePass, account, id, thumbprintSHA256, a.Actor, a.RequestID, details).Scan(&n); err != nil {
		return fmt.Errorf("record next certificate pass: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
