package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// TestHistoryLength is how many test results are kept per connection.
const TestHistoryLength = 50

// TestRecord is the outcome of one test of a stored connection.
type TestRecord struct {
	// Status is the connection's status the result implies.
	Status model.Status
	// Result is the model.TestResult as JSON.
	Result []byte
	// Code is the diagnosis code of a failure, "" when the test passed.
	Code string
	// SecretExpired reports whether Microsoft said the secret has expired.
	SecretExpired bool
	// TestedVersion is the connection's Version that was tested. If the
	// connection changed while the test ran (a new secret, URL or client id),
	// the result is kept in the history but no longer describes the
	// connection, so its status is left alone.
	TestedVersion int64
}

// recordTest is the whole of RecordTestResult in one statement, so it costs
// one round trip and runs in one implicit transaction. The data-modifying
// CTEs all see the snapshot from before the statement: the trim keeps the
// newest TestHistoryLength-1 older results ($10 is that number, used as the
// offset of the newest result to drop) beside the one inserted.
const recordTest = `
WITH conn AS (
	SELECT id FROM connections WHERE account = $1 AND id = $2 FOR UPDATE
), updated AS (
	UPDATE connections c SET status = $3, last_test = $4,
		secret_expired_at = CASE WHEN $5 THEN COALESCE(c.secret_expired_at, now()) ELSE c.secret_expired_at END,
		version = c.version + 1, updated_at = now()
	FROM conn WHERE c.id = conn.id AND c.version = $6
), history AS (
	INSERT INTO connection_tests (connection_id, account, code, result)
	SELECT conn.id, $1, NULLIF($7, ''), $4 FROM conn
), trimmed AS (
	DELETE FROM connection_tests WHERE account = $1 AND connection_id = $2 AND id <= (
		SELECT id FROM connection_tests WHERE account = $1 AND connection_id = $2 ORDER BY id DESC OFFSET $10 LIMIT 1)
), event AS (
	INSERT INTO audit_events (account, connection_id, actor, action, request_id, details)
	SELECT $1, conn.id, $8, '` + ActionTested + `', $9, $11 FROM conn
)
SELECT count(*) FROM conn`

// RecordTestResult stores a test of the account's connection: on the
// connection (status, last_test, and the secret's expiry when Microsoft
// reported it), in its history (trimmed to TestHistoryLength), and as a
// connection.tested audit event by a — atomically. It returns ErrNotFound as
// Connection does (the connection may have been deleted while the test ran).
func (s *Store) RecordTestResult(ctx context.Context, account string, id uuid.UUID, a Audit, r TestRecord) error {
	outcome := r.Code
	if outcome == "" {
		outcome = "ok"
	}
	details, err := json.Marshal(map[string]string{"outcome": outcome})
	if err != nil {
		return fmt.Errorf("encode audit details: %w", err)
	}
	var found int
	err = s.pool.QueryRow(ctx, recordTest, account, id, string(r.Status), json.RawMessage(r.Result), r.SecretExpired,
		r.TestedVersion, r.Code, a.Actor, a.RequestID, TestHistoryLength-1, details).Scan(&found)
	if err != nil {
		return fmt.Errorf("record test result: %w", err)
	}
	if found == 0 {
		return ErrNotFound
	}
	return nil
}

const listTests = `
SELECT id, result FROM connection_tests
WHERE account = $1 AND connection_id = $2 AND ($3::bigint = 0 OR id < $3)
ORDER BY id DESC
LIMIT $4`

// TestResults returns a page of the test history of the account's
// connection, newest first, each a model.TestResult as JSON, and the next
// page's cursor ("" on the last). It returns ErrNotFound as Connection does.
func (s *Store) TestResults(ctx context.Context, account string, id uuid.UUID, p Page) ([][]byte, string, error) {
	before, err := decodeIDCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.Connection(ctx, account, id); err != nil {
		return nil, "", err
	}
	limit := p.limit()
	rows, _ := s.pool.Query(ctx, listTests, account, id, before, limit+1)
	type testRow struct {
		ID     int64           `db:"id"`
		Result json.RawMessage `db:"result"`
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[testRow])
	if err != nil {
		return nil, "", fmt.Errorf("list test results: %w", err)
	}
	list, next := cut(list, limit, func(r testRow) string { return encodeIDCursor(r.ID) })
	results := make([][]byte, len(list))
	for i, r := range list {
		results[i] = r.Result
	}
	return results, next, nil
}
