package store_test

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// allEvents pages through the account's events with pages of limit.
func allEvents(t testing.TB, s *store.Store, account string, q store.EventQuery) []store.Event {
	t.Helper()
	var all []store.Event
	for {
		page, next, err := s.ListEvents(context.Background(), account, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			if next != q.After {
				t.Fatalf("an empty page moved the cursor from %q to %q", q.After, next)
			}
			return all
		}
		all = append(all, page...)
		q.After = next
	}
}

// eventually polls the account's events until want says they are complete.
// The feed shows an event only once every older transaction of the cluster
// has ended; other tests' transactions can delay that a little.
func eventually(t testing.TB, s *store.Store, account string, want func([]store.Event) bool) []store.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := allEvents(t, s, account, store.EventQuery{})
		if want(got) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func types(events []store.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

func data(t testing.TB, e store.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEventsOfAConnectionsLife: create, update, a status change and delete
// each write their event in their transaction, in order, in the contract's
// shape, visible to their account only.
func TestEventsOfAConnectionsLife(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := create(t, s, newConnection(account))
	id := uuid.MustParse(c.ID)
	if _, err := s.RecordTestResult(ctx, account, id, testAudit, store.TestRecord{Status: model.StatusConnected,
		Result: []byte(`{"ok": true}`), Trigger: model.TriggerManual, TestedVersion: c.Version}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateConnection(ctx, account, id, testAudit, func(c *model.Connection) error {
		c.Name, c.Status = "renamed", model.StatusUntested
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConnection(ctx, account, id, testAudit, noCheck); err != nil {
		t.Fatal(err)
	}
	want := []string{store.EventConnectionCreated, store.EventConnectionStatusChanged, store.EventConnectionUpdated,
		store.EventConnectionStatusChanged, store.EventConnectionDeleted}
	got := eventually(t, s, account, func(e []store.Event) bool { return len(e) >= len(want) })
	if diff := cmp.Diff(want, types(got)); diff != "" {
		t.Fatalf("event types (-want +got):\n%s", diff)
	}
	idPattern := regexp.MustCompile(`^evt_[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$`)
	for i, e := range got {
		if !idPattern.MatchString(e.PublicID) || e.Account != account || e.ConnectionID == nil || *e.ConnectionID != id {
			t.Errorf("event %d: id %s account %s connection %v", i, e.PublicID, e.Account, e.ConnectionID)
		}
		if data(t, e)["connection_id"] != c.ID {
			t.Errorf("event %d data: %s", i, e.Data)
		}
	}
	tested := data(t, got[1])
	if tested["from"] != "untested" || tested["to"] != "connected" || tested["trigger"] != "manual" ||
		tested["code"] != nil || tested["setup_step"] != nil {
		t.Errorf("status_changed by the test: %s", got[1].Data)
	}
	if d := data(t, got[2]); !cmp.Equal(d["changed"], []any{"name"}) {
		t.Errorf("updated: %s", got[2].Data)
	}
	if d := data(t, got[3]); d["from"] != "connected" || d["to"] != "untested" || d["trigger"] != "update" {
		t.Errorf("status_changed by the edit: %s", got[3].Data)
	}
	if other := allEvents(t, s, "acct-other", store.EventQuery{}); len(other) != 0 {
		t.Errorf("another account sees %d events", len(other))
	}
	// The type filter, and pages of one.
	only := allEvents(t, s, account, store.EventQuery{Types: []string{store.EventConnectionStatusChanged}, Limit: 1})
	if diff := cmp.Diff([]string{store.EventConnectionStatusChanged, store.EventConnectionStatusChanged}, types(only)); diff != "" {
		t.Errorf("type filter (-want +got):\n%s", diff)
	}
	if _, _, err := s.ListEvents(ctx, account, store.EventQuery{After: "bogus"}); err != store.ErrInvalidCursor {
		t.Errorf("bogus cursor: %v", err)
	}
}

// TestEventFeedIsGapFree: an event whose transaction began first but commits
// last is neither skipped nor listed behind a cursor already handed out. The
// feed holds back every event written after the open transaction began,
// until it ends.
func TestEventFeedIsGapFree(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	appendOne := func(tx pgx.Tx, n int) {
		t.Helper()
		if _, err := s.AppendEvent(ctx, tx, store.NewEvent{Account: account, Type: store.EventWebhookPing, Data: map[string]int{"n": n}}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Rollback(ctx) }()
	appendOne(first, 1)
	if err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error { appendOne(tx, 2); return nil }); err != nil {
		t.Fatal(err)
	}
	page, cursor, err := s.ListEvents(ctx, account, store.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 0 || cursor != "" {
		t.Fatalf("while the older transaction runs, the feed shows %d events", len(page))
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := eventually(t, s, account, func(e []store.Event) bool { return len(e) >= 2 })
	var ns []float64
	for _, e := range got {
		ns = append(ns, data(t, e)["n"].(float64))
	}
	if !slices.Equal(ns, []float64{1, 2}) {
		t.Errorf("events in order %v, want [1 2]", ns)
	}
}

// TestPruneEvents deletes events older than the retention only.
func TestPruneEvents(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	create(t, s, newConnection(account))
	create(t, s, newConnection(account))
	if _, err := s.Pool().Exec(ctx, `UPDATE events SET created_at = now() - interval '31 days'
		WHERE id = (SELECT min(id) FROM events)`); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneEvents(ctx, store.EventRetention)
	if err != nil || n != 1 {
		t.Fatalf("PruneEvents = %d, %v; want 1", n, err)
	}
	if got := eventually(t, s, account, func(e []store.Event) bool { return len(e) >= 1 }); len(got) != 1 {
		t.Errorf("%d events left, want 1", len(got))
	}
}
