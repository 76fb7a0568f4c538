package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
	// Failure is the result's error, nil when the test passed.
	Failure *model.TestError
	// SecretExpired reports whether Microsoft said the secret has expired.
	SecretExpired bool
	// Trigger says who asked for the test. Manual tests are audited (by the
	// Audit given), scheduled ones are not: nobody acted.
	Trigger model.Trigger
	// Transient marks a scheduled failure that is nobody's fault
	// (model.TestResult.Transient): it changes Status only once
	// TransientFailuresToFail of them came in a row.
	Transient bool
	// TestedVersion is the connection's Version that was tested. If the
	// connection changed while the test ran (a new secret, URL or client id),
	// the result is kept in the history but no longer describes the
	// connection, so the connection is left alone.
	TestedVersion int64
	// RecheckInterval schedules the next re-check about this far from now
	// (±10 %); 0 means re-checks are off and leaves none scheduled.
	RecheckInterval time.Duration
}

// TransientFailuresToFail is how many scheduled transient failures in a row
// turn a connection failing.
const TransientFailuresToFail = 3

// Recorded is what recording a test did to the connection.
type Recorded struct {
	// From and To are its status before and after (equal: no change).
	From, To model.Status
	// TransientFailures is how many scheduled transient failures in a row it
	// has had, this one included (0 after anything else).
	TransientFailures int
}

// recordTest is the whole of RecordTestResult in one statement, so it costs
// one round trip and runs in one implicit transaction. The data-modifying
// CTEs all see the snapshot from before the statement, and the row lock of
// conn orders concurrent records: the trim keeps the newest
// TestHistoryLength-1 older results ($10 is that number, used as the offset
// of the newest result to drop) beside the one inserted. outcome works out
// the new status: unchanged when the connection was edited while the test
// ran ($6 is the tested version) or for a transient failure short of $13 in
// a row, else the result's ($3).
const recordTest = `
WITH conn AS (
	SELECT id, status, transient_failures, version FROM connections WHERE account = $1 AND id = $2 FOR UPDATE
), outcome AS (
	SELECT id, status AS old_status, version = $6 AS current,
		CASE WHEN version <> $6 OR ($12 AND transient_failures + 1 < $13) THEN status ELSE $3 END AS new_status,
		CASE WHEN $12 THEN transient_failures + 1 ELSE 0 END AS failures
	FROM conn
), updated AS (
	UPDATE connections c SET test_lease_until = NULL,
		status = o.new_status,
		status_since = CASE WHEN o.new_status <> o.old_status THEN now() ELSE c.status_since END,
		last_test = CASE WHEN o.current THEN $4 ELSE c.last_test END,
		secret_expired_at = CASE WHEN o.current AND $5 THEN COALESCE(c.secret_expired_at, now()) ELSE c.secret_expired_at END,
		transient_failures = CASE WHEN o.current THEN o.failures ELSE c.transient_failures END,
		last_checked_at = CASE WHEN o.current THEN now() ELSE c.last_checked_at END,
		next_check_at = CASE WHEN NOT o.current THEN c.next_check_at
			ELSE now() + $14::interval * (0.9 + 0.2 * random()) END,
		version = CASE WHEN o.current THEN c.version + 1 ELSE c.version END,
		updated_at = CASE WHEN o.current THEN now() ELSE c.updated_at END
	FROM outcome o WHERE c.id = o.id
), history AS (
	INSERT INTO connection_tests (connection_id, account, code, result)
	SELECT conn.id, $1, $7, $4 FROM conn
), trimmed AS (
	DELETE FROM connection_tests WHERE account = $1 AND connection_id = $2 AND id <= (
		SELECT id FROM connection_tests WHERE account = $1 AND connection_id = $2 ORDER BY id DESC OFFSET $10 LIMIT 1)
), audit AS (
	INSERT INTO audit_events (account, connection_id, actor, action, request_id, details)
	SELECT $1, conn.id, $8, '` + ActionTested + `', $9, $11 FROM conn WHERE $15 = '` + string(model.TriggerManual) + `'
), event AS (
	INSERT INTO events (public_id, account, type, connection_id, data)
	SELECT event_public_id(), $1, '` + EventConnectionStatusChanged + `', o.id, jsonb_build_object(
		'connection_id', o.id, 'from', o.old_status, 'to', o.new_status,
		'code', $7, 'setup_step', $16::text, 'trigger', $15)
	FROM outcome o WHERE o.new_status <> o.old_status
)
SELECT old_status, new_status, failures FROM outcome`

