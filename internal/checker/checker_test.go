package checker_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

const account = "acct-a"

type env struct {
	st   *store.Store
	keys *crypto.Keyring
	sim  *simulator.Server
	chk  *checker.Checker
}

func newEnv(t *testing.T, opts checker.Options) *env {
	t.Helper()
	line, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypto.ParseKeyring(line, "")
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.New(t)
	sim := simulator.New(simulator.Options{})
	t.Cleanup(sim.Close)
	dyn := dynamics.NewClient(dynamics.Options{AllowLoopback: true, Logger: slog.New(slog.NewTextHandler(&logtest.Buffer{}, nil)),
		StepTimeout: 2 * time.Second, Deadline: 4 * time.Second})
	t.Cleanup(dyn.CloseIdleConnections)
	return &env{st: st, keys: keys, sim: sim, chk: checker.New(st, keys, dyn, opts)}
}

// create stores a connection to the simulator's listener for scenario.
func (e *env) create(t *testing.T, scenario string) uuid.UUID {
	t.Helper()
	id := uuid.New()
	env, err := e.keys.Seal(context.Background(), []byte(simulator.ClientSecret), crypto.AssociatedData(account, id.String()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.st.CreateConnection(context.Background(), model.Connection{ID: id.String(), Account: account, Name: scenario,
		InstanceURL: e.sim.InstanceURL(scenario), Cloud: model.CloudPublic, ClientID: simulator.ClientID,
		Secret: model.SealedSecret(env)}, store.Audit{Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestWaiterRunsWhenTheClaimLapses: a test claimed by a replica that died
// before recording holds others off only until its lease runs out; then the
// next caller runs its own.
func TestWaiterRunsWhenTheClaimLapses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, checker.Options{Poll: 10 * time.Millisecond})
	id := e.create(t, "ok")
	ctx := context.Background()
	if c, err := e.st.ClaimTest(ctx, account, id, nil, 300*time.Millisecond); err != nil || !c.Claimed {
		t.Fatalf("the dead replica's claim: %+v, %v", c, err)
	}
	if _, err := e.chk.TestConnection(ctx, account, id, store.Audit{Actor: "tester"}); err != nil {
		t.Fatal(err)
	}
	c, err := e.st.Connection(ctx, account, id)
	if err != nil || c.Status != model.StatusConnected || e.sim.Count("token") != 1 {
		t.Errorf("status %s after %d token requests, %v", c.Status, e.sim.Count("token"), err)
	}
}

// TestRechecksAreOutsideTheRateLimit: scheduled re-checks neither draw on the
// account's budget of manual tests nor are refused by it.
func TestRechecksAreOutsideTheRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, checker.Options{RateLimit: store.RateLimit{Every: time.Hour, Burst: 1}, RecheckInterval: time.Hour})
	id := e.create(t, "ok")
	ctx := context.Background()
	for range 2 {
		o, _, err := e.recheck(t, ctx, id, time.Now())
		if err != nil || o.Transient || o.Recorded.To != model.StatusConnected {
			t.Fatalf("recheck: %+v, %v", o, err)
		}
	}
	if _, err := e.chk.TestConnection(ctx, account, id, store.Audit{}); err != nil {
		t.Fatalf("the one manual test after two re-checks: %v", err)
	}
	var limited *store.RateLimitedError
	if _, err := e.chk.TestConnection(ctx, account, id, store.Audit{}); !errors.As(err, &limited) {
		t.Errorf("a second manual test within the hour: %v", err)
	}
	if _, skipped, err := e.recheck(t, ctx, id, time.Now()); err != nil || skipped {
		t.Errorf("a re-check past the manual budget: skipped %t, %v", skipped, err)
	}
	c, err := e.st.Connection(ctx, account, id)
	if err != nil || c.NextCheckAt == nil || c.NextCheckAt.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("next check at %v, %v: want about an hour from now", c.NextCheckAt, err)
	}
}

// TestRecheckOutcomes: a transient failure says so and is tried again after
// Microsoft's Retry-After; a connection tested since its re-check was
// queued, or gone, is skipped.
func TestRecheckOutcomes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, checker.Options{RecheckInterval: time.Hour})
	ctx := context.Background()
	id := e.create(t, "throttled")
	o, _, err := e.recheck(t, ctx, id, time.Now())
	if err != nil || !o.Transient || o.Recorded.To != model.StatusUntested || o.Recorded.TransientFailures != 1 {
		t.Errorf("throttled: %+v, %v", o, err)
	}
	// Tried again soon, not an interval later, but not before Microsoft's
	// Retry-After (27 s).
	c, err := e.st.Connection(ctx, account, id)
	if err != nil || c.NextCheckAt == nil || c.LastCheckedAt == nil ||
		c.NextCheckAt.Sub(*c.LastCheckedAt) < 27*time.Second || c.NextCheckAt.Sub(*c.LastCheckedAt) > 10*time.Minute {
		t.Errorf("after a throttled re-check: checked %v, next %v, %v", c.LastCheckedAt, c.NextCheckAt, err)
	}
	// Tested since it was queued: skipped, as is an unknown connection.
	if _, skipped, err := e.recheck(t, ctx, id, c.LastCheckedAt.Add(-time.Millisecond)); err != nil || !skipped {
		t.Errorf("a re-check queued before the last test: skipped %t, %v", skipped, err)
	}
	if _, skipped, err := e.recheck(t, ctx, uuid.New(), time.Now()); err != nil || !skipped {
		t.Errorf("unknown connection: skipped %t, %v", skipped, err)
	}
}

// TestStoppedRecheckRecordsNothing: a re-check stopped mid-run (shutdown)
// records nothing, blames nobody, and releases its claim.
func TestStoppedRecheckRecordsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, checker.Options{})
	id := e.create(t, "token_hang")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for e.sim.Count("token") == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	if _, _, err := e.recheck(t, ctx, id, time.Now()); !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped recheck: %v", err)
	}
	c, err := e.st.Connection(context.Background(), account, id)
	if err != nil || c.LastTest != nil || c.LastCheckedAt != nil {
		t.Errorf("a stopped re-check was recorded: %s, %v", c.LastTest, err)
	}
	if cl, err := e.st.ClaimTest(context.Background(), account, id, nil, time.Minute); err != nil || !cl.Claimed {
		t.Errorf("claim after the stopped re-check: %+v, %v", cl, err)
	}
}

// TestCredentialsRefusesAMovedSecret: the secret opens only for its own row.
func TestCredentialsRefusesAMovedSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, checker.Options{})
	id := e.create(t, "ok")
	c, err := e.st.Connection(context.Background(), account, id)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := checker.Credentials(context.Background(), e.keys, c, model.SlotCurrent)
	if err != nil || string(cr.ClientSecret) != simulator.ClientSecret {
		t.Fatalf("open: %v", err)
	}
	cr.Clear()
	c.ID = uuid.NewString()
	if _, err := checker.Credentials(context.Background(), e.keys, c, model.SlotCurrent); err == nil {
		t.Error("a secret moved to another row opened")
	}
}

// recheck claims the re-check of id, queued at queuedAt, and runs it when
// claimed; skipped reports that it was not.
func (e *env) recheck(t *testing.T, ctx context.Context, id uuid.UUID, queuedAt time.Time) (o checker.Outcome, skipped bool, err error) {
	t.Helper()
	claimed, err := e.chk.ClaimRechecks(context.Background(), []uuid.UUID{id}, queuedAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) == 0 {
		return checker.Outcome{}, true, nil
	}
	o, err = e.chk.Recheck(ctx, claimed[0], func() {})
	return o, false, err
}
