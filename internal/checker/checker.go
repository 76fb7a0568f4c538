// Package checker runs connection tests for both of their callers: the API
// (a test someone asked for) and the job queue (a scheduled re-check). Both
// take the same path — claim, run, record — so results land in the same
// history, with the same status rules, events and metrics; only the trigger
// differs.
//
// Replicas act as one: the per-account rate limit of manual tests is a row in
// PostgreSQL, and a test claims its connection there (a lease), so that
// concurrent tests of one connection on any replica share one run against
// Microsoft. Waiting callers read the result the first one recorded.
package checker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/groupcommit"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// Tester runs a connection test; *dynamics.Client is the one implementation.
type Tester interface {
	Test(ctx context.Context, cr dynamics.Credentials) model.TestResult
}

// Options tunes a Checker. The zero value is production's.
type Options struct {
	// RateLimit is each account's budget of manual tests, shared by every
	// replica. Default: a burst of 10, then one every 6 s.
	RateLimit store.RateLimit
	// RecheckInterval is RECHECK_INTERVAL: every recorded test schedules the
	// connection's next re-check about this far ahead. 0: re-checks are off.
	RecheckInterval time.Duration
	// Lease bounds a claim on a connection's test, in case its replica dies
	// mid-test. Default: the dynamics client's deadline plus 5 s.
	Lease time.Duration
	// Poll is how often a caller waiting for another's test looks for its
	// result. Default 100 ms.
	Poll time.Duration
	// Metrics counts tests; nil counts nothing.
	Metrics *Metrics
}

func (o *Options) defaults() {
	if o.RateLimit.Every == 0 {
		o.RateLimit.Every = 6 * time.Second
	}
	if o.RateLimit.Burst == 0 {
		o.RateLimit.Burst = 10
	}
	if o.Lease == 0 {
		o.Lease = dynamics.DefaultDeadline + 5*time.Second
	}
	if o.Poll == 0 {
		o.Poll = 100 * time.Millisecond
	}
}

// Checker tests connections. It is safe for concurrent use.
type Checker struct {
	st   *store.Store
	keys *crypto.Keyring
	dyn  Tester
	opts Options
	// records is the statement that records re-checks, shared by the
	// re-checks that end at once.
	records *groupcommit.Batcher[store.ConnectionTest, *store.Recorded]
}

// maxBatch is the most re-checks one statement records.
const maxBatch = 100

// New returns a Checker that reads and records with st, opens secrets with
// keys and tests with dyn.
func New(st *store.Store, keys *crypto.Keyring, dyn Tester, opts Options) *Checker {
	opts.defaults()
	c := &Checker{st: st, keys: keys, dyn: dyn, opts: opts}
	c.records = groupcommit.New(maxBatch, c.recordRechecks)
	return c
}

// Outcome is what one test of a stored connection came to.
type Outcome struct {
	// Result is the model.TestResult as JSON, as stored.
	Result json.RawMessage
	// Recorded is what recording the result did to the connection (its
	// status before and after, its transient failures in a row).
	Recorded store.Recorded
	// Transient reports a failure that is nobody's fault (no setup step).
	Transient bool
}

// TestConnection runs a manual test of the account's connection: it takes a
// token from the account's rate limit, then runs and records the test, or
// waits for the one running already and answers with its result. It returns
// store.ErrNotFound for an unknown or foreign connection and a
// *store.RateLimitedError when the account's tests are used up.
//
// The run is detached from ctx, so that callers waiting for it still get an
// answer when the first one goes away; the dynamics client's deadline bounds
// it.
func (c *Checker) TestConnection(ctx context.Context, account string, id uuid.UUID, a store.Audit) (json.RawMessage, error) {
	claim, err := c.st.ClaimTest(ctx, account, id, &c.opts.RateLimit, c.opts.Lease)
	if err != nil {
		return nil, err
	}
	for !claim.Claimed {
		st, err := c.waitFor(ctx, account, id, claim.Since)
		if err != nil {
			return nil, err
		}
		if st.Result != nil {
			return st.Result, nil
		}
		// The other run ended without a result that describes the connection
		// (it failed, or the connection changed meanwhile): run our own. The
		// token was taken already.
		if claim, err = c.st.ClaimTest(ctx, account, id, nil, c.opts.Lease); err != nil {
			return nil, err
		}
	}
	o, err := c.runClaimed(ctx, claim.Connection, model.TriggerManual, a, func(ctx context.Context, t store.ConnectionTest) (store.Recorded, error) {
		return c.st.RecordTestResult(ctx, t.Account, t.ID, t.Audit, t.TestRecord)
	})
	return o.Result, err
}

// ClaimRechecks claims, in one statement, the re-checks of connections queued
// at queuedAt that are needed: not the ones tested since they were queued, being tested,
// or gone. The caller runs each claimed one (Recheck) or releases it
// (ReleaseRechecks). A claimed re-check may wait for a free worker first, so
// its lease is twice a test's.
func (c *Checker) ClaimRechecks(ctx context.Context, ids []uuid.UUID, queuedAt time.Time) ([]model.Connection, error) {
	return c.st.ClaimRechecks(ctx, ids, queuedAt, 2*c.opts.Lease)
}

// ReleaseRechecks ends claims of re-checks that will not run.
func (c *Checker) ReleaseRechecks(ctx context.Context, conns []model.Connection) error {
	ids := make([]uuid.UUID, len(conns))
	for i, conn := range conns {
		ids[i] = uuid.MustParse(conn.ID) // the store's ids are uuids
	}
	return c.st.ReleaseTests(ctx, ids...)
}

