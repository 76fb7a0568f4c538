package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// wrote is what a create wrote beside the connection: an audit event or an
// event.
type wrote struct {
	Kind, Type, Actor, RequestID, Account string
	Data                                  map[string]any
}

// written returns the audit events and events of the connection id.
func written(t *testing.T, s *store.Store, id string) []wrote {
	t.Helper()
	rows, _ := s.Pool().Query(context.Background(), `
		SELECT 'audit', action, actor, request_id, '', details FROM audit_events WHERE connection_id = $1
		UNION ALL
		SELECT 'event', type, '', '', account, data FROM events WHERE connection_id = $1`, id)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[wrote])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// wantWritten is what written returns for c, created by request req.
func wantWritten(c model.Connection, req string) []wrote {
	return []wrote{
		{Kind: "audit", Type: store.ActionCreated, Actor: "tester", RequestID: req, Data: map[string]any{
			"name": c.Name, "instance_url": c.InstanceURL, "client_id": c.ClientID, "cloud": string(c.Cloud),
			"credential_type": string(c.CredentialType)}},
		{Kind: "event", Type: store.EventConnectionCreated, Account: c.Account, Data: map[string]any{"connection_id": c.ID}},
	}
}

// TestCreateConnectionsAtOnce starts 20 creates at once, so that they share
// statements: distinct ones, three pairs of one instance and client, one of an
// existing connection's, and one the database refuses. Each gets what it
// would get alone: created (as a read returns it, with its audit event and
// connection.created event), or a *ConflictError naming the connection that
// holds its instance and client, or its own error; the refused and the
// conflicting write nothing.
func TestCreateConnectionsAtOnce(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	existing := create(t, s, newConnection(account))

	var in []model.Connection
	for range 12 {
		in = append(in, newConnection(account))
	}
	for range 3 {
		a, b := newConnection(account), newConnection(account)
		b.InstanceURL, b.ClientID = a.InstanceURL, a.ClientID
		in = append(in, a, b)
	}
	dup := newConnection(account)
	dup.InstanceURL, dup.ClientID = existing.InstanceURL, existing.ClientID
	bad := newConnection(account)
	bad.Cloud = "mars"
	in = append(in, dup, bad)

	got := make([]model.Connection, len(in))
	errs := make([]error, len(in))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range in {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.CreateConnection(ctx, c, store.Audit{Actor: "tester", RequestID: fmt.Sprint("req-", i)})
		})
	}
	close(start)
	wg.Wait()

	created := func(i int) {
		t.Helper()
		if errs[i] != nil {
			t.Errorf("create %d: %v", i, errs[i])
			return
		}
		if diff := cmp.Diff(get(t, s, account, in[i].ID), got[i]); diff != "" {
			t.Errorf("create %d returned other than Connection reads (-get +create):\n%s", i, diff)
		}
		if diff := cmp.Diff(wantWritten(got[i], fmt.Sprint("req-", i)), written(t, s, in[i].ID)); diff != "" {
			t.Errorf("create %d audit event and event (-want +got):\n%s", i, diff)
		}
	}
	nothing := func(i int) {
		t.Helper()
		if _, err := s.Connection(ctx, account, uuid.MustParse(in[i].ID)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("create %d was stored: Connection err = %v", i, err)
		}
		if w := written(t, s, in[i].ID); len(w) != 0 {
			t.Errorf("create %d wrote %v, want nothing", i, w)
		}
	}
	conflict := func(i int, holder string) {
		t.Helper()
		var c *store.ConflictError
		if !errors.As(errs[i], &c) || c.ExistingID != holder {
			t.Errorf("create %d: err = %v, want *ConflictError{ExistingID: %s}", i, errs[i], holder)
		}
		nothing(i)
	}

	for i := range 12 {
		created(i)
	}
	for i := 12; i < 18; i += 2 {
		winner, loser := i, i+1
		if errs[winner] != nil {
			winner, loser = loser, winner
		}
		created(winner)
		conflict(loser, in[winner].ID)
	}
	conflict(18, existing.ID)
	if errs[19] == nil || errors.Is(errs[19], store.ErrConflict) {
		t.Errorf("create of cloud mars: err = %v, want the database's refusal", errs[19])
	}
	nothing(19)
}

// TestCreateBatchStatement runs one batch statement with two creates of one
// instance and client: the first is created, the second skipped, as if they
// had run one after the other.
func TestCreateBatchStatement(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	a, b, c := newConnection(account), newConnection(account), newConnection(account)
	b.InstanceURL, b.ClientID = a.InstanceURL, a.ClientID
	inserted, err := store.InsertConnectionsBatch(ctx, s, []model.Connection{a, b, c}, testAudit)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true}; !slices.Equal(inserted, want) {
		t.Errorf("inserted = %v, want %v", inserted, want)
	}
	for _, x := range []model.Connection{a, c} {
		if diff := cmp.Diff(wantWritten(x, testAudit.RequestID), written(t, s, x.ID)); diff != "" {
			t.Errorf("connection %s: audit event and event (-want +got):\n%s", x.ID, diff)
		}
	}
	if w := written(t, s, b.ID); len(w) != 0 {
		t.Errorf("the skipped create wrote %v", w)
	}
}
