package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	// TransientFailuresToFail of them came in a row, and until then the
	// connection is tried again soon (retryIn) rather than an interval later.
	Transient bool
	// RetryAfter is how long Microsoft asked to wait (Retry-After), if it did:
	// a transient failure is not tried again sooner.
	RetryAfter time.Duration
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

// ConnectionTest is a TestRecord of a connection, for RecordTestResults.
type ConnectionTest struct {
	Account string
	ID      uuid.UUID
	// Audit is who asked, for a manual test's audit event.
	Audit Audit
	TestRecord
}

// retryIn is the SQL expression of how long after the n-th transient failure
// in a row (n is %[1]s) a connection is tried again, for a re-check interval
// %[2]s and Microsoft's Retry-After %[3]s: a base of a twentieth of the
// interval (at most 5 minutes) doubled per failure, ±20 %% so that
// connections throttled together do not come back together, and never
// sooner than Retry-After. At most TransientFailuresToFail-1 retries come
// per interval, so re-checks never storm a throttled Dataverse.
const retryIn = `GREATEST(LEAST(%[2]s / 20, interval '5 minutes') * power(2, %[1]s - 1) * (0.8 + 0.4 * random()), %[3]s)`

// recordTests is the whole of RecordTestResults in one statement, so it costs
// one round trip and runs in one implicit transaction however many tests it
// records. The input is one row per test, from the JSON array $1; the
// data-modifying CTEs all see the snapshot from before the statement, and
// the row locks of conn (taken in the input's order, by id) order concurrent
// records: the trim keeps each connection's newest TestHistoryLength-1 older
// results beside the one inserted. outcome works out the new status:
// unchanged when the connection was edited while the test ran (the tested
// version differs) or for a transient failure short of
// TransientFailuresToFail in a row, else the result's. It also writes the
// expiry notice that is due (see expiry.go), so that a re-check costs two
// round trips, the claim and this, each shared by the re-checks that run at
// the same time. The constants are in the text, not parameters, so that a
// custom plan knows nothing a generic one does not, and PostgreSQL keeps the
// generic one instead of planning each run.
var recordTests = `
WITH input AS (
	-- JSON rather than arrays, with the row count $2 as a LIMIT: in a cached
	-- generic plan the planner then guesses a tenth of jsonb_to_recordset's
	-- 100 rows, and looks connections up by key. From arrays, it would plan
	-- the statement at every run for their length (about a millisecond);
	-- from JSON alone, it would guess 100 rows and scan the table.
	SELECT * FROM jsonb_to_recordset($1) AS i (i_account text, i_id uuid, i_status text, i_result jsonb,
		i_secret_expired bool, i_version bigint, i_code text, i_actor text, i_request_id text, i_details jsonb,
		i_transient bool, i_retry_after_s float8, i_interval_s float8, i_trigger text, i_step text)
	LIMIT (SELECT $2::int)
), conn AS (
	SELECT c.*, i.*, i_retry_after_s * interval '1 second' AS i_retry_after, i_interval_s * interval '1 second' AS i_interval,
		` + credentialExpiresAt("c") + ` AS expires_at, expiry_notice_due(` + credentialExpiresAt("c") + `) AS days
	FROM input i CROSS JOIN LATERAL (
		SELECT * FROM connections c WHERE c.account = i.i_account AND c.id = i.i_id FOR UPDATE
	) c
), outcome AS (
	SELECT conn.*, status AS old_status, version = i_version AS current,
		` + noticeWanted("conn", "expires_at", "days") + ` AS notify,
		CASE WHEN version <> i_version OR (i_transient AND transient_failures + 1 < ` + strconv.Itoa(TransientFailuresToFail) + `) THEN status ELSE i_status END AS new_status,
		CASE WHEN i_transient THEN transient_failures + 1 ELSE 0 END AS failures
	FROM conn
), updated AS (
	UPDATE connections c SET test_lease_until = NULL,
		status = o.new_status,
		status_since = CASE WHEN o.new_status <> o.old_status THEN now() ELSE c.status_since END,
		last_test = CASE WHEN o.current THEN o.i_result ELSE c.last_test END,
		secret_expired_at = CASE WHEN o.current AND o.i_secret_expired THEN COALESCE(c.secret_expired_at, now()) ELSE c.secret_expired_at END,
		transient_failures = CASE WHEN o.current THEN o.failures ELSE c.transient_failures END,
		last_checked_at = CASE WHEN o.current THEN now() ELSE c.last_checked_at END,
		next_check_at = CASE WHEN NOT o.current THEN c.next_check_at
			WHEN o.i_interval IS NULL THEN NULL
			WHEN o.i_transient AND o.failures < ` + strconv.Itoa(TransientFailuresToFail) + ` THEN now() + ` + fmt.Sprintf(retryIn, "o.failures", "o.i_interval", "o.i_retry_after") + `
			ELSE now() + o.i_interval * (0.9 + 0.2 * random()) END,
		version = CASE WHEN o.current THEN c.version + 1 ELSE c.version END,
		updated_at = CASE WHEN o.current THEN now() ELSE c.updated_at END,
		expiry_notice_for = CASE WHEN o.notify THEN o.expires_at ELSE c.expiry_notice_for END,
		expiry_notice_days = CASE WHEN o.notify THEN o.days ELSE c.expiry_notice_days END
	FROM outcome o WHERE c.id = o.id
), history AS (
	INSERT INTO connection_tests (connection_id, account, code, result)
	SELECT id, account, i_code, i_result FROM conn
), trimmed AS (
	DELETE FROM connection_tests t USING (
		SELECT id, (SELECT h.id FROM connection_tests h WHERE h.connection_id = conn.id
			ORDER BY h.id DESC OFFSET ` + strconv.Itoa(TestHistoryLength-1) + ` LIMIT 1) AS newest_dropped
		FROM conn
	) d
	WHERE t.connection_id = d.id AND t.id <= d.newest_dropped
), audit AS (
	INSERT INTO audit_events (account, connection_id, actor, action, request_id, details)
	SELECT account, id, i_actor, '` + ActionTested + `', i_request_id, i_details
	FROM conn WHERE i_trigger = '` + string(model.TriggerManual) + `'
), event AS (
	INSERT INTO events (public_id, account, type, connection_id, data)
	SELECT event_public_id(), account, '` + EventConnectionStatusChanged + `', id, jsonb_build_object(
		'connection_id', id, 'from', old_status, 'to', new_status,
		'code', i_code, 'setup_step', i_step, 'trigger', i_trigger)
	FROM outcome WHERE new_status <> old_status
), notice AS (
	INSERT INTO events (public_id, account, type, connection_id, data)
	SELECT ` + noticeEventSelect + ` FROM outcome WHERE notify
)
SELECT id, old_status, new_status, failures FROM outcome`

