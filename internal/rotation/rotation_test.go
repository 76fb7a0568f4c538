package rotation_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/rotation"
	"github.com/dynconn/dynconn/internal/rotation/rotationtest"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// keys holds the key lines of a test: "old" wraps the seeded rows, "new"
// is the one to rotate to.
type keys struct{ old, new string }

func newKeys() keys {
	return keys{old: rotationtest.Key("old"), new: rotationtest.Key("new")}
}

// oldOnly is the keyring before rotation; both is the keyring during it,
// with "new" active; newOnly is the keyring after "old" is retired.
func (k keys) oldOnly(t testing.TB) *crypto.Keyring { return rotationtest.Keyring(t, k.old, "old") }
func (k keys) both(t testing.TB) *crypto.Keyring {
	return rotationtest.Keyring(t, k.old+","+k.new, "new")
}
func (k keys) newOnly(t testing.TB) *crypto.Keyring { return rotationtest.Keyring(t, k.new, "new") }

// hookKEK is a KEK that calls hook just before its at-th WrapKey, so a test
// can act at an exact point of a rotation.
type hookKEK struct {
	crypto.KEK
	calls atomic.Int64
	at    int64
	hook  func()
}

func (k *hookKEK) WrapKey(ctx context.Context, dek, ad []byte) ([]byte, error) {
	if k.calls.Add(1) == k.at {
		k.hook()
	}
	return k.KEK.WrapKey(ctx, dek, ad)
}

// hooked returns the keyring of k.both whose active KEK calls hook before
// its at-th wrap.
func (k keys) hooked(t testing.TB, at int64, hook func()) *crypto.Keyring {
	t.Helper()
	both := k.both(t)
	oldKEK, _ := both.KEK("old")
	newKEK, _ := both.KEK("new")
	ring, err := crypto.NewKeyring(&hookKEK{KEK: newKEK, at: at, hook: hook}, oldKEK)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func rotate(t *testing.T, st *store.Store, ring *crypto.Keyring, o rotation.Options) rotation.Result {
	t.Helper()
	res, err := rotation.Rotate(context.Background(), st, ring, o)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	return res
}

func TestRotateRewrapsEveryRowAndKeepsTheSecrets(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	k := newKeys()
	want := rotationtest.Seed(t, pool, k.oldOnly(t), 1234)

	var progress bytes.Buffer
	res := rotate(t, st, k.both(t), rotation.Options{BatchSize: 100, Progress: &progress})
	if res.ToRewrap != 1234 || res.Rewrapped != 1234 || res.Remaining() != 0 || len(res.Failed) != 0 || res.Interrupted {
		t.Errorf("result %+v: want 1234 rows rewrapped, none left", res)
	}
	if diff := cmp.Diff(map[string]int64{"old": 1234}, res.Before); diff != "" {
		t.Errorf("Before (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"new": 1234}, res.After); diff != "" {
		t.Errorf("After (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(progress.String(), "rewrapped 100/1234 rows (8%)") {
		t.Errorf("progress does not start with the first batch:\n%s", progress.String())
	}
	rotationtest.Check(t, pool, k.newOnly(t), want)
	// The old key's id is forgotten, so readiness no longer looks for it.
	if ids, err := st.KEKIDsInUse(context.Background()); err != nil || !slices.Equal(ids, []string{"new"}) {
		t.Errorf("key ids in use after rotation = %v, %v; want [new]", ids, err)
	}

	var summary bytes.Buffer
	res.WriteSummary(&summary)
	if !strings.HasPrefix(summary.String(), "rewrapped 1234 rows under the active key new in ") ||
		!strings.Contains(summary.String(), "every row is under new; old keys can be retired") {
		t.Errorf("summary:\n%s", summary.String())
	}

	t.Run("a second run has nothing to do", func(t *testing.T) {
		res := rotate(t, st, k.both(t), rotation.Options{Progress: &progress})
		if res.ToRewrap != 0 || res.Rewrapped != 0 || res.Remaining() != 0 {
			t.Errorf("result %+v", res)
		}
	})
}

// Private keys of certificates, current and next, are rewrapped like secrets,
// each still bound to its slot; a damaged one leaves its row as it is.
func TestRotateRewrapsPrivateKeys(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	k := newKeys()
	want := rotationtest.Seed(t, pool, k.oldOnly(t), 40)
	certs := rotationtest.SeedCertificates(t, pool, k.oldOnly(t), 60)
	maps.Copy(want, certs)
	damaged := slices.Sorted(maps.Keys(certs))[3]
	if _, err := pool.Exec(context.Background(),
		`UPDATE connections SET next_cert_key_wrapped_dek = set_byte(next_cert_key_wrapped_dek, 20, get_byte(next_cert_key_wrapped_dek, 20) # 1) WHERE id = $1`,
		damaged); err != nil {
		t.Fatal(err)
	}

	res, err := rotation.Rotate(context.Background(), st, k.both(t), rotation.Options{BatchSize: 7})
	if !errors.Is(err, rotation.ErrIncomplete) || !errors.Is(err, crypto.ErrUnwrap) || !strings.Contains(err.Error(), "next certificate") {
		t.Fatalf("error %v: want ErrIncomplete and ErrUnwrap naming the next certificate's key", err)
	}
	if res.ToRewrap != 100 || res.Rewrapped != 99 || res.Remaining() != 1 || res.Failed["connection "+damaged] == nil {
		t.Errorf("result %+v: want 99 of 100 rows rewrapped and %s failed", res, damaged)
	}
	delete(want, damaged)
	if _, err := pool.Exec(context.Background(), `DELETE FROM connections WHERE id = $1`, damaged); err != nil {
		t.Fatal(err)
	}
	if counts := rotationtest.Check(t, pool, k.newOnly(t), want); !cmp.Equal(counts, map[string]int64{"new": 40 + 2*59}) {
		t.Errorf("sealed values per key after rotation: %v", counts)
	}
}

func TestRotateDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	k := newKeys()
	want := rotationtest.Seed(t, pool, k.oldOnly(t), 30)

	res := rotate(t, st, k.both(t), rotation.Options{DryRun: true})
	if !res.DryRun || res.ToRewrap != 30 || res.Rewrapped != 0 || res.Remaining() != -1 {
		t.Errorf("result %+v", res)
	}
	if counts := rotationtest.Check(t, pool, k.oldOnly(t), want); !cmp.Equal(counts, map[string]int64{"old": 30}) {
		t.Errorf("rows per key after a dry run: %v", counts)
	}
	var summary bytes.Buffer
	res.WriteSummary(&summary)
	if got, wantLine := summary.String(), "dry run: would rewrap 30 rows from old (30 rows) to the active key new; nothing was changed\n"; got != wantLine {
		t.Errorf("summary %q, want %q", got, wantLine)
	}
}

func TestRotateRefusesWhenAKeyInUseIsMissing(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	k := newKeys()
	gone := rotationtest.Key("gone")
	rotationtest.Seed(t, pool, k.oldOnly(t), 5)
	rotationtest.Seed(t, pool, rotationtest.Keyring(t, gone, "gone"), 2)

	for _, dry := range []bool{false, true} {
		_, err := rotation.Rotate(context.Background(), st, k.both(t), rotation.Options{DryRun: dry})
		if err == nil || !strings.Contains(err.Error(), "gone (2 rows)") || !strings.Contains(err.Error(), crypto.EnvKeys) {
			t.Errorf("dry run %t: error %v, want one naming the missing key and %s", dry, err, crypto.EnvKeys)
		}
	}
	counts, err := st.KEKCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"old": 5, "gone": 2}, counts); diff != "" {
		t.Errorf("rows were changed (-want +got):\n%s", diff)
	}
}

