package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

func TestTestHistoryKeepsTheLast50(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := create(t, s, newConnection(account))
	for i := range store.TestHistoryLength + 5 {
		r := store.TestRecord{Status: model.StatusConnected, Result: []byte(fmt.Sprintf(`{"n": %d}`, i)), TestedVersion: c.Version}
		if _, err := s.RecordTestResult(ctx, account, uuid.MustParse(c.ID), testAudit, r); err != nil {
			t.Fatal(err)
		}
	}
	var all [][]byte
	cursor := ""
	for {
		page, next, err := s.TestResults(ctx, account, uuid.MustParse(c.ID), store.Page{Limit: 20, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != store.TestHistoryLength {
		t.Fatalf("history holds %d results, want %d", len(all), store.TestHistoryLength)
	}
	if got, want := string(all[0]), fmt.Sprintf(`{"n": %d}`, store.TestHistoryLength+4); got != want {
		t.Errorf("newest = %s, want %s", got, want)
	}
	if got := string(all[len(all)-1]); got != `{"n": 5}` {
		t.Errorf("oldest kept = %s, want {\"n\": 5}", got)
	}
	// Another account's record touches neither the history nor the row.
	r := store.TestRecord{Status: model.StatusFailing, Result: []byte(`{"n": -1}`), TestedVersion: c.Version}
	if _, err := s.RecordTestResult(ctx, other, uuid.MustParse(c.ID), testAudit, r); err != store.ErrNotFound {
		t.Errorf("another account's record: err = %v, want ErrNotFound", err)
	}
	if page, _, err := s.TestResults(ctx, account, uuid.MustParse(c.ID), store.Page{Limit: store.MaxLimit}); err != nil || len(page) != store.TestHistoryLength {
		t.Errorf("history after another account's record: %d results, err %v", len(page), err)
	}
	if _, _, err := s.TestResults(ctx, other, uuid.MustParse(c.ID), store.Page{}); err != store.ErrNotFound {
		t.Errorf("another account's history: err = %v, want ErrNotFound", err)
	}
}

// TestResultOfAReplacedSecretLeavesStatus: a test that finished after the
// secret was replaced describes the old secret, so it goes to the history but
// does not set the connection's status or mark the new secret expired.
func TestResultOfAReplacedSecretLeavesStatus(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := create(t, s, newConnection(account))
	tested := c.Version
	if _, err := s.UpdateConnection(ctx, account, uuid.MustParse(c.ID), testAudit, func(c *model.Connection) error {
		c.Secret.Ciphertext = []byte("new-ciphertext")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := store.TestRecord{Status: model.StatusFailing, Result: []byte(`{"ok": false}`), Failure: &model.TestError{Code: "client_secret_expired"}, SecretExpired: true, TestedVersion: tested}
	if _, err := s.RecordTestResult(ctx, account, uuid.MustParse(c.ID), testAudit, r); err != nil {
		t.Fatal(err)
	}
	got := get(t, s, account, c.ID)
	if got.Status != model.StatusUntested || got.SecretExpiredAt != nil {
		t.Errorf("status %s, expired at %v: a stale result changed the connection", got.Status, got.SecretExpiredAt)
	}
	if page, _, err := s.TestResults(ctx, account, uuid.MustParse(c.ID), store.Page{}); err != nil || len(page) != 1 {
		t.Errorf("history = %d results (err %v), want the 1 test", len(page), err)
	}
}

func TestRecordTestResult(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := create(t, s, newConnection(account))
	result := []byte(`{"ok": true, "checks": [{"name": "token", "status": "passed"}]}`)

	if _, err := s.RecordTestResult(ctx, other, uuid.MustParse(c.ID), testAudit, store.TestRecord{Status: model.StatusConnected, Result: result, TestedVersion: c.Version}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another account: err = %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(c, get(t, s, account, c.ID)); diff != "" {
		t.Fatalf("another account's save changed the row (-before +after):\n%s", diff)
	}
	if _, err := s.RecordTestResult(ctx, account, uuid.New(), testAudit, store.TestRecord{Status: model.StatusConnected, Result: result, TestedVersion: c.Version}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown id: err = %v, want ErrNotFound", err)
	}

	if _, err := s.RecordTestResult(ctx, account, uuid.MustParse(c.ID), testAudit, store.TestRecord{Status: model.StatusConnected, Result: result, TestedVersion: c.Version}); err != nil {
		t.Fatalf("RecordTestResult: %v", err)
	}
	got := get(t, s, account, c.ID)
	if got.Status != model.StatusConnected {
		t.Errorf("Status = %q, want connected", got.Status)
	}
	var want, stored any
	if err := json.Unmarshal(result, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got.LastTest, &stored); err != nil {
		t.Fatalf("LastTest %q: %v", got.LastTest, err)
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("LastTest (-want +got):\n%s", diff)
	}

	if _, err := s.RecordTestResult(ctx, account, uuid.MustParse(c.ID), testAudit, store.TestRecord{Status: "bogus", Result: result, TestedVersion: got.Version}); err == nil {
		t.Error("status bogus was accepted")
	}
}

// TestTransientFailuresFlipAtTheThird: scheduled failures without a setup
// step change the status only at the third in a row; one with a setup step,
// or a manual one, changes it at once; a pass resets the count. Each change
// writes one status_changed event with the failure's code and the trigger.
func TestTransientFailuresFlipAtTheThird(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := create(t, s, newConnection(account))
	id := uuid.MustParse(c.ID)
	step := "client_secret"
	unavailable := &model.TestError{Code: "microsoft_unavailable"}
	record := func(status model.Status, failure *model.TestError, trigger model.Trigger) store.Recorded {
		t.Helper()
		r := store.TestRecord{Status: status, Result: []byte(`{}`), Failure: failure, Trigger: trigger,
			Transient: failure != nil && failure.SetupStep == nil, TestedVersion: get(t, s, account, c.ID).Version,
			RecheckInterval: time.Hour}
		change, err := s.RecordTestResult(ctx, account, id, testAudit, r)
		if err != nil {
			t.Fatal(err)
		}
		return change
	}
	steps := []struct {
		status  model.Status
		failure *model.TestError
		trigger model.Trigger
		want    model.Status
	}{
		{model.StatusConnected, nil, model.TriggerScheduled, model.StatusConnected},
		{model.StatusFailing, unavailable, model.TriggerScheduled, model.StatusConnected},
		{model.StatusFailing, unavailable, model.TriggerScheduled, model.StatusConnected},
		{model.StatusFailing, unavailable, model.TriggerScheduled, model.StatusFailing}, // the third
		{model.StatusConnected, nil, model.TriggerScheduled, model.StatusConnected},
		{model.StatusFailing, unavailable, model.TriggerScheduled, model.StatusConnected}, // counting anew
		{model.StatusFailing, &model.TestError{Code: "client_secret_expired", SetupStep: &step}, model.TriggerScheduled, model.StatusFailing},
		{model.StatusConnected, nil, model.TriggerManual, model.StatusConnected},
		{model.StatusFailing, unavailable, model.TriggerManual, model.StatusFailing}, // manual: at once
	}
	for i, st := range steps {
		if got := record(st.status, st.failure, st.trigger); got.To != st.want {
			t.Fatalf("step %d: status %s, want %s", i, got.To, st.want)
		}
	}
	got := eventually(t, s, account, func(e []store.Event) bool { return len(e) >= 7 })
	changes := []string{}
	for _, e := range got[1:] {
		d := data(t, e)
		changes = append(changes, d["from"].(string)+">"+d["to"].(string)+" "+d["trigger"].(string)+" "+fmt.Sprint(d["code"])+" "+fmt.Sprint(d["setup_step"]))
	}
	want := []string{
		"untested>connected scheduled <nil> <nil>",
		"connected>failing scheduled microsoft_unavailable <nil>",
		"failing>connected scheduled <nil> <nil>",
		"connected>failing scheduled client_secret_expired client_secret",
		"failing>connected manual <nil> <nil>",
		"connected>failing manual microsoft_unavailable <nil>",
	}
	if diff := cmp.Diff(want, changes); diff != "" {
		t.Errorf("status_changed events (-want +got):\n%s", diff)
	}
	after := get(t, s, account, c.ID)
	if after.LastCheckedAt == nil || after.NextCheckAt == nil || after.StatusSince == nil ||
		after.NextCheckAt.Sub(*after.LastCheckedAt) < 54*time.Minute || after.NextCheckAt.Sub(*after.LastCheckedAt) > 66*time.Minute {
		t.Errorf("checked %v, next %v: want the next about an hour later", after.LastCheckedAt, after.NextCheckAt)
	}
	// Only the manual tests are in the audit trail.
	trail, _, err := s.AuditTrail(ctx, account, id, store.Page{Limit: store.MaxLimit})
	if err != nil || len(trail) != 3 {
		t.Errorf("audit trail holds %d events (%v), want create and two manual tests", len(trail), err)
	}
}

// TestClaimTest: one claim at a time per connection, released by the record;
// the rate limit refuses past its burst with the wait; a scheduled claim
// takes no token; a foreign connection is not found.
func TestClaimTest(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := create(t, s, newConnection(account))
	id := uuid.MustParse(c.ID)
	limit := &store.RateLimit{Every: time.Hour, Burst: 2}

	first, err := s.ClaimTest(ctx, account, id, limit, time.Minute)
	if err != nil || !first.Claimed || first.Connection.ID != c.ID {
		t.Fatalf("first claim: %+v, %v", first, err)
	}
	second, err := s.ClaimTest(ctx, account, id, limit, time.Minute)
	if err != nil || second.Claimed {
		t.Fatalf("second claim while the first holds: %+v, %v", second, err)
	}
	var limited *store.RateLimitedError
	if _, err := s.ClaimTest(ctx, account, id, limit, time.Minute); !errors.As(err, &limited) ||
		limited.RetryAfter <= 59*time.Minute || limited.RetryAfter > time.Hour {
		t.Fatalf("third manual claim within the hour: %v", err)
	}
	if err := s.TakeTestToken(ctx, account, *limit); !errors.As(err, &limited) {
		t.Errorf("a token past the burst: %v", err)
	}
	if err := s.TakeTestToken(ctx, other, *limit); err != nil {
		t.Errorf("another account's bucket: %v", err)
	}
	st, err := s.TestStateSince(ctx, account, id, second.Since)
	if err != nil || !st.Running || st.Result != nil {
		t.Errorf("state while running: %+v, %v", st, err)
	}
	if _, err := s.RecordTestResult(ctx, account, id, testAudit, store.TestRecord{Status: model.StatusConnected,
		Result: []byte(`{"ok": true}`), TestedVersion: first.Connection.Version}); err != nil {
		t.Fatal(err)
	}
	st, err = s.TestStateSince(ctx, account, id, second.Since)
	if err != nil || st.Running || string(st.Result) != `{"ok": true}` {
		t.Errorf("state after the record: running %t result %s, %v", st.Running, st.Result, err)
	}
	// Scheduled: no token needed, and the record released the claim.
	sched, err := s.ClaimTest(ctx, account, id, nil, time.Minute)
	if err != nil || !sched.Claimed {
		t.Fatalf("scheduled claim: %+v, %v", sched, err)
	}
	if err := s.ReleaseTests(ctx, id); err != nil {
		t.Fatal(err)
	}
	if again, err := s.ClaimTest(ctx, account, id, nil, time.Minute); err != nil || !again.Claimed {
		t.Errorf("claim after release: %+v, %v", again, err)
	}
	if _, err := s.ClaimTest(ctx, other, id, nil, time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another account's connection: %v", err)
	}
}

// TestTransientRetryBackoff: after a scheduled transient failure the
// connection is tried again after a twentieth of the interval (at most 5
// minutes), doubled per failure, ±20 %, never before Microsoft's
// Retry-After; the third in a row turns it failing and the interval applies
// again.
func TestTransientRetryBackoff(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	unavailable := &model.TestError{Code: "microsoft_unavailable"}
	for _, tc := range []struct {
		interval, retryAfter time.Duration
		want                 []time.Duration // the next check after failures 1, 2 and 3
	}{
		{24 * time.Hour, 0, []time.Duration{5 * time.Minute, 10 * time.Minute, 24 * time.Hour}},
		{time.Second, 0, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, time.Second}},
		{24 * time.Hour, time.Hour, []time.Duration{time.Hour, time.Hour, 24 * time.Hour}},
	} {
		c := create(t, s, newConnection(account))
		for i, want := range tc.want {
			r := store.TestRecord{Status: model.StatusFailing, Result: []byte(`{}`), Failure: unavailable, Trigger: model.TriggerScheduled,
				Transient: true, RetryAfter: tc.retryAfter, TestedVersion: get(t, s, account, c.ID).Version, RecheckInterval: tc.interval}
			if _, err := s.RecordTestResult(ctx, account, uuid.MustParse(c.ID), testAudit, r); err != nil {
				t.Fatal(err)
			}
			after := get(t, s, account, c.ID)
			got := after.NextCheckAt.Sub(*after.LastCheckedAt)
			lo, hi := want*8/10, want*12/10
			if i == len(tc.want)-1 || tc.retryAfter > 0 {
				lo, hi = want*9/10, want*11/10 // the interval's ±10 %, or Retry-After exactly
				if tc.retryAfter > 0 && i < len(tc.want)-1 {
					lo, hi = want, want
				}
			}
			if got < lo || got > hi {
				t.Errorf("interval %v, Retry-After %v: next check %v after failure %d, want %v–%v", tc.interval, tc.retryAfter, got, i+1, lo, hi)
			}
		}
	}
}

// TestRechecksInOneStatement: ClaimRechecks claims, in one statement, the due
// connections that were not tested since they were queued and are not being
// tested; RecordTestResults records several connections' tests at once,
// each with its own outcome, and leaves out the ones it cannot find.
func TestRechecksInOneStatement(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	var ids []uuid.UUID
	for range 4 {
		ids = append(ids, uuid.MustParse(create(t, s, newConnection(account)).ID))
	}
	tested, busy, gone := ids[1], ids[2], uuid.New()
	r := store.TestRecord{Status: model.StatusConnected, Result: []byte(`{"ok":true}`), Trigger: model.TriggerManual,
		TestedVersion: get(t, s, account, tested.String()).Version}
	if _, err := s.RecordTestResult(ctx, account, tested, testAudit, r); err != nil {
		t.Fatal(err)
	}
	queuedAt := get(t, s, account, tested.String()).LastCheckedAt.Add(-time.Second)
	if c, err := s.ClaimTest(ctx, account, busy, nil, time.Minute); err != nil || !c.Claimed {
		t.Fatalf("claim: %+v, %v", c, err)
	}
	due := append(ids, gone)
	claimed, err := s.ClaimRechecks(ctx, due, queuedAt, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, c := range claimed {
		got[c.ID] = true
	}
	if want := map[string]bool{ids[0].String(): true, ids[3].String(): true}; !cmp.Equal(got, want) {
		t.Errorf("claimed %v, want %v (not the one tested since, the busy one, the unknown one)", got, want)
	}
	// A second claim finds them claimed.
	if again, err := s.ClaimRechecks(ctx, due, queuedAt, time.Minute); err != nil || len(again) != 0 {
		t.Errorf("claimed again: %d, %v", len(again), err)
	}

	unavailable := &model.TestError{Code: "microsoft_unavailable"}
	var tests []store.ConnectionTest
	for i, id := range []uuid.UUID{ids[0], ids[3], gone} {
		rec := store.TestRecord{Status: model.StatusConnected, Result: []byte(`{"ok":true}`), Trigger: model.TriggerScheduled, TestedVersion: 1}
		if i == 1 {
			rec = store.TestRecord{Status: model.StatusFailing, Result: []byte(`{"ok":false}`), Failure: unavailable,
				Trigger: model.TriggerScheduled, Transient: true, TestedVersion: 1}
		}
		tests = append(tests, store.ConnectionTest{Account: account, ID: id, TestRecord: rec})
	}
	recorded, err := s.RecordTestResults(ctx, tests)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uuid.UUID]store.Recorded{
		ids[0]: {From: model.StatusUntested, To: model.StatusConnected},
		ids[3]: {From: model.StatusUntested, To: model.StatusUntested, TransientFailures: 1},
	}
	if diff := cmp.Diff(want, recorded); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
	for _, id := range []uuid.UUID{ids[0], ids[3]} {
		if page, _, err := s.TestResults(ctx, account, id, store.Page{}); err != nil || len(page) != 1 {
			t.Errorf("history of %s: %d results, %v", id, len(page), err)
		}
	}
	// Tested since queued now, so not claimed for that queueing again; and
	// the records ended the claims.
	if again, err := s.ClaimRechecks(ctx, due[:1], queuedAt, time.Minute); err != nil || len(again) != 0 {
		t.Errorf("a recorded connection was claimed for the same queueing again: %d, %v", len(again), err)
	}
	if c, err := s.ClaimTest(ctx, account, ids[3], nil, time.Minute); err != nil || !c.Claimed {
		t.Errorf("claim after the record: %+v, %v", c, err)
	}
}