// Recheck runs the scheduled re-check of conn, which ClaimRechecks claimed,
// outside the rate limit. The records of the re-checks that run at once
// share a statement. It calls tested once the calls to Microsoft are over
// and only the record is left, if they ran. It returns store.ErrNotFound
// when the connection was deleted during the run, and ctx's error when ctx
// ends during the run (then nothing is recorded and the claim is released).
func (c *Checker) Recheck(ctx context.Context, conn model.Connection, tested func()) (Outcome, error) {
	return c.runClaimed(ctx, conn, model.TriggerScheduled, store.Audit{}, func(_ context.Context, t store.ConnectionTest) (store.Recorded, error) {
		tested()
		rec, err := c.records.Do(t)
		if err == nil && rec == nil {
			return store.Recorded{}, store.ErrNotFound
		}
		if err != nil {
			return store.Recorded{}, err
		}
		return *rec, nil
	})
}

// recordRechecks records tests for c.records, and answers each with what it
// did, nil when the connection was not found.
func (c *Checker) recordRechecks(ctx context.Context, tests []store.ConnectionTest) ([]*store.Recorded, error) {
	recorded, err := c.st.RecordTestResults(ctx, tests)
	if err != nil {
		return nil, err
	}
	res := make([]*store.Recorded, len(tests))
	for i, t := range tests {
		if r, ok := recorded[t.ID]; ok {
			res[i] = &r
		}
	}
	return res, nil
}

// waitFor polls until a result recorded after since appears, or no test of
// the connection runs any more.
func (c *Checker) waitFor(ctx context.Context, account string, id uuid.UUID, since time.Time) (store.TestState, error) {
	t := time.NewTicker(c.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return store.TestState{}, ctx.Err()
		case <-t.C:
		}
		st, err := c.st.TestStateSince(ctx, account, id, since)
		if err != nil || st.Result != nil || !st.Running {
			return st, err
		}
	}
}

// runClaimed runs the test of conn, which the caller has claimed, and records
// it with record, or releases the claim when it cannot.
func (c *Checker) runClaimed(ctx context.Context, conn model.Connection, trigger model.Trigger, a store.Audit,
	record func(context.Context, store.ConnectionTest) (store.Recorded, error)) (Outcome, error) {
	id := uuid.MustParse(conn.ID) // the store's ids are uuids
	release := func(err error) (Outcome, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return Outcome{}, errors.Join(err, c.st.ReleaseTests(rctx, id))
	}
	runCtx := ctx
	if trigger == model.TriggerManual {
		runCtx = context.WithoutCancel(ctx)
	}
	cr, err := Credentials(runCtx, c.keys, conn, model.SlotCurrent)
	if err != nil {
		return release(err)
	}
	res := c.Run(runCtx, cr, trigger)
	cr.Clear()
	if err := runCtx.Err(); err != nil {
		return release(err) // stopped, not tested: a result would blame Microsoft
	}
	body, err := json.Marshal(res)
	if err != nil {
		return release(fmt.Errorf("encode test result: %w", err))
	}
	rec := store.TestRecord{Status: model.StatusConnected, Result: body, Trigger: trigger, Transient: res.Transient(),
		RetryAfter: retryAfter(res), TestedVersion: conn.Version, RecheckInterval: c.opts.RecheckInterval}
	if res.Error != nil {
		rec.Status, rec.Failure = model.StatusFailing, res.Error
		rec.SecretExpired = res.Error.Code == dynamics.CodeClientSecretExpired
	}
	recorded, err := record(runCtx, store.ConnectionTest{Account: conn.Account, ID: id, Audit: a, TestRecord: rec})
	if errors.Is(err, store.ErrNotFound) {
		return Outcome{}, err // deleted while it ran: nothing to release
	}
	if err != nil {
		return release(err)
	}
	return Outcome{Result: body, Recorded: recorded, Transient: rec.Transient}, nil
}

// retryAfter is the longest Retry-After among res's checks.
func retryAfter(res model.TestResult) time.Duration {
	var d time.Duration
	for _, ch := range res.Checks {
		if ch.Upstream != nil {
			d = max(d, time.Duration(ch.Upstream.RetryAfter)*time.Second)
		}
	}
	return d
}

// ConnectionForTest reads the account's connection for a test that stores
// nothing (POST /connection-tests with a connection_id), taking a token from
// the account's rate limit in the same round trip. Errors as TestConnection.
func (c *Checker) ConnectionForTest(ctx context.Context, account string, id uuid.UUID) (model.Connection, error) {
	claim, err := c.st.ClaimTest(ctx, account, id, &c.opts.RateLimit, 0)
	return claim.Connection, err
}

// TakeToken takes a test from the account's rate limit, or returns a
// *store.RateLimitedError.
func (c *Checker) TakeToken(ctx context.Context, account string) error {
	return c.st.TakeTestToken(ctx, account, c.opts.RateLimit)
}

// Run runs one test of cr and counts it. It records nothing: stored
// connections go through TestConnection or Recheck.
func (c *Checker) Run(ctx context.Context, cr dynamics.Credentials, trigger model.Trigger) model.TestResult {
	res := c.dyn.Test(ctx, cr)
	res.Trigger = trigger
	c.opts.Metrics.observe(res)
	return res
}
