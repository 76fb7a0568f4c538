package api

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// events returns the actions of a connection's audit trail, newest first.
func (e *testEnv) events(account, id string) []string {
	e.t.Helper()
	res := e.do("GET", "/connections/"+id+"/events", account, nil)
	if res.status != http.StatusOK {
		e.t.Fatalf("events: %d %s", res.status, res.body)
	}
	var actions []string
	for _, it := range res.json(e.t)["items"].([]any) {
		ev := it.(map[string]any)
		if ev["actor"] != "user-"+account || ev["request_id"] == "" {
			e.t.Errorf("event %v lacks its actor or request id", ev)
		}
		actions = append(actions, ev["action"].(string))
	}
	return actions
}

func TestEveryChangeWritesOneAuditEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/connections", "acct-a", e.simCreate("ok")).json(t)["id"].(string)
	e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"name": "Renamed", "tenant_id": "11111111-1111-1111-1111-111111111111"})
	e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"client_secret": simulator.ClientSecret})
	decodeResult(t, e.do("POST", "/connections/"+id+"/test", "acct-a", nil))
	// Reads and refused writes record nothing.
	e.do("GET", "/connections/"+id, "acct-a", nil)
	e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"client_id": "nope"})
	e.do("PATCH", "/connections/"+id, "acct-b", map[string]any{"name": "not mine"})

	want := []string{"connection.tested", "connection.secret_rotated", "connection.updated", "connection.created"}
	if diff := cmp.Diff(want, e.events("acct-a", id)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	items := e.do("GET", "/connections/"+id+"/events", "acct-a", nil).json(t)["items"].([]any)
	updated := items[2].(map[string]any)["details"].(map[string]any)
	if diff := cmp.Diff([]any{"name", "tenant_id"}, updated["changed"]); diff != "" {
		t.Errorf("updated details (-want +got):\n%s", diff)
	}
	if got := items[0].(map[string]any)["details"].(map[string]any)["outcome"]; got != "ok" {
		t.Errorf("tested outcome = %v", got)
	}

	if res := e.do("DELETE", "/connections/"+id, "acct-a", nil); res.status != http.StatusNoContent {
		t.Fatalf("delete: %d", res.status)
	}
	// The trail of a deleted connection stays readable, to its account only.
	if got := e.events("acct-a", id); len(got) != 5 || got[0] != "connection.deleted" {
		t.Errorf("events after delete = %v", got)
	}
	if res := e.do("GET", "/connections/"+id+"/events", "acct-b", nil); res.status != http.StatusNotFound {
		t.Errorf("another account reads the events: %d", res.status)
	}
	if _, err := e.pool.Exec(context.Background(), `UPDATE audit_events SET actor = 'mallory'`); err == nil {
		t.Error("audit_events accepted an UPDATE")
	}
	if _, err := e.pool.Exec(context.Background(), `DELETE FROM audit_events`); err == nil {
		t.Error("audit_events accepted a DELETE")
	}
}

// TestFailedAuditLeavesNoChange makes the audit insert fail after the change
// was written: the transaction leaves neither the change nor the event.
func TestFailedAuditLeavesNoChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/connections", "acct-a", validCreate()).json(t)["id"].(string)
	before := e.do("GET", "/connections/"+id, "acct-a", nil).body
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `
		CREATE FUNCTION fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'forced failure'; END $$;
		CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION fail_audit();`)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/connections", with(validCreate(), "client_id", "44444444-2222-2222-2222-222222222222")},
		{"PATCH", "/connections/" + id, map[string]any{"name": "changed", "client_secret": "Other8Q~secret.value.0123456789abcdef"}},
		{"DELETE", "/connections/" + id, nil},
	} {
		if res := e.do(req.method, req.path, "acct-a", req.body); res.status != http.StatusInternalServerError {
			t.Errorf("%s %s with a failing audit insert: %d, want 500", req.method, req.path, res.status)
		}
	}
	if _, err := e.pool.Exec(ctx, `DROP TRIGGER fail_audit ON audit_events`); err != nil {
		t.Fatal(err)
	}
	if after := e.do("GET", "/connections/"+id, "acct-a", nil).body; string(after) != string(before) {
		t.Errorf("connection changed although its event failed:\n%s\n%s", before, after)
	}
	if n := len(e.do("GET", "/connections", "acct-a", nil).json(t)["items"].([]any)); n != 1 {
		t.Errorf("%d connections, want the 1 created before", n)
	}
	if got := e.events("acct-a", id); len(got) != 1 {
		t.Errorf("events = %v, want only the create", got)
	}
}

func TestIdempotentCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := `{"instance_url":"https://contoso.crm.dynamics.com","client_id":"22222222-2222-2222-2222-222222222222","client_secret":"Abc8Q~secret.value.0123456789abcdefgh"}`
	first := e.do("POST", "/connections", "acct-a", body, "Idempotency-Key", "key-1")
	if first.status != http.StatusCreated || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %v", first.status, first.header)
	}
	// The same fields in another order and spacing are the same request.
	same := `{ "client_secret":"Abc8Q~secret.value.0123456789abcdefgh", "client_id":"22222222-2222-2222-2222-222222222222","instance_url":"https://contoso.crm.dynamics.com" }`
	again := e.do("POST", "/connections", "acct-a", same, "Idempotency-Key", "key-1")
	if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" ||
		string(again.body) != string(first.body) || again.header.Get("Location") != first.header.Get("Location") {
		t.Fatalf("replay: %d %v\n%s\nwant\n%s", again.status, again.header, again.body, first.body)
	}
	// The replay answers as the first did, headers included (e.do checks
	// both against openapi.yaml, which requires Location and ETag on a 201),
	// even after the connection changed.
	id := first.json(t)["id"].(string)
	if loc, tag := first.header.Get("Location"), first.header.Get("ETag"); loc != "/connections/"+id ||
		tag == "" || tag != e.do("GET", loc, "acct-a", nil).header.Get("ETag") {
		t.Fatalf("first answer: Location %q, ETag %q, want /connections/%s and the ETag a GET returns", loc, tag, id)
	}
	e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"name": "renamed"})
	replay := e.do("POST", "/connections", "acct-a", body, "Idempotency-Key", "key-1")
	for _, h := range []string{"Location", "ETag", "Content-Type"} {
		if replay.header.Get(h) != first.header.Get(h) {
			t.Errorf("replay after an edit: %s %q, first answer's %q", h, replay.header.Get(h), first.header.Get(h))
		}
	}
	if string(replay.body) != string(first.body) {
		t.Errorf("replay after an edit:\n%s\nwant\n%s", replay.body, first.body)
	}
	other := e.do("POST", "/connections", "acct-a", with(validCreate(), "name", "other"), "Idempotency-Key", "key-1")
	if other.status != http.StatusUnprocessableEntity || other.json(t)["type"] != typeKeyReused {
		t.Errorf("key reused with another body: %d %s", other.status, other.body)
	}
	// Keys are per account: another account's key-1 is a new request.
	if res := e.do("POST", "/connections", "acct-b", body, "Idempotency-Key", "key-1"); res.status != http.StatusCreated || res.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("another account's key-1: %d %v", res.status, res.header)
	}
	if res := e.do("POST", "/connections", "acct-a", body, "Idempotency-Key", "bad key with spaces"); res.status != http.StatusUnprocessableEntity {
		t.Errorf("malformed key: %d", res.status)
	}
	if n := len(e.do("GET", "/connections", "acct-a", nil).json(t)["items"].([]any)); n != 1 {
		t.Errorf("acct-a has %d connections, want 1", n)
	}

	// Expired keys are purged; the key may then be used again.
	if _, err := e.pool.Exec(context.Background(), `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if n, err := e.st.PurgeIdempotencyKeys(context.Background()); err != nil || n != 2 {
		t.Errorf("purged %d keys (err %v), want 2", n, err)
	}
}

// TestIdempotentCreateAcrossTwoServers sends twenty creates with one key at
// once to two servers on one database: one row, and every response is the
// first, its replay, or a 409 for a request that met the first in flight.
func TestIdempotentCreateAcrossTwoServers(t *testing.T) {
	t.Parallel()
	url := storetest.URL(t)
	keys, err := crypto.ParseKeyring(mustKey(t, "k1"), "")
	if err != nil {
		t.Fatal(err)
	}
	var servers []*testEnv
	for range 2 {
		pool, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		servers = append(servers, newEnvWith(t, pool, keys))
	}
	var created, replayed, inFlight atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			res := servers[i%2].do("POST", "/connections", "acct-a", validCreate(), "Idempotency-Key", "same-key")
			switch {
			case res.status == http.StatusCreated && res.header.Get("Idempotent-Replayed") == "true":
				replayed.Add(1)
			case res.status == http.StatusCreated:
				created.Add(1)
			case res.status == http.StatusConflict && res.json(t)["type"] == typeInFlight:
				inFlight.Add(1)
			default:
				t.Errorf("unexpected response %d %s", res.status, res.body)
			}
		})
	}
	wg.Wait()
	t.Logf("created %d, replayed %d, in flight %d", created.Load(), replayed.Load(), inFlight.Load())
	if created.Load() != 1 {
		t.Errorf("%d creates answered as new, want 1", created.Load())
	}
	// After the burst, each server replays the first response.
	for _, srv := range servers {
		if res := srv.do("POST", "/connections", "acct-a", validCreate(), "Idempotency-Key", "same-key"); res.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry after the burst: %d %v", res.status, res.header)
		}
	}
	var rows int
	if err := servers[0].pool.QueryRow(context.Background(), `SELECT count(*) FROM connections`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d rows (err %v), want 1", rows, err)
	}
}

func TestIfMatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	created := e.do("POST", "/connections", "acct-a", validCreate())
	id := created.json(t)["id"].(string)
	tag := e.do("GET", "/connections/"+id, "acct-a", nil).header.Get("ETag")
	if tag == "" || tag != created.header.Get("ETag") {
		t.Fatalf("ETag %q, create's %q", tag, created.header.Get("ETag"))
	}
	upd := e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"name": "first edit"}, "If-Match", tag)
	if upd.status != http.StatusOK || upd.header.Get("ETag") == tag {
		t.Fatalf("PATCH with the current ETag: %d, new ETag %q", upd.status, upd.header.Get("ETag"))
	}
	// A second admin still holds the old ETag.
	stale := e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"name": "second edit"}, "If-Match", tag)
	if stale.status != http.StatusPreconditionFailed || stale.json(t)["type"] != typePrecondition {
		t.Fatalf("PATCH with a stale ETag: %d %s", stale.status, stale.body)
	}
	if res := e.do("DELETE", "/connections/"+id, "acct-a", nil, "If-Match", tag); res.status != http.StatusPreconditionFailed {
		t.Errorf("DELETE with a stale ETag: %d", res.status)
	}
	if res := e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"name": "weak"}, "If-Match", "W/"+upd.header.Get("ETag")); res.status != http.StatusPreconditionFailed {
		t.Errorf("a weak ETag matched: %d", res.status)
	}
	got := e.do("GET", "/connections/"+id, "acct-a", nil)
	if got.json(t)["name"] != "first edit" || got.header.Get("ETag") != upd.header.Get("ETag") {
		t.Errorf("refused edits changed the connection: %s", got.body)
	}
	if ev := e.events("acct-a", id); len(ev) != 2 {
		t.Errorf("events = %v, want created and one update", ev)
	}
	// Without If-Match the last write wins, as before; "*" matches any version.
	if res := e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"name": "no precondition"}); res.status != http.StatusOK {
		t.Errorf("PATCH without If-Match: %d", res.status)
	}
	if res := e.do("DELETE", "/connections/"+id, "acct-a", nil, "If-Match", `"v0", *`); res.status != http.StatusNoContent {
		t.Errorf("DELETE with If-Match *: %d", res.status)
	}
}

// TestSecretStatesFollowTheClock moves the server's clock past a secret's
// expiry and checks the state and the list filter at each point.
func TestSecretStatesFollowTheClock(t *testing.T) {
	t.Parallel()
	var now atomic.Pointer[time.Time]
	start := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	now.Store(&start)
	e := newEnv(t, func(o *envConfig) { o.Now = func() time.Time { return *now.Load() } })

	expires := start.Add(60 * 24 * time.Hour)
	id := e.do("POST", "/connections", "acct-a", with(validCreate(), "client_secret_expires_at", expires.Format(time.RFC3339))).json(t)["id"].(string)
	e.do("POST", "/connections", "acct-a", with(validCreate(), "client_id", "55555555-2222-2222-2222-222222222222"))

	for _, step := range []struct {
		at   time.Time
		want string
	}{
		{start, "valid"},
		{expires.Add(-29 * 24 * time.Hour), "expiring"},
		{expires.Add(-time.Second), "expiring"},
		{expires, "expired"},
	} {
		now.Store(&step.at)
		state := e.do("GET", "/connections/"+id, "acct-a", nil).json(t)["client_secret"].(map[string]any)["state"]
		if state != step.want {
			t.Errorf("at %s: state %v, want %s", step.at, state, step.want)
		}
		for _, filter := range []string{"valid", "expiring", "expired", "unknown"} {
			items := e.do("GET", "/connections?secret_state="+filter, "acct-a", nil).json(t)["items"].([]any)
			wantN := 0
			if filter == step.want {
				wantN = 1
			}
			if filter == "unknown" {
				wantN = 1 // the connection created without an expiry
			}
			if len(items) != wantN {
				t.Errorf("at %s: secret_state=%s lists %d, want %d", step.at, filter, len(items), wantN)
			}
		}
	}
	if res := e.do("GET", "/connections?secret_state=soon", "acct-a", nil); res.status != http.StatusUnprocessableEntity {
		t.Errorf("unknown secret_state: %d", res.status)
	}
}