// RecordTestResult stores a test of the account's connection: on the
// connection (status, last_test, the secret's expiry when Microsoft reported
// it, when it was checked and when it is checked next), in its history
// (trimmed to TestHistoryLength), as a connection.tested audit event by a for
// a manual test, and as a connection.status_changed event when the status
// changed — atomically. It ends the test's claim (ClaimTest). It returns
// ErrNotFound as Connection does (the connection may have been deleted while
// the test ran).
func (s *Store) RecordTestResult(ctx context.Context, account string, id uuid.UUID, a Audit, r TestRecord) (Recorded, error) {
	outcome := "ok"
	var code, step *string
	if r.Failure != nil {
		outcome, code, step = r.Failure.Code, &r.Failure.Code, r.Failure.SetupStep
	}
	details, err := json.Marshal(map[string]string{"outcome": outcome})
	if err != nil {
		return Recorded{}, fmt.Errorf("encode audit details: %w", err)
	}
	trigger := r.Trigger
	if trigger == "" {
		trigger = model.TriggerManual
	}
	var interval *time.Duration
	if r.RecheckInterval > 0 {
		interval = &r.RecheckInterval
	}
	var from, to string
	var failures int
	err = s.pool.QueryRow(ctx, recordTest, account, id, string(r.Status), json.RawMessage(r.Result), r.SecretExpired,
		r.TestedVersion, code, a.Actor, a.RequestID, TestHistoryLength-1, details,
		r.Transient && trigger == model.TriggerScheduled, TransientFailuresToFail, interval, string(trigger), step).Scan(&from, &to, &failures)
	if errors.Is(err, pgx.ErrNoRows) {
		return Recorded{}, ErrNotFound
	}
	if err != nil {
		return Recorded{}, fmt.Errorf("record test result: %w", err)
	}
	return Recorded{From: model.Status(from), To: model.Status(to), TransientFailures: failures}, nil
}

// RateLimit is a token bucket: a burst of Burst tests, then one every Every.
type RateLimit struct {
	Every time.Duration
	Burst int
}

// RateLimitedError is returned when the account's tests are used up.
type RateLimitedError struct {
	// RetryAfter is how long until a test is allowed again.
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited: retry after %s", e.RetryAfter)
}

// takeToken is the token bucket of test_rate_limits (GCRA, see migration
// 000005) as a CTE over the account $1, the interval $3 and the burst $4,
// taking a token for each row of the relation %s (one row, or none to take
// nothing). When the bucket is empty it updates nothing and returns no row.
const takeToken = `token AS (
	INSERT INTO test_rate_limits AS b (account, tat)
	SELECT $1, now() + $3::interval FROM %s
	ON CONFLICT (account) DO UPDATE SET tat = GREATEST(b.tat, now()) + $3::interval
	WHERE GREATEST(b.tat, now()) <= now() + $3::interval * ($4 - 1)
	RETURNING tat
)`

// tokenWait is how long until the bucket of $1 has a token again, from the
// snapshot before the statement.
const tokenWait = `(SELECT GREATEST(tat - now() - $3::interval * ($4 - 1), interval '0')
	FROM test_rate_limits WHERE account = $1)`

// TakeTestToken takes a test from the account's rate limit, which every
// replica shares, or returns a *RateLimitedError.
func (s *Store) TakeTestToken(ctx context.Context, account string, limit RateLimit) error {
	q := `WITH ` + fmt.Sprintf(takeToken, `(SELECT WHERE $2::uuid IS NULL) AS one`) + `
SELECT EXISTS (SELECT FROM token), COALESCE(` + tokenWait + `, interval '0')`
	var allowed bool
	var wait time.Duration
	if err := s.pool.QueryRow(ctx, q, account, nil, limit.Every, limit.Burst).Scan(&allowed, &wait); err != nil {
		return fmt.Errorf("take test token: %w", err)
	}
	if !allowed {
		return &RateLimitedError{RetryAfter: wait}
	}
	return nil
}

// TestClaim is what ClaimTest found.
type TestClaim struct {
	Connection model.Connection
	// Claimed reports that the caller runs the test and must record it
	// (RecordTestResult) or release it (ReleaseTest). When false, a test of
	// the connection is running elsewhere: wait for it (WaitForTest).
	Claimed bool
	// Since is the database's time of the claim. A result recorded after it
	// answers a caller that waits.
	Since time.Time
}

