package store_test

import (
	"context"
	"fmt"
	"testing"

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
		if err := s.RecordTestResult(ctx, account, c.ID, testAudit, r); err != nil {
			t.Fatal(err)
		}
	}
	var all [][]byte
	cursor := ""
	for {
		page, next, err := s.TestResults(ctx, account, c.ID, store.Page{Limit: 20, Cursor: cursor})
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
	if err := s.RecordTestResult(ctx, other, c.ID, testAudit, r); err != store.ErrNotFound {
		t.Errorf("another account's record: err = %v, want ErrNotFound", err)
	}
	if page, _, err := s.TestResults(ctx, account, c.ID, store.Page{Limit: store.MaxLimit}); err != nil || len(page) != store.TestHistoryLength {
		t.Errorf("history after another account's record: %d results, err %v", len(page), err)
	}
	if _, _, err := s.TestResults(ctx, other, c.ID, store.Page{}); err != store.ErrNotFound {
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
	if _, err := s.UpdateConnection(ctx, account, c.ID, testAudit, func(c *model.Connection) error {
		c.Secret.Ciphertext = []byte("new-ciphertext")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := store.TestRecord{Status: model.StatusFailing, Result: []byte(`{"ok": false}`), Code: "client_secret_expired", SecretExpired: true, TestedVersion: tested}
	if err := s.RecordTestResult(ctx, account, c.ID, testAudit, r); err != nil {
		t.Fatal(err)
	}
	got := get(t, s, account, c.ID)
	if got.Status != model.StatusUntested || got.SecretExpiredAt != nil {
		t.Errorf("status %s, expired at %v: a stale result changed the connection", got.Status, got.SecretExpiredAt)
	}
	if page, _, err := s.TestResults(ctx, account, c.ID, store.Page{}); err != nil || len(page) != 1 {
		t.Errorf("history = %d results (err %v), want the 1 test", len(page), err)
	}
}