// RecordTestResults stores tests of connections, each: on the connection
// (status, last_test, the secret's expiry when Microsoft reported it, when it
// was checked and when it is checked next), in its history (trimmed to
// TestHistoryLength), as a connection.tested audit event by its Audit for a
// manual test, and as a connection.status_changed event when the status
// changed, and the expiry notice that is due — atomically, in one statement.
// It ends the tests' claims (ClaimTest, ClaimRechecks). It returns what it did
// to each connection by id; one that is missing was not found (deleted while
// its test ran, or of another account).
func (s *Store) RecordTestResults(ctx context.Context, tests []ConnectionTest) (map[uuid.UUID]Recorded, error) {
	type row struct {
		Account       string            `json:"i_account"`
		ID            uuid.UUID         `json:"i_id"`
		Status        model.Status      `json:"i_status"`
		Result        json.RawMessage   `json:"i_result"`
		SecretExpired bool              `json:"i_secret_expired"`
		Version       int64             `json:"i_version"`
		Code          *string           `json:"i_code"`
		Actor         string            `json:"i_actor"`
		RequestID     string            `json:"i_request_id"`
		Details       map[string]string `json:"i_details"`
		Transient     bool              `json:"i_transient"`
		RetryAfter    float64           `json:"i_retry_after_s"`
		Interval      *float64          `json:"i_interval_s"`
		Trigger       model.Trigger     `json:"i_trigger"`
		Step          *string           `json:"i_step"`
	}
	// In id order, the order conn locks the rows in, as every record does.
	tests = slices.SortedFunc(slices.Values(tests), func(a, b ConnectionTest) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	input := make([]row, len(tests))
	for i, t := range tests {
		r := row{Account: t.Account, ID: t.ID, Status: t.Status, Result: t.Result, SecretExpired: t.SecretExpired,
			Version: t.TestedVersion, Actor: t.Audit.Actor, RequestID: t.Audit.RequestID,
			Details: map[string]string{"outcome": "ok"}, RetryAfter: t.RetryAfter.Seconds(), Trigger: cmp.Or(t.Trigger, model.TriggerManual)}
		if t.Failure != nil {
			r.Code, r.Step, r.Details["outcome"] = &t.Failure.Code, t.Failure.SetupStep, t.Failure.Code
		}
		r.Transient = t.Transient && r.Trigger == model.TriggerScheduled
		if t.RecheckInterval > 0 {
			secs := t.RecheckInterval.Seconds()
			r.Interval = &secs
		}
		input[i] = r
	}
	body, err := json.Marshal(input)
	if err != nil {
		return nil, fmt.Errorf("encode test results: %w", err)
	}
	rows, _ := s.pool.Query(ctx, recordTests, string(body), len(input))
	recorded := make(map[uuid.UUID]Recorded, len(tests))
	var id uuid.UUID
	var r Recorded
	_, err = pgx.ForEachRow(rows, []any{&id, &r.From, &r.To, &r.TransientFailures}, func() error {
		recorded[id] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record test results: %w", err)
	}
	return recorded, nil
}

// RecordTestResult records one test of the account's connection, as
// RecordTestResults does, and returns ErrNotFound as Connection does.
func (s *Store) RecordTestResult(ctx context.Context, account string, id uuid.UUID, a Audit, r TestRecord) (Recorded, error) {
	recorded, err := s.RecordTestResults(ctx, []ConnectionTest{{Account: account, ID: id, Audit: a, TestRecord: r}})
	if err != nil {
		return Recorded{}, err
	}
	rec, ok := recorded[id]
	if !ok {
		return Recorded{}, ErrNotFound
	}
	return rec, nil
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

// ReleaseTests ends claims whose tests will not be recorded (they could not
// run), so that waiting callers need not wait for the leases to run out.
func (s *Store) ReleaseTests(ctx context.Context, ids ...uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `UPDATE connections SET test_lease_until = NULL WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("release tests: %w", err)
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
