package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// notices returns the expiry notices among the account's events.
func notices(t testing.TB, s *store.Store, acct string) []store.Event {
	t.Helper()
	return allEvents(t, s, acct, store.EventQuery{Types: []string{store.EventConnectionSecretExpiring, store.EventConnectionSecretExpired}})
}

// waitNotices waits until the account has n notices and returns them.
func waitNotices(t testing.TB, s *store.Store, acct string, n int) []store.Event {
	t.Helper()
	eventually(t, s, acct, func([]store.Event) bool { return len(notices(t, s, acct)) >= n })
	got := notices(t, s, acct)
	if len(got) != n {
		t.Fatalf("%d expiry notices, want %d: %v", len(got), n, types(got))
	}
	return got
}

func sendAll(t testing.TB, s *store.Store) int64 {
	t.Helper()
	n, err := s.SendExpiryNotices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestExpiryNotices: each notice goes out once per credential, at the
// smallest threshold reached; time passing brings the next, a new expiry or
// a new secret starts over, and an expired credential gets secret_expired.
func TestExpiryNotices(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	in := newConnection(account)
	in.SecretExpiresAt = ptr(time.Now().Add(5 * 24 * time.Hour))
	c := create(t, s, in)
	id := uuid.MustParse(c.ID)

	// Due at once on create: the 7-day notice, and not the 30-day one.
	got := waitNotices(t, s, account, 1)
	if d := data(t, got[0]); got[0].Type != store.EventConnectionSecretExpiring || d["days_left"] != float64(5) ||
		d["expires_at"] != in.SecretExpiresAt.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) {
		t.Fatalf("notice on create: %s %s", got[0].Type, got[0].Data)
	}
	if n := sendAll(t, s); n != 0 {
		t.Errorf("a second run sent %d notices", n)
	}

	// Two days pass: the 1-day threshold is not reached yet; then it is.
	if _, err := s.Pool().Exec(ctx, `UPDATE connections SET secret_expires_at = now() + interval '3 days',
		expiry_notice_for = now() + interval '3 days' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if n := sendAll(t, s); n != 0 {
		t.Errorf("3 days before expiry, after the 7-day notice: %d notices", n)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE connections SET secret_expires_at = now() + interval '20 hours',
		expiry_notice_for = now() + interval '20 hours' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if n := sendAll(t, s); n != 1 {
		t.Errorf("20 hours before expiry: %d notices, want the 1-day one", n)
	}
	if d := data(t, waitNotices(t, s, account, 2)[1]); d["days_left"] != float64(1) {
		t.Errorf("1-day notice: %v", d)
	}
	// It passes.
	if _, err := s.Pool().Exec(ctx, `UPDATE connections SET secret_expires_at = now() - interval '1 minute',
		expiry_notice_for = now() - interval '1 minute' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	sendAll(t, s)
	sendAll(t, s)
	if e := waitNotices(t, s, account, 3)[2]; e.Type != store.EventConnectionSecretExpired || data(t, e)["days_left"] != nil {
		t.Errorf("expired notice: %s %s", e.Type, e.Data)
	}

	// A new secret with the very same expiry starts over.
	expires := time.Now().Add(20 * 24 * time.Hour)
	if _, err := s.UpdateConnection(ctx, account, id, testAudit, func(c *model.Connection) error {
		c.SecretExpiresAt = &expires
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if d := data(t, waitNotices(t, s, account, 4)[3]); d["days_left"] != float64(20) {
		t.Errorf("new expiry: %v", d)
	}
	if _, err := s.UpdateConnection(ctx, account, id, testAudit, func(c *model.Connection) error {
		c.Secret.Ciphertext = []byte("another secret")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if d := data(t, waitNotices(t, s, account, 5)[4]); d["days_left"] != float64(20) {
		t.Errorf("new secret, same expiry: %v", d)
	}
	if n := sendAll(t, s); n != 0 {
		t.Errorf("after the new secret's notice: %d more", n)
	}
}

// TestNoNoticeFarFromExpiry: nothing is sent for a credential more than 30
// days from expiry, or without one.
func TestNoNoticeFarFromExpiry(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	far := newConnection(account)
	far.SecretExpiresAt = ptr(time.Now().Add(31 * 24 * time.Hour))
	create(t, s, far)
	create(t, s, newConnection(account))
	if n := sendAll(t, s); n != 0 {
		t.Errorf("%d notices", n)
	}
}
