package store_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// fakeRewrap stands in for crypto: the new wrapped DEK is the old one with
// a prefix naming the new KEK, so a test can tell what was rewrapped from what.
func fakeRewrap(active string) store.RewrapFunc {
	return func(_ context.Context, v store.SealedValue) (model.SealedSecret, error) {
		return model.SealedSecret{
			Ciphertext: v.Sealed.Ciphertext,
			WrappedDEK: append([]byte(active+"<"), v.Sealed.WrappedDEK...),
			KEKID:      active,
		}, nil
	}
}

// createUnder stores n connections whose secrets are under kek and returns
// them sorted by id.
func createUnder(t *testing.T, s *store.Store, kek string, n int) []model.Connection {
	t.Helper()
	var cs []model.Connection
	for range n {
		c := newConnection(account)
		c.Secret.KEKID = kek
		cs = append(cs, create(t, s, c))
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
	return cs
}

func kekCounts(t *testing.T, s *store.Store) map[string]int64 {
	t.Helper()
	counts, err := s.KEKCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

func TestRewrapBatchRewrapsOnlyOtherKEKsInIDOrder(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	old := append(createUnder(t, s, "k1", 5), createUnder(t, s, "k0", 2)...)
	sort.Slice(old, func(i, j int) bool { return old[i].ID < old[j].ID })
	active := createUnder(t, s, "k2", 3)

	var seen []string
	rewrap := func(ctx context.Context, v store.SealedValue) (model.SealedSecret, error) {
		seen = append(seen, v.ID)
		if v.Account != account || v.Slot != "" {
			t.Errorf("row %s: account %q, slot %q; want %q and the secret's", v.ID, v.Account, v.Slot, account)
		}
		return fakeRewrap("k2")(ctx, v)
	}
	o := store.RewrapOptions{Kind: store.ConnectionSecrets, ActiveKEKID: "k2", Limit: 3}
	var batches []store.RewrapResult
	for {
		res, err := s.RewrapBatch(ctx, o, rewrap)
		if err != nil {
			t.Fatal(err)
		}
		if res.Selected == 0 {
			break
		}
		batches = append(batches, res)
		o.After = res.LastID
	}
	want := []store.RewrapResult{
		{Selected: 3, Rewrapped: 3, LastID: old[2].ID},
		{Selected: 3, Rewrapped: 3, LastID: old[5].ID},
		{Selected: 1, Rewrapped: 1, LastID: old[6].ID},
	}
	if diff := cmp.Diff(want, batches); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	var wantSeen []string
	for _, c := range old {
		wantSeen = append(wantSeen, c.ID)
	}
	if diff := cmp.Diff(wantSeen, seen); diff != "" {
		t.Errorf("rows passed to rewrap, in order (-want +got):\n%s", diff)
	}

	for _, c := range old {
		got := get(t, s, account, c.ID)
		wantSecret := model.SealedSecret{
			Ciphertext: c.Secret.Ciphertext,
			WrappedDEK: append([]byte("k2<"), c.Secret.WrappedDEK...),
			KEKID:      "k2",
		}
		if diff := cmp.Diff(wantSecret, got.Secret); diff != "" {
			t.Errorf("row %s secret (-want +got):\n%s", c.ID, diff)
		}
		// Nothing else changed: the connection and its secret are the same.
		got.Secret = c.Secret
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("row %s changed beyond the wrapped key (-want +got):\n%s", c.ID, diff)
		}
	}
	for _, c := range active {
		if got := get(t, s, account, c.ID); !cmp.Equal(c, got) {
			t.Errorf("row %s under the active key was changed", c.ID)
		}
	}
	if diff := cmp.Diff(map[string]int64{"k2": 10}, kekCounts(t, s)); diff != "" {
		t.Errorf("KEKCounts (-want +got):\n%s", diff)
	}
}

func TestRewrapBatchSkipRowLeavesItAndGoesOn(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	cs := createUnder(t, s, "k1", 4)
	damaged := cs[1].ID
	rewrap := func(ctx context.Context, v store.SealedValue) (model.SealedSecret, error) {
		if v.ID == damaged {
			return model.SealedSecret{}, errors.Join(store.ErrSkipRow, errors.New("does not unwrap"))
		}
		return fakeRewrap("k2")(ctx, v)
	}
	res, err := s.RewrapBatch(ctx, store.RewrapOptions{Kind: store.ConnectionSecrets, ActiveKEKID: "k2", Limit: 10}, rewrap)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.RewrapResult{Selected: 4, Rewrapped: 3, Skipped: 1, LastID: cs[3].ID}, res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := get(t, s, account, damaged); !cmp.Equal(cs[1], got) {
		t.Error("the skipped row was changed")
	}
	if diff := cmp.Diff(map[string]int64{"k1": 1, "k2": 3}, kekCounts(t, s)); diff != "" {
		t.Errorf("KEKCounts (-want +got):\n%s", diff)
	}
}

func TestRewrapBatchErrorWritesNothing(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	cs := createUnder(t, s, "k1", 4)
	kmsDown := errors.New("kms unavailable")

	for name, rewrap := range map[string]store.RewrapFunc{
		"rewrap error": func(ctx context.Context, v store.SealedValue) (model.SealedSecret, error) {
			if v.ID == cs[2].ID {
				return model.SealedSecret{}, kmsDown
			}
			return fakeRewrap("k2")(ctx, v)
		},
		"changed ciphertext": func(ctx context.Context, v store.SealedValue) (model.SealedSecret, error) {
			out, _ := fakeRewrap("k2")(ctx, v)
			if v.ID == cs[2].ID {
				out.Ciphertext = []byte("other")
			}
			return out, nil
		},
		"wrong kek id": func(ctx context.Context, v store.SealedValue) (model.SealedSecret, error) {
			out, _ := fakeRewrap("k2")(ctx, v)
			if v.ID == cs[2].ID {
				out.KEKID = "k3"
			}
			return out, nil
		},
	} {
		t.Run(name+" rolls the batch back", func(t *testing.T) {
			_, err := s.RewrapBatch(ctx, store.RewrapOptions{Kind: store.ConnectionSecrets, ActiveKEKID: "k2", Limit: 10}, rewrap)
			if err == nil {
				t.Fatal("RewrapBatch succeeded")
			}
			if !strings.Contains(err.Error(), cs[2].ID) {
				t.Errorf("error %q does not name the row", err)
			}
			if name == "rewrap error" && !errors.Is(err, kmsDown) {
				t.Errorf("error %q does not wrap rewrap's", err)
			}
			if diff := cmp.Diff(map[string]int64{"k1": 4}, kekCounts(t, s)); diff != "" {
				t.Errorf("KEKCounts (-want +got):\n%s", diff)
			}
		})
	}
}

// lockRow opens a transaction that holds c's row locked FOR UPDATE, as
// UpdateConnection does while it runs, and returns it.
func lockRow(t *testing.T, s *store.Store, id string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `SELECT 1 FROM connections WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	return tx
}

func TestRewrapBatchSkipsLockedRows(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	cs := createUnder(t, s, "k1", 3)
	tx := lockRow(t, s, cs[1].ID)

	res, err := s.RewrapBatch(ctx, store.RewrapOptions{Kind: store.ConnectionSecrets, ActiveKEKID: "k2", Limit: 10}, fakeRewrap("k2"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.RewrapResult{Selected: 2, Rewrapped: 2, LastID: cs[2].ID}, res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"k1": 1, "k2": 2}, kekCounts(t, s)); diff != "" {
		t.Errorf("KEKCounts (-want +got):\n%s", diff)
	}
}

// waitForLockWait returns once some session of the test's database waits for
// a lock. It polls pg_stat_activity: there is no event to wait on.
func waitForLockWait(t *testing.T, s *store.Store) {
	t.Helper()
	for {
		var waiting bool
		err := s.Pool().QueryRow(context.Background(), `
SELECT EXISTS (SELECT 1 FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
	}
}

func TestRewrapBatchWaitSeesTheLockHoldersChange(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	cs := createUnder(t, s, "k1", 3)
	renamed, replaced := cs[0].ID, cs[1].ID

	// Two PATCHes are in flight: one renames its connection (its secret stays
	// under k1), one replaces the secret under the active key k2.
	rename := lockRow(t, s, renamed)
	replace := lockRow(t, s, replaced)
	type result struct {
		res store.RewrapResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.RewrapBatch(ctx, store.RewrapOptions{Kind: store.ConnectionSecrets, ActiveKEKID: "k2", Limit: 10, Wait: true}, fakeRewrap("k2"))
		done <- result{res, err}
	}()
	waitForLockWait(t, s)
	if _, err := rename.Exec(ctx, `UPDATE connections SET name = 'renamed' WHERE id = $1`, renamed); err != nil {
		t.Fatal(err)
	}
	if _, err := replace.Exec(ctx, `UPDATE connections SET secret_wrapped_dek = 'new', secret_kek_id = 'k2' WHERE id = $1`, replaced); err != nil {
		t.Fatal(err)
	}
	if err := rename.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replace.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	// The renamed row is rewrapped from its new version; the replaced one is
	// no longer selected, so its new secret is kept.
	if diff := cmp.Diff(store.RewrapResult{Selected: 2, Rewrapped: 2, LastID: cs[2].ID}, r.res); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := get(t, s, account, renamed); got.Name != "renamed" || got.Secret.KEKID != "k2" ||
		!bytes.Equal(got.Secret.WrappedDEK, append([]byte("k2<"), cs[0].Secret.WrappedDEK...)) {
		t.Errorf("renamed row: name %q, secret %+v", got.Name, got.Secret)
	}
	if got := get(t, s, account, replaced); string(got.Secret.WrappedDEK) != "new" {
		t.Errorf("replaced row's new secret was overwritten: wrapped DEK %q", got.Secret.WrappedDEK)
	}
}

func TestKEKCounts(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	if got := kekCounts(t, s); len(got) != 0 {
		t.Errorf("empty table: %v", got)
	}
	createUnder(t, s, "k1", 3)
	createUnder(t, s, "k2", 1)
	got := kekCounts(t, s)
	if diff := cmp.Diff(map[string]int64{"k1": 3, "k2": 1}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	ids, err := s.KEKIDsInUse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ids, slices.Sorted(maps.Keys(got))); diff != "" {
		t.Errorf("KEKCounts and KEKIDsInUse disagree (-KEKIDsInUse +KEKCounts):\n%s", diff)
	}
}