func TestRotateSkipsADamagedRowAndReportsIt(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	k := newKeys()
	want := rotationtest.Seed(t, pool, k.oldOnly(t), 50)
	damaged := slices.Sorted(maps.Keys(want))[7]
	if _, err := pool.Exec(context.Background(),
		`UPDATE connections SET secret_wrapped_dek = set_byte(secret_wrapped_dek, 20, get_byte(secret_wrapped_dek, 20) # 1) WHERE id = $1`,
		damaged); err != nil {
		t.Fatal(err)
	}

	res, err := rotation.Rotate(context.Background(), st, k.both(t), rotation.Options{BatchSize: 10})
	if !errors.Is(err, rotation.ErrIncomplete) || !errors.Is(err, crypto.ErrUnwrap) || !strings.Contains(err.Error(), damaged) {
		t.Fatalf("error %v: want ErrIncomplete and ErrUnwrap naming %s", err, damaged)
	}
	if res.Rewrapped != 49 || res.Remaining() != 1 || len(res.Failed) != 1 || res.Failed["connection "+damaged] == nil {
		t.Errorf("result %+v: want 49 rewrapped and %s failed", res, damaged)
	}
	delete(want, damaged)
	if _, err := pool.Exec(context.Background(), `DELETE FROM connections WHERE id = $1`, damaged); err != nil {
		t.Fatal(err)
	}
	rotationtest.Check(t, pool, k.newOnly(t), want)
}

