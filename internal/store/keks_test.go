package store_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// TestKEKIDsFollowWritesAndPrune: the key ids in use are registered by every
// write that names one (insert, secret change, rewrap, raw SQL alike), stay
// listed after their last secret moves away, and go on PruneKEKIDs.
func TestKEKIDsFollowWritesAndPrune(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	ids := func() []string {
		t.Helper()
		got, err := s.KEKIDsInUse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	a := createUnder(t, s, "k1", 2)
	createUnder(t, s, "k2", 1)
	if _, err := s.Pool().Exec(ctx, `UPDATE connections SET secret_kek_id = 'k9' WHERE id = $1`, a[1].ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"k1", "k2", "k9"}, ids()); diff != "" {
		t.Errorf("after writes (-want +got):\n%s", diff)
	}

	// Move every k1 and k9 secret to k2: the ids stay listed until pruned.
	for _, c := range a {
		if _, err := s.UpdateConnection(ctx, account, uuid.MustParse(c.ID), testAudit, func(c *model.Connection) error {
			c.Secret.KEKID = "k2"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"k1", "k2", "k9"}, ids()); diff != "" {
		t.Errorf("before prune (-want +got):\n%s", diff)
	}
	for id, want := range map[string]bool{"k1": false, "k2": true, "k9": false, "nope": false} {
		if used, err := s.KEKInUse(ctx, id); err != nil || used != want {
			t.Errorf("KEKInUse(%s) = %t, %v; want %t", id, used, err, want)
		}
	}
	pruned, err := s.PruneKEKIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"k1", "k9"}, pruned); diff != "" {
		t.Errorf("pruned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"k2"}, ids()); diff != "" {
		t.Errorf("after prune (-want +got):\n%s", diff)
	}
	// A key used again after a prune is registered again.
	createUnder(t, s, "k1", 1)
	if diff := cmp.Diff([]string{"k1", "k2"}, ids()); diff != "" {
		t.Errorf("after reuse (-want +got):\n%s", diff)
	}
}

func TestKEKIDsInUse(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()

	ids, err := s.KEKIDsInUse(ctx)
	if err != nil || len(ids) != 0 {
		t.Fatalf("empty table: got %v, %v; want none", ids, err)
	}
	for _, k := range []struct{ account, kek string }{
		{account, "k2"}, {account, "k1"}, {other, "k3"}, {account, "k2"}, {other, "k1"},
	} {
		c := newConnection(k.account)
		c.Secret.KEKID = k.kek
		create(t, s, c)
	}
	ids, err = s.KEKIDsInUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"k1", "k2", "k3"}, ids); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
