package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/jobs"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

const (
	account = "acct-a"
	// interval is RECHECK_INTERVAL in these tests.
	interval = time.Second
)

// service is two replicas of the background work on one database, with one
// simulator standing in for Microsoft.
type service struct {
	st   *store.Store
	keys *crypto.Keyring
	sim  *simulator.Server
}

// startReplicas starts two River clients, each with a pool, a store and a
// checker of its own, on one fresh database, re-checking every interval.
func startReplicas(t *testing.T) *service {
	t.Helper()
	s, replicas := start(t, 2)
	for _, j := range replicas {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := j.Stop(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	return s
}

// start starts n replicas as startReplicas does, and leaves stopping them to
// the caller.
func start(t *testing.T, n int) (*service, []*jobs.Jobs) {
	t.Helper()
	return startWith(t, n, jobs.Config{})
}

// startWith starts n replicas with cfg, its re-check interval, checker and
// poll interval set as start's.
func startWith(t *testing.T, n int, cfg jobs.Config) (*service, []*jobs.Jobs) {
	t.Helper()
	line, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypto.ParseKeyring(line, "")
	if err != nil {
		t.Fatal(err)
	}
	sim := simulator.New(simulator.Options{})
	t.Cleanup(sim.Close)
	url := storetest.URL(t)
	logger := slog.New(slog.NewTextHandler(&logtest.Buffer{}, nil))
	var first *store.Store
	var replicas []*jobs.Jobs
	for range n {
		pool, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		st := store.New(pool)
		if first == nil {
			first = st
		}
		dyn := dynamics.NewClient(dynamics.Options{AllowLoopback: true, Logger: logger, StepTimeout: 2 * time.Second, Deadline: 4 * time.Second})
		t.Cleanup(dyn.CloseIdleConnections)
		chk := checker.New(st, keys, dyn, checker.Options{RecheckInterval: interval})
		cfg.RecheckInterval, cfg.Checker, cfg.PollInterval = interval, chk, 50*time.Millisecond
		j, err := jobs.New(pool, logger, cfg, river.NewWorkers())
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, j)
	}
	return &service{st: first, keys: keys, sim: sim}, replicas
}

// create stores a connection to the simulator's default listener, whose
// scenario SetScenario switches.
func (s *service) create(t *testing.T, expires *time.Time) uuid.UUID {
	t.Helper()
	return s.createAt(t, s.sim.URL, expires)
}

// createAt stores a connection to the instance URL.
func (s *service) createAt(t *testing.T, instance string, expires *time.Time) uuid.UUID {
	t.Helper()
	id := uuid.New()
	env, err := s.keys.Seal(context.Background(), []byte(simulator.ClientSecret), crypto.AssociatedData(account, id.String()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.st.CreateConnection(context.Background(), model.Connection{ID: id.String(), Account: account,
		InstanceURL: instance, Cloud: model.CloudPublic, ClientID: simulator.ClientID, Secret: model.SealedSecret(env),
		SecretExpiresAt: expires}, store.Audit{Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// statusChange is a connection.status_changed event's data.
type statusChange struct {
	From, To, Trigger string
	Code              *string
	SetupStep         *string `json:"setup_step"`
}

// changes lists the account's status changes, oldest first.
func (s *service) changes(t *testing.T) []statusChange {
	t.Helper()
	var out []statusChange
	after := ""
	for {
		page, next, err := s.st.ListEvents(context.Background(), account, store.EventQuery{
			After: after, Types: []string{store.EventConnectionStatusChanged}, Limit: store.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			var c statusChange
			if err := json.Unmarshal(e.Data, &c); err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		if len(page) == 0 {
			return out
		}
		after = next
	}
}

// history returns the connection's test results, oldest first.
func (s *service) history(t *testing.T, id uuid.UUID) []model.TestResult {
	t.Helper()
	raw, _, err := s.st.TestResults(context.Background(), account, id, store.Page{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]model.TestResult, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[len(raw)-1-i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

// TestRechecksAcrossTwoReplicas: a working connection is re-checked on
// schedule, once per interval although two replicas run; when its secret
// expires at Microsoft exactly one status change to failing is written (code
// client_secret_expired, setup step client_secret, trigger scheduled), and
// when it works again exactly one back to connected.
func TestRechecksAcrossTwoReplicas(t *testing.T) {
	t.Parallel()
	s := startReplicas(t)
	id := s.create(t, nil)

	eventually(t, "three scheduled re-checks", func() bool { return len(s.history(t, id)) >= 3 })
	s.sim.SetScenario("secret_expired")
	eventually(t, "the change to failing", func() bool { return len(s.changes(t)) >= 2 })
	failedAt := len(s.history(t, id))
	eventually(t, "two more re-checks", func() bool { return len(s.history(t, id)) >= failedAt+2 })
	s.sim.SetScenario("ok")
	eventually(t, "the change back", func() bool { return len(s.changes(t)) >= 3 })
	backAt := len(s.history(t, id))
	eventually(t, "two more re-checks", func() bool { return len(s.history(t, id)) >= backAt+2 })

	got := s.changes(t)
	want := []string{"untested>connected scheduled <null> <null>",
		"connected>failing scheduled client_secret_expired client_secret",
		"failing>connected scheduled <null> <null>"}
	if len(got) != len(want) {
		t.Fatalf("%d status changes, want %d: %+v", len(got), len(want), got)
	}
	for i, c := range got {
		if s := c.From + ">" + c.To + " " + c.Trigger + " " + deref(c.Code) + " " + deref(c.SetupStep); s != want[i] {
			t.Errorf("change %d = %s, want %s", i, s, want[i])
		}
	}
	// One re-check per interval: each is scheduled by the record of the one
	// before, at least 90 % of an interval later. A second replica's
	// duplicate would come right after.
	h := s.history(t, id)
	for i := 1; i < len(h); i++ {
		if gap := h[i].TestedAt.Sub(h[i-1].TestedAt); gap < interval/2 {
			t.Errorf("re-checks %d and %d only %v apart", i-1, i, gap)
		}
		if h[i].Trigger != model.TriggerScheduled {
			t.Errorf("result %d has trigger %q", i, h[i].Trigger)
		}
	}
	c, err := s.st.Connection(context.Background(), account, id)
	if err != nil || c.LastCheckedAt == nil || c.NextCheckAt == nil || !c.NextCheckAt.After(*c.LastCheckedAt) {
		t.Errorf("last checked %v, next %v, %v", c.LastCheckedAt, c.NextCheckAt, err)
	}
}

// TestTransientFailuresFlipAtTheThirdTry: Microsoft answering 503 does not
// turn a connection failing at the first scheduled try; the retries follow
// at once (not an interval later), and the third failure in a row does.
func TestTransientFailuresFlipAtTheThirdTry(t *testing.T) {
	t.Parallel()
	s := startReplicas(t)
	id := s.create(t, nil)
	eventually(t, "the first re-check", func() bool { return len(s.changes(t)) >= 1 })
	s.sim.SetScenario("unavailable")
	eventually(t, "the change to failing", func() bool { return len(s.changes(t)) >= 2 })

	flip := s.changes(t)[1]
	if flip.From != "connected" || flip.To != "failing" || deref(flip.Code) != "microsoft_unavailable" ||
		flip.SetupStep != nil || flip.Trigger != "scheduled" {
		t.Fatalf("change = %+v", flip)
	}
	// The results up to the flip: passes, then exactly three failures.
	c, err := s.st.Connection(context.Background(), account, id)
	if err != nil {
		t.Fatal(err)
	}
	var flipped model.TestResult
	if err := json.Unmarshal(c.LastTest, &flipped); err != nil {
		t.Fatal(err)
	}
	h := s.history(t, id)
	n := 0
	for _, r := range h {
		if r.TestedAt.After(*c.StatusSince) {
			break
		}
		if r.Error == nil {
			n = 0
			continue
		}
		if r.Error.Code != "microsoft_unavailable" {
			t.Fatalf("result %+v", r.Error)
		}
		n++
	}
	if n != store.TransientFailuresToFail {
		t.Errorf("the status changed after %d transient failures in a row, want %d", n, store.TransientFailuresToFail)
	}
}

// TestExpiryNoticeOnce: a secret that expires in 5 days gets one
// secret_expiring notice (the 7-day one, days_left 5), however many re-checks
// and daily runs follow.
func TestExpiryNoticeOnce(t *testing.T) {
	t.Parallel()
	s := startReplicas(t)
	expires := time.Now().Add(5 * 24 * time.Hour)
	id := s.create(t, &expires)
	eventually(t, "three re-checks", func() bool { return len(s.history(t, id)) >= 3 })
	if _, err := s.st.SendExpiryNotices(context.Background()); err != nil {
		t.Fatal(err)
	}
	notices, _, err := s.st.ListEvents(context.Background(), account, store.EventQuery{
		Types: []string{store.EventConnectionSecretExpiring, store.EventConnectionSecretExpired}})
	if err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 {
		t.Fatalf("%d notices, want 1", len(notices))
	}
	var d struct {
		DaysLeft int `json:"days_left"`
	}
	if err := json.Unmarshal(notices[0].Data, &d); err != nil || d.DaysLeft != 5 {
		t.Errorf("notice data %s", notices[0].Data)
	}
}

// TestStopCancelsWhatItCannotWaitFor: at shutdown a re-check that does not
// finish within the budget is cancelled, records nothing, releases its
// claim, and is queued to run again (on another replica, or after a
// restart).
func TestStopCancelsWhatItCannotWaitFor(t *testing.T) {
	t.Parallel()
	s, replicas := start(t, 1)
	id := s.createAt(t, s.sim.InstanceURL("token_hang"), nil)
	eventually(t, "the re-check to be running", func() bool { return s.sim.Count("token") > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := replicas[0].Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	c, err := s.st.Connection(context.Background(), account, id)
	if err != nil || c.LastTest != nil {
		t.Errorf("the cancelled re-check was recorded: %s, %v", c.LastTest, err)
	}
	if claim, err := s.st.ClaimTest(context.Background(), account, id, nil, time.Minute); err != nil || !claim.Claimed {
		t.Errorf("the cancelled re-check kept its claim: %+v, %v", claim, err)
	}
	var state string
	if err := s.st.Pool().QueryRow(context.Background(), `SELECT state FROM river_job WHERE kind = 'recheck_batch'`).Scan(&state); err != nil || state != "available" {
		t.Errorf("the cancelled re-check's job is %q (%v), want available to run again", state, err)
	}
}

// TestRecheckWorkersBoundAReplica: however many re-checks are due, a replica
// runs RECHECK_WORKERS of them at once.
func TestRecheckWorkersBoundAReplica(t *testing.T) {
	t.Parallel()
	s, replicas := startWith(t, 1, jobs.Config{RecheckWorkers: 2})
	for i := range 6 {
		id := uuid.New()
		acct := fmt.Sprintf("acct-%d", i) // an account has one connection per instance and client id
		env, err := s.keys.Seal(context.Background(), []byte(simulator.ClientSecret), crypto.AssociatedData(acct, id.String()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.st.CreateConnection(context.Background(), model.Connection{ID: id.String(), Account: acct,
			InstanceURL: s.sim.InstanceURL("token_hang"), Cloud: model.CloudPublic, ClientID: simulator.ClientID,
			Secret: model.SealedSecret(env)}, store.Audit{Actor: "tester"}); err != nil {
			t.Fatal(err)
		}
	}
	// All due at once, so that one job takes them (jobs are batches).
	if _, err := s.st.Pool().Exec(context.Background(), `UPDATE connections SET next_check_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two re-checks to be running", func() bool { return s.sim.Count("token") >= 2 })
	// Unbounded, the other four would ask for tokens within milliseconds.
	time.Sleep(500 * time.Millisecond)
	if n := s.sim.Count("token"); n != 2 {
		t.Errorf("%d re-checks ran at once, want RECHECK_WORKERS = 2", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := replicas[0].Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// oldRecheckArgs is a job as releases before re-check batches queued it.
type oldRecheckArgs struct {
	ConnectionID uuid.UUID `json:"connection_id"`
	Account      string    `json:"account"`
}

func (oldRecheckArgs) Kind() string { return "recheck" }

// TestRecheckJobsOfEarlierReleasesRun: a re-check job of one connection that
// an earlier release queued, left in the database at an upgrade, still
// re-checks its connection.
func TestRecheckJobsOfEarlierReleasesRun(t *testing.T) {
	t.Parallel()
	s, replicas := startWith(t, 1, jobs.Config{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := replicas[0].Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	id := s.create(t, nil)
	// Not due for a long while: only the old job can re-check it.
	if _, err := s.st.Pool().Exec(context.Background(), `UPDATE connections SET next_check_at = now() + interval '1 day' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := replicas[0].Client.Insert(context.Background(), oldRecheckArgs{ConnectionID: id, Account: account},
		&river.InsertOpts{Queue: jobs.QueueRecheck}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the old job's re-check", func() bool { return len(s.history(t, id)) == 1 })
	if h := s.history(t, id); h[0].Trigger != model.TriggerScheduled {
		t.Errorf("trigger %q", h[0].Trigger)
	}
}