func TestRotateStopsBetweenBatchesWhenCancelled(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	k := newKeys()
	want := rotationtest.Seed(t, pool, k.oldOnly(t), 500)
	const batch = 40
	at := rand.Int64N(480) + 1 // cancel while this row's batch is open
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	res, err := rotation.Rotate(ctx, st, k.hooked(t, at, cancel), rotation.Options{BatchSize: batch, Workers: 1})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, rotation.ErrIncomplete) || !res.Interrupted {
		t.Fatalf("cancelled at row %d: error %v, interrupted %t", at, err, res.Interrupted)
	}
	// The batch that was open when ctx ended was committed, and no other
	// (with one worker).
	if wantDone := (at + batch - 1) / batch * batch; res.Rewrapped != wantDone {
		t.Errorf("cancelled at row %d: rewrapped %d, want %d", at, res.Rewrapped, wantDone)
	}
	rotationtest.Check(t, pool, k.both(t), want)

	res = rotate(t, st, k.both(t), rotation.Options{BatchSize: batch})
	if res.Rewrapped+(at+batch-1)/batch*batch != 500 {
		t.Errorf("the second run rewrapped %d", res.Rewrapped)
	}
	rotationtest.Check(t, pool, k.newOnly(t), want)
}

// Environment of the child process of TestRotateSurvivesSIGKILL.
const (
	envChildDB    = "ROTATION_TEST_CHILD_DATABASE_URL"
	envChildKeys  = "ROTATION_TEST_CHILD_KEYS"
	envChildAt    = "ROTATION_TEST_CHILD_PAUSE_AT"
	envChildBatch = "ROTATION_TEST_CHILD_BATCH"
)

// TestRotateSurvivesSIGKILL kills a rotating process at random rows, in the
// middle of a batch, several times, and then finishes the rotation: every
// secret must open under the new key alone and equal what was stored.
func TestRotateSurvivesSIGKILL(t *testing.T) {
	if os.Getenv(envChildDB) != "" {
		rotateInChild(t)
		return
	}
	t.Parallel()
	dbURL := storetest.URL(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool)
	k := newKeys()
	const total, batch = 3000, 100
	want := rotationtest.Seed(t, pool, k.oldOnly(t), total)

	var done int64
	for kill := range 3 {
		at := rand.Int64N(total-done) + 1
		cmd := exec.Command(os.Args[0], "-test.run=^TestRotateSurvivesSIGKILL$")
		cmd.Env = append(os.Environ(), envChildDB+"="+dbURL, envChildKeys+"="+k.old+","+k.new,
			envChildAt+"="+strconv.FormatInt(at, 10), envChildBatch+"="+strconv.Itoa(batch))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		paused := false
		for sc := bufio.NewScanner(out); sc.Scan(); {
			if sc.Text() == "paused" {
				paused = true
				break
			}
		}
		if !paused {
			_ = cmd.Wait()
			t.Fatalf("kill %d: the child did not reach row %d", kill, at)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("kill %d: child ended with %v, want killed", kill, err)
		}
		waitForOtherTransactions(t, pool)

		// Only the batches committed before the kill count; the open one
		// rolled back.
		done += (at - 1) / batch * batch
		counts := rotationtest.Check(t, pool, k.both(t), want)
		if counts["new"] != done || counts["old"] != total-done {
			t.Fatalf("kill %d at row %d: rows per key %v, want new: %d", kill, at, counts, done)
		}
		t.Logf("kill %d: at row %d of this run; %d of %d rows rewrapped so far", kill, at, done, total)
	}

	res := rotate(t, st, k.both(t), rotation.Options{BatchSize: batch})
	if res.Rewrapped != total-done || res.Remaining() != 0 {
		t.Errorf("final run: %+v, want %d rewrapped", res, total-done)
	}
	rotationtest.Check(t, pool, k.newOnly(t), want)
}

// rotateInChild is the child of TestRotateSurvivesSIGKILL: it rotates with
// a KEK that, before its Nth wrap, says "paused" and waits to be killed,
// holding its open batch's row locks.
func rotateInChild(t *testing.T) {
	at, _ := strconv.ParseInt(os.Getenv(envChildAt), 10, 64)
	batch, _ := strconv.Atoi(os.Getenv(envChildBatch))
	pool, err := pgxpool.New(context.Background(), os.Getenv(envChildDB))
	if err != nil {
		t.Fatal(err)
	}
	both := rotationtest.Keyring(t, os.Getenv(envChildKeys), "new")
	oldKEK, _ := both.KEK("old")
	newKEK, _ := both.KEK("new")
	ring, err := crypto.NewKeyring(&hookKEK{KEK: newKEK, at: at, hook: func() {
		fmt.Println("paused")
		time.Sleep(time.Hour) // until the parent kills this process
	}}, oldKEK)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rotation.Rotate(context.Background(), store.New(pool), ring, rotation.Options{BatchSize: batch, Workers: 1})
	t.Fatalf("the rotation was not paused: it ended with %v", err)
}

