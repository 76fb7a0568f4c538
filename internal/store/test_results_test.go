package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

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
		if err := s.RecordTestResult(ctx, account, uuid.MustParse(c.ID), testAudit, r); err != nil {
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
	if err := s.RecordTestResult(ctx, other, uuid.MustParse(c.ID), testAudit, r); err != store.ErrNotFound {
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
	r := store.TestRecord{Status: model.StatusFailing, Result: []byte(`{"ok": false}`), Code: "client_secret_expired", SecretExpired: true, TestedVersion: tested}
	if err := s.RecordTestResult(ctx, account, uuid.MustParse(c.ID), testAudit, r); err != nil {
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

	if err := s.RecordTestResult(ctx, other, uuid.MustParse(c.ID), testAudit, store.TestRecord{Status: model.StatusConnected, Result: result, TestedVersion: c.Version}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another account: err = %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(c, get(t, s, account, c.ID)); diff != "" {
		t.Fatalf("another account's save changed the row (-before +after):\n%s", diff)
	}
	if err := s.RecordTestResult(ctx, account, uuid.New(), testAudit, store.TestRecord{Status: model.StatusConnected, Result: result, TestedVersion: c.Version}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown id: err = %v, want ErrNotFound", err)
	}

	if err := s.RecordTestResult(ctx, account, uuid.MustParse(c.ID), testAudit, store.TestRecord{Status: model.StatusConnected, Result: result, TestedVersion: c.Version}); err != nil {
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

	if err := s.RecordTestResult(ctx, account, uuid.MustParse(c.ID), testAudit, store.TestRecord{Status: "bogus", Result: result, TestedVersion: got.Version}); err == nil {
		t.Error("status bogus was accepted")
	}
}