// claimTest reads the connection ($1, $2), takes a token from the account's
// rate limit when $3 is not NULL, and claims the connection's test for $5
// unless another claim holds it or the rate limit refused — in one
// statement, so that the test endpoint costs one round trip before its run
// and one (recordTest) after. A claim is a lease: if its holder dies, it ends
// by itself after $5.
var claimTest = `
WITH conn AS (
	SELECT ` + connectionColumns + ` FROM connections WHERE account = $1 AND id = $2
), limited AS (
	SELECT FROM conn WHERE $3::interval IS NOT NULL
), ` + fmt.Sprintf(takeToken, `limited`) + `, allowed AS (
	SELECT FROM conn WHERE $3::interval IS NULL OR EXISTS (SELECT FROM token)
), claim AS (
	UPDATE connections c SET test_lease_until = now() + $5::interval
	FROM conn WHERE c.id = conn.id AND $5::interval IS NOT NULL AND EXISTS (SELECT FROM allowed)
		AND (c.test_lease_until IS NULL OR c.test_lease_until < now())
	RETURNING c.id
)
SELECT ` + connectionColumns + `, EXISTS (SELECT FROM allowed) AS allowed, EXISTS (SELECT FROM claim) AS claimed,
	now() AS since, COALESCE(` + tokenWait + `, interval '0') AS wait
FROM conn`

// ClaimTest reads the account's connection for a test, takes a token from
// the account's rate limit when limit is not nil (a manual test), and, when
// lease is positive, claims the connection's test for at most lease, so that
// concurrent tests of one connection on any replica share one run. It returns
// ErrNotFound as Connection does and a *RateLimitedError when the rate limit
// refuses (then nothing is claimed).
func (s *Store) ClaimTest(ctx context.Context, account string, id uuid.UUID, limit *RateLimit, lease time.Duration) (TestClaim, error) {
	var every *time.Duration
	burst := 0
	if limit != nil {
		every, burst = &limit.Every, limit.Burst
	}
	var leaseArg *time.Duration
	if lease > 0 {
		leaseArg = &lease
	}
	rows, _ := s.pool.Query(ctx, claimTest, account, id, every, burst, leaseArg)
	type claimRow struct {
		connectionRow
		Allowed bool          `db:"allowed"`
		Claimed bool          `db:"claimed"`
		Since   time.Time     `db:"since"`
		Wait    time.Duration `db:"wait"`
	}
	row, err := pgx.CollectOneRow(rows, pgx.RowToStructByName[claimRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return TestClaim{}, ErrNotFound
	}
	if err != nil {
		return TestClaim{}, fmt.Errorf("claim test: %w", err)
	}
	if !row.Allowed {
		return TestClaim{}, &RateLimitedError{RetryAfter: row.Wait}
	}
	return TestClaim{Connection: row.toModel(), Claimed: row.Claimed, Since: row.Since}, nil
}

// ReleaseTest ends a claim whose test will not be recorded (it could not
// run), so that a waiting caller need not wait for the lease to run out.
func (s *Store) ReleaseTest(ctx context.Context, account string, id uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `UPDATE connections SET test_lease_until = NULL WHERE account = $1 AND id = $2`, account, id); err != nil {
		return fmt.Errorf("release test: %w", err)
	}
	return nil
}

// TestState is what a caller waiting for another's test sees.
type TestState struct {
	// Result is the connection's latest result (a model.TestResult as JSON)
	// when one was recorded after the time asked about, else nil.
	Result []byte
	// Running reports that a claim on the connection's test still holds.
	Running bool
}

const selectTestState = `
SELECT CASE WHEN last_checked_at > $3 THEN last_test END, COALESCE(test_lease_until > now(), false)
FROM connections WHERE account = $1 AND id = $2`

// TestStateSince reports whether a result of the account's connection was
// recorded after since, and whether a test of it is running. It returns
// ErrNotFound as Connection does.
func (s *Store) TestStateSince(ctx context.Context, account string, id uuid.UUID, since time.Time) (TestState, error) {
	var st TestState
	err := s.pool.QueryRow(ctx, selectTestState, account, id, since).Scan(&st.Result, &st.Running)
	if errors.Is(err, pgx.ErrNoRows) {
		return TestState{}, ErrNotFound
	}
	if err != nil {
		return TestState{}, fmt.Errorf("read test state: %w", err)
	}
	return st, nil
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

// PruneRateLimits deletes the buckets that are full again: a missing bucket
// is a full one, so this forgets nothing. It returns how many it deleted.
func (s *Store) PruneRateLimits(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM test_rate_limits WHERE tat < now()`)
	if err != nil {
		return 0, fmt.Errorf("prune rate limits: %w", err)
	}
	return tag.RowsAffected(), nil
}