// waitForOtherTransactions returns once no other session of pool's
// database has a transaction open: a killed client's backend ends its
// transaction only when it notices the closed socket.
func waitForOtherTransactions(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for {
		var n int
		err := pool.QueryRow(context.Background(), `
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// writer makes the changes that API servers make while a rotation runs, on
// its own connections, and keeps what each secret must open to.
type writer struct {
	st   *store.Store
	ring *crypto.Keyring // the keyring this "replica" seals with
	want map[string]rotationtest.Secret
	ids  []string
	rng  *rand.Rand
}

var audit = store.Audit{Actor: "rotation-test", RequestID: "req"}

// step makes one change: create a connection, replace a secret (a PATCH of
// client_secret), or rename one (a PATCH that keeps the sealed secret).
func (w *writer) step(ctx context.Context, t *testing.T) {
	switch op := w.rng.IntN(3); {
	case op == 0 || len(w.ids) == 0:
		id := uuid.NewString()
		s := rotationtest.Secret{Account: "acct-writer", Plaintext: "Q~created-" + id}
		c := model.Connection{
			ID: id, Account: s.Account, Name: "created", InstanceURL: "https://w" + id[:8] + ".crm.dynamics.com",
			Cloud: model.CloudPublic, ClientID: uuid.NewString(), Secret: rotationtest.Seal(t, w.ring, s.Account, id, s.Plaintext),
		}
		if _, err := w.st.CreateConnection(ctx, c, audit); err != nil {
			t.Errorf("create: %v", err)
			return
		}
		w.want[id] = s
		w.ids = append(w.ids, id)
	case op == 1:
		id := w.ids[w.rng.IntN(len(w.ids))]
		s := w.want[id]
		s.Plaintext = "Q~replaced-" + uuid.NewString()
		_, err := w.st.UpdateConnection(ctx, s.Account, uuid.MustParse(id), audit, func(c *model.Connection) error {
			c.Secret = rotationtest.Seal(t, w.ring, c.Account, c.ID, s.Plaintext)
			return nil
		})
		if err != nil {
			t.Errorf("replace secret of %s: %v", id, err)
			return
		}
		w.want[id] = s
	default:
		id := w.ids[w.rng.IntN(len(w.ids))]
		_, err := w.st.UpdateConnection(ctx, w.want[id].Account, uuid.MustParse(id), audit, func(c *model.Connection) error {
			c.Name = "renamed " + strconv.Itoa(w.rng.Int())
			return nil
		})
		if err != nil {
			t.Errorf("rename %s: %v", id, err)
		}
	}
}

// TestRotateWithConcurrentWrites rotates while four "replicas" create
// connections, replace secrets and rename connections; one of them still
// seals with the old key, as a replica that has not been restarted would.
// Every secret must open afterwards, and a second run must leave none under
// the old key.
func TestRotateWithConcurrentWrites(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	k := newKeys()
	seeded := rotationtest.Seed(t, pool, k.oldOnly(t), 2000)
	ids := slices.Sorted(maps.Keys(seeded))
	ctx := context.Background()

	var (
		writers []*writer
		done    = make(chan struct{}) // closed when the rotation ends
		warm    sync.WaitGroup        // each writer is under way
		wg      sync.WaitGroup
		during  atomic.Int64 // changes made while the rotation ran
		running atomic.Bool
	)
	for i := range 4 {
		ring := k.both(t)
		if i == 0 {
			ring = k.oldOnly(t)
		}
		w := &writer{st: st, ring: ring, want: map[string]rotationtest.Secret{}, rng: rand.New(rand.NewPCG(uint64(i), 1))}
		for _, id := range ids[i*len(ids)/4 : (i+1)*len(ids)/4] {
			w.want[id] = seeded[id]
			w.ids = append(w.ids, id)
		}
		writers = append(writers, w)
		warm.Add(1)
		wg.Go(func() {
			// Twenty changes before the rotation starts, then on until it ends.
			for n := 0; ; n++ {
				if n == 20 {
					warm.Done()
				}
				select {
				case <-done:
					if n >= 20 {
						return
					}
				default:
				}
				w.step(ctx, t)
				if running.Load() {
					during.Add(1)
				}
			}
		})
	}
	warm.Wait()
	running.Store(true)
	res, err := rotation.Rotate(ctx, st, k.both(t), rotation.Options{BatchSize: 20})
	running.Store(false)
	close(done)
	wg.Wait()
	// The replica with the old key may have written after the last pass.
	if err != nil && !errors.Is(err, rotation.ErrIncomplete) || len(res.Failed) > 0 || res.Interrupted {
		t.Fatalf("Rotate: %v (failed %v)", err, res.Failed)
	}
	want := map[string]rotationtest.Secret{}
	for _, w := range writers {
		maps.Copy(want, w.want)
	}
	t.Logf("rewrapped %d of %d while %d changes were made; %d connections after the writes",
		res.Rewrapped, res.ToRewrap, during.Load(), len(want))
	rotationtest.Check(t, pool, k.both(t), want)

	rotate(t, st, k.both(t), rotation.Options{})
	rotationtest.Check(t, pool, k.newOnly(t), want)
}

// TestConcurrentRotations runs two rotations at once: both succeed, each
// row is rewrapped by exactly one of them, and every secret opens.
func TestConcurrentRotations(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	k := newKeys()
	const total = 3000
	want := rotationtest.Seed(t, pool, k.oldOnly(t), total)

	start := make(chan struct{})
	results := make([]rotation.Result, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			<-start
			results[i], errs[i] = rotation.Rotate(context.Background(), st, k.both(t), rotation.Options{BatchSize: 50})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("rotation %d: %v", i, err)
		}
		if diff := cmp.Diff(map[string]int64{"new": total}, results[i].After); diff != "" {
			t.Errorf("rotation %d: After (-want +got):\n%s", i, diff)
		}
	}
	if n := results[0].Rewrapped + results[1].Rewrapped; n != total {
		t.Errorf("rewrapped %d + %d = %d rows, want %d: some row was rewrapped twice or not at all",
			results[0].Rewrapped, results[1].Rewrapped, n, total)
	}
	t.Logf("the two rotations rewrapped %d and %d rows", results[0].Rewrapped, results[1].Rewrapped)
	rotationtest.Check(t, pool, k.newOnly(t), want)
}

// TestRotateRewrapsWebhookSecrets: webhook signing secrets are rewrapped
// with connections' client secrets, each bound to its own kind of row, and
// a damaged webhook row is reported by kind and id.
func TestRotateRewrapsWebhookSecrets(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	k := newKeys()
	want := rotationtest.Seed(t, pool, k.oldOnly(t), 40)
	hooks := rotationtest.SeedWebhooks(t, pool, k.oldOnly(t), 25)
	damaged := slices.Sorted(maps.Keys(hooks))[3]
	if _, err := pool.Exec(context.Background(),
		`UPDATE webhooks SET secret_wrapped_dek = set_byte(secret_wrapped_dek, 20, get_byte(secret_wrapped_dek, 20) # 1) WHERE id = $1`,
		damaged); err != nil {
		t.Fatal(err)
	}

	res, err := rotation.Rotate(context.Background(), st, k.both(t), rotation.Options{BatchSize: 10})
	if !errors.Is(err, rotation.ErrIncomplete) || !strings.Contains(err.Error(), "webhook "+damaged) {
		t.Fatalf("error %v: want ErrIncomplete naming webhook %s", err, damaged)
	}
	if res.ToRewrap != 65 || res.Rewrapped != 64 || res.Remaining() != 1 || len(res.Failed) != 1 || res.Failed["webhook "+damaged] == nil {
		t.Errorf("result %+v: want 64 of 65 rewrapped and webhook %s failed", res, damaged)
	}
	var summary bytes.Buffer
	res.WriteSummary(&summary)
	if !strings.Contains(summary.String(), "  webhook "+damaged+": ") {
		t.Errorf("summary does not name the damaged webhook:\n%s", summary.String())
	}
	if _, err := pool.Exec(context.Background(), `DELETE FROM webhooks WHERE id = $1`, damaged); err != nil {
		t.Fatal(err)
	}
	delete(hooks, damaged)
	maps.Copy(want, hooks)
	if counts := rotationtest.Check(t, pool, k.newOnly(t), want); !cmp.Equal(counts, map[string]int64{"new": 64}) {
		t.Errorf("rows per key after rotation: %v", counts)
	}
	// With the damaged row gone, a second run finishes and forgets "old".
	rotate(t, st, k.both(t), rotation.Options{})
	if ids, err := st.KEKIDsInUse(context.Background()); err != nil || !slices.Equal(ids, []string{"new"}) {
		t.Errorf("key ids in use = %v, %v; want [new]", ids, err)
	}
}
