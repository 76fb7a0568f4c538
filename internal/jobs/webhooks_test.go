package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/jobs"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/outbound"
	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
	"github.com/dynconn/dynconn/internal/webhook"
)

// testRetryBase keeps retries quick; River makes a retry due within its
// scheduler interval available at once.
const testRetryBase = 20 * time.Millisecond

// hookEnv is a database with the pieces of webhook delivery around it.
type hookEnv struct {
	t    testing.TB
	pool *pgxpool.Pool
	st   *store.Store
	keys *crypto.Keyring
	// keyLine is keys' ENCRYPTION_KEYS line, for a replica in another process.
	keyLine string
	logger  *slog.Logger
}

func newHookEnv(t testing.TB) *hookEnv {
	t.Helper()
	line, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypto.ParseKeyring(line, "")
	if err != nil {
		t.Fatal(err)
	}
	pool := storetest.NewPool(t)
	return &hookEnv{t: t, pool: pool, st: store.New(pool), keys: keys, keyLine: line,
		logger: slog.New(slog.NewJSONHandler(&logtest.Buffer{}, nil))}
}

// replica is one server's share of delivery: a River client working the
// webhooks queue, and a dispatcher.
type replica struct {
	jobs   *jobs.Jobs
	sender *webhook.Sender
	cancel context.CancelFunc
	done   chan struct{}
}

// startReplica starts a replica that the test stops when it ends (unless
// the test stops it first). base may turn on more of the background work,
// such as re-checks.
func (e *hookEnv) startReplica(cfg jobs.WebhookConfig, base ...jobs.Config) *replica {
	e.t.Helper()
	if cfg.RetryBase == 0 {
		cfg.RetryBase = testRetryBase
	}
	sender := webhook.NewSender(webhook.Options{Outbound: outbound.Options{AllowLoopback: true}, Timeout: 5 * time.Second})
	cfg.Sender = sender
	workers := river.NewWorkers()
	jobs.AddDeliveryWorker(workers, e.st, e.keys, e.logger, cfg)
	jcfg := jobs.Config{}
	if len(base) > 0 {
		jcfg = base[0]
	}
	jcfg.Queues, jcfg.PollInterval = map[string]int{jobs.QueueWebhooks: 10}, 50*time.Millisecond
	j, err := jobs.New(e.pool, e.logger, jcfg, workers)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := j.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{jobs: j, sender: sender, cancel: cancel, done: make(chan struct{})}
	d := jobs.NewDispatcher(e.st, j.Client, e.logger, cfg, 20*time.Millisecond)
	go func() {
		defer close(r.done)
		d.Run(ctx)
	}()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop drains the replica's jobs and stops its dispatcher; again is a no-op.
func (r *replica) stop(t testing.TB) {
	r.cancel()
	<-r.done
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.jobs.Stop(ctx); err != nil {
		t.Errorf("stop replica: %v", err)
	}
	r.sender.CloseIdleConnections()
}

// kill stops the replica without letting running deliveries finish: their
// requests are cancelled mid-flight, as when a replica dies.
func (r *replica) kill(t testing.TB) {
	r.cancel()
	<-r.done
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.jobs.Client.StopAndCancel(ctx); err != nil {
		t.Errorf("kill replica: %v", err)
	}
}

// createWebhook stores an endpoint for url with a fresh sealed secret, and
// returns it with the secret in plaintext.
func (e *hookEnv) createWebhook(account, url string, types []string) (model.Webhook, secret.String) {
	e.t.Helper()
	sec := webhook.NewSecret()
	id := uuid.NewString()
	env, err := e.keys.Seal(context.Background(), []byte(sec.Reveal()), crypto.WebhookAssociatedData(account, id))
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := e.st.CreateWebhook(context.Background(), model.Webhook{ID: id, Account: account, URL: url, EventTypes: types,
		Secret: model.SealedSecret(env)}, store.Audit{Actor: "tester"})
	if err != nil {
		e.t.Fatal(err)
	}
	return w, sec
}

// appendEvent writes an event as a change would, in its own transaction.
func (e *hookEnv) appendEvent(account, typ string) store.Event {
	e.t.Helper()
	var ev store.Event
	id := uuid.New()
	err := pgx.BeginFunc(context.Background(), e.pool, func(tx pgx.Tx) error {
		var err error
		ev, err = e.st.AppendEvent(context.Background(), tx, store.NewEvent{Account: account, Type: typ, ConnectionID: &id,
			Data: map[string]any{"connection_id": id.String()}})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// delivery returns the one delivery row of an event to a webhook; status ""
// while there is none yet.
func (e *hookEnv) delivery(eventID int64, webhookID string) (status string, attempts int, httpStatus *int, next *time.Time) {
	e.t.Helper()
	err := e.pool.QueryRow(context.Background(),
		`SELECT status, attempts, http_status, next_attempt_at FROM webhook_deliveries WHERE event_id = $1 AND webhook_id = $2`,
		eventID, webhookID).Scan(&status, &attempts, &httpStatus, &next)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		e.t.Fatalf("delivery of event %d to %s: %v", eventID, webhookID, err)
	}
	return status, attempts, httpStatus, next
}

// eventually polls cond until it holds, failing the test after a generous
// bound (a deadline for a hung test, not a timing assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hit is one request a receiver got.
type hit struct {
	path   string
	header http.Header
	body   []byte
}

// receiver is a local webhook endpoint: answer decides each response from
// the request and the number of earlier requests with the same webhook-id.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []hit
}

func newReceiver(t testing.TB, answer func(w http.ResponseWriter, r *http.Request, seen int)) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		seen := 0
		for _, h := range rc.hits {
			if h.path == r.URL.Path && h.header.Get("webhook-id") == r.Header.Get("webhook-id") {
				seen++
			}
		}
		rc.hits = append(rc.hits, hit{r.URL.Path, r.Header.Clone(), body})
		rc.mu.Unlock()
		answer(w, r, seen)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

func ok(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) }

// TestDeliveryRetriesWithTheSameID: a receiver that fails its first two
// attempts gets the event on the third, signed each time with the same
// webhook-id, and the delivery records three attempts.
func TestDeliveryRetriesWithTheSameID(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, seen int) {
		if seen < 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	w, sec := e.createWebhook("acct", rc.srv.URL+"/hook", nil)
	ev := e.appendEvent("acct", store.EventConnectionCreated)
	e.startReplica(jobs.WebhookConfig{})

	eventually(t, "the delivery", func() bool { s, _, _, _ := e.delivery(ev.ID, w.ID); return s == store.DeliveryDelivered })
	status, attempts, httpStatus, next := e.delivery(ev.ID, w.ID)
	if status != store.DeliveryDelivered || attempts != 3 || httpStatus == nil || *httpStatus != 200 || next != nil {
		t.Fatalf("delivery: %s after %d attempts, http %v, next %v; want delivered after 3 with 200", status, attempts, httpStatus, next)
	}
	hits := rc.got()
	if len(hits) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(hits))
	}
	verifier, err := standardwebhooks.NewWebhook(sec.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hits {
		if id := h.header.Get("webhook-id"); id != ev.PublicID {
			t.Errorf("attempt %d: webhook-id %q, want %q", i+1, id, ev.PublicID)
		}
		if err := verifier.Verify(h.body, h.header); err != nil {
			t.Errorf("attempt %d: the reference verifier refused it: %v", i+1, err)
		}
		if !strings.Contains(string(h.body), `"type":"connection.created"`) || !strings.Contains(string(h.body), `"id":"`+ev.PublicID+`"`) {
			t.Errorf("attempt %d: body %s", i+1, h.body)
		}
	}
	if string(hits[0].body) != string(hits[2].body) {
		t.Errorf("the body changed between attempts:\n%s\n%s", hits[0].body, hits[2].body)
	}
}

// TestDeliveryFailsAfterItsLastAttempt: when the attempts run out the
// delivery is failed, with nothing further scheduled.
func TestDeliveryFailsAfterItsLastAttempt(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, seen int) { w.WriteHeader(http.StatusInternalServerError) })
	w, _ := e.createWebhook("acct", rc.srv.URL+"/hook", nil)
	r := e.startReplica(jobs.WebhookConfig{})
	r.cancel() // no dispatcher: the test inserts the job itself, with two attempts
	<-r.done
	ev := e.appendEvent("acct", store.EventConnectionDeleted)
	if _, err := e.st.DispatchEvents(context.Background(), 10, func(ctx context.Context, tx pgx.Tx, ds []store.NewDelivery) error {
		if len(ds) != 1 {
			t.Fatalf("%d deliveries, want 1", len(ds))
		}
		_, err := r.jobs.Client.InsertTx(ctx, tx, jobs.DeliverArgs{DeliveryID: ds[0].ID},
			&river.InsertOpts{Queue: jobs.QueueWebhooks, MaxAttempts: 2})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the delivery to fail", func() bool { s, _, _, _ := e.delivery(ev.ID, w.ID); return s == store.DeliveryFailed })
	_, attempts, httpStatus, next := e.delivery(ev.ID, w.ID)
	if attempts != 2 || httpStatus == nil || *httpStatus != 500 || next != nil {
		t.Fatalf("failed delivery: %d attempts, http %v, next %v; want 2 attempts, 500, none next", attempts, httpStatus, next)
	}
	if n := len(rc.got()); n != 2 {
		t.Fatalf("receiver got %d requests, want 2", n)
	}
}

// TestGoneDisablesTheEndpoint: a 410 fails the delivery at once, disables
// the endpoint with an audit event, and later events are not sent there.
func TestGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t)
	gone := newReceiver(t, func(w http.ResponseWriter, r *http.Request, seen int) { w.WriteHeader(http.StatusGone) })
	fine := newReceiver(t, ok)
	wGone, _ := e.createWebhook("acct", gone.srv.URL+"/hook", nil)
	wFine, _ := e.createWebhook("acct", fine.srv.URL+"/hook", nil)
	first := e.appendEvent("acct", store.EventConnectionCreated)
	e.startReplica(jobs.WebhookConfig{})

	eventually(t, "the 410", func() bool { s, _, _, _ := e.delivery(first.ID, wGone.ID); return s == store.DeliveryFailed })
	if _, attempts, httpStatus, _ := e.delivery(first.ID, wGone.ID); attempts != 1 || *httpStatus != 410 {
		t.Fatalf("delivery to the gone endpoint: %d attempts, http %d; want 1, 410", attempts, *httpStatus)
	}
	got, err := e.st.Webhook(context.Background(), "acct", uuid.MustParse(wGone.ID))
	if err != nil || got.DisabledReason != model.DisabledGone {
		t.Fatalf("endpoint after 410: %+v, %v; want disabled (gone)", got, err)
	}
	var actor, action string
	if err := e.pool.QueryRow(context.Background(),
		`SELECT actor, action FROM audit_events WHERE webhook_id = $1 ORDER BY id DESC LIMIT 1`, wGone.ID).Scan(&actor, &action); err != nil {
		t.Fatal(err)
	}
	if actor != "dynconn" || action != store.ActionWebhookDisabled {
		t.Errorf("audit: %s by %s, want webhook.disabled by dynconn", action, actor)
	}

	second := e.appendEvent("acct", store.EventConnectionUpdated)
	eventually(t, "the second event at the other endpoint", func() bool {
		s, _, _, _ := e.delivery(second.ID, wFine.ID)
		return s == store.DeliveryDelivered
	})
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1`, wGone.ID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("deliveries to the disabled endpoint: %d, %v; want only the first", n, err)
	}
	if hits := len(gone.got()); hits != 1 {
		t.Fatalf("the gone endpoint got %d requests, want 1", hits)
	}
}

// TestDispatchMatchesEndpoints: an event goes to every enabled endpoint of
// its account that wants its type; a ping only to the endpoint it names.
func TestDispatchMatchesEndpoints(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t)
	all, _ := e.createWebhook("acct", "https://all.example.com/x", nil)
	status, _ := e.createWebhook("acct", "https://status.example.com/x", []string{store.EventConnectionStatusChanged})
	off, _ := e.createWebhook("acct", "https://off.example.com/x", nil)
	if _, err := e.st.DisableWebhook(context.Background(), "acct", off.ID, model.DisabledGone, store.Audit{Actor: "t"}, nil); err != nil {
		t.Fatal(err)
	}
	e.createWebhook("other", "https://other.example.com/x", nil)
	created := e.appendEvent("acct", store.EventConnectionCreated)
	changed := e.appendEvent("acct", store.EventConnectionStatusChanged)
	ping, err := e.st.PingWebhook(context.Background(), "acct", uuid.MustParse(status.ID))
	if err != nil {
		t.Fatal(err)
	}

	got := map[[2]string]int{}
	n, err := e.st.DispatchEvents(context.Background(), 100, func(_ context.Context, _ pgx.Tx, ds []store.NewDelivery) error {
		for _, d := range ds {
			got[[2]string{map[int64]string{created.ID: "created", changed.ID: "changed", ping.ID: "ping"}[d.EventID], d.WebhookID}]++
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("DispatchEvents = %d, %v; want 3 events", n, err)
	}
	want := map[[2]string]int{
		{"created", all.ID}: 1, {"changed", all.ID}: 1, {"changed", status.ID}: 1, {"ping", status.ID}: 1,
	}
	if len(got) != len(want) {
		t.Errorf("deliveries %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("deliveries of %s to %s: %d, want %d", k[0], k[1], got[k], v)
		}
	}
	if n, err := e.st.DispatchEvents(context.Background(), 100, nil); err != nil || n != 0 {
		t.Fatalf("second DispatchEvents = %d, %v; want nothing left", n, err)
	}
}

// TestTwoReplicasDeliverEachEventOnce: with two replicas dispatching and
// delivering at once, every event reaches every endpoint exactly once.
func TestTwoReplicasDeliverEachEventOnce(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t)
	rc := newReceiver(t, ok)
	hooks := []model.Webhook{}
	for _, path := range []string{"/a", "/b"} {
		w, _ := e.createWebhook("acct", rc.srv.URL+path, nil)
		hooks = append(hooks, w)
	}
	e.startReplica(jobs.WebhookConfig{})
	e.startReplica(jobs.WebhookConfig{})
	const events = 60
	for range events {
		e.appendEvent("acct", store.EventConnectionUpdated)
	}
	eventually(t, "every delivery", func() bool {
		var delivered int
		_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'`).Scan(&delivered)
		return delivered == events*len(hooks)
	})
	counts := map[string]int{}
	for _, h := range rc.got() {
		counts[h.path+" "+h.header.Get("webhook-id")]++
	}
	if len(counts) != events*len(hooks) {
		t.Errorf("receiver saw %d distinct (endpoint, event) pairs, want %d", len(counts), events*len(hooks))
	}
	for k, n := range counts {
		if n != 1 {
			t.Errorf("%s arrived %d times", k, n)
		}
	}
	var attempts int
	if err := e.pool.QueryRow(context.Background(), `SELECT sum(attempts) FROM webhook_deliveries`).Scan(&attempts); err != nil || attempts != events*len(hooks) {
		t.Errorf("attempts in all: %d, %v; want %d", attempts, err, events*len(hooks))
	}
}

// TestKilledReplicaLosesNoDelivery: a replica stopped hard while its
// requests are in flight loses none of them; the other replica delivers
// every event.
func TestKilledReplicaLosesNoDelivery(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t)
	release := make(chan struct{})
	var inflight sync.WaitGroup
	var arrived sync.Mutex
	firstWave := 0
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, seen int) {
		if seen == 0 {
			// First attempts hang until the test lets them go (or their
			// replica dies and cancels them).
			arrived.Lock()
			firstWave++
			arrived.Unlock()
			inflight.Add(1)
			defer inflight.Done()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	w, _ := e.createWebhook("acct", rc.srv.URL+"/hook", nil)
	const events = 8
	var evs []store.Event
	for range events {
		evs = append(evs, e.appendEvent("acct", store.EventConnectionUpdated))
	}
	victim := e.startReplica(jobs.WebhookConfig{})
	eventually(t, "the victim's requests in flight", func() bool {
		arrived.Lock()
		defer arrived.Unlock()
		return firstWave == events
	})
	victim.kill(t)
	close(release)
	e.startReplica(jobs.WebhookConfig{})
	for _, ev := range evs {
		eventually(t, "delivery of "+ev.PublicID, func() bool { s, _, _, _ := e.delivery(ev.ID, w.ID); return s == store.DeliveryDelivered })
		// The victim's attempt was cut off and recorded; the survivor's went through.
		if _, attempts, _, _ := e.delivery(ev.ID, w.ID); attempts < 2 {
			t.Errorf("%s: delivered after %d attempts, want the cut-off one and another", ev.PublicID, attempts)
		}
	}
	delivered := map[string]bool{}
	for _, h := range rc.got() {
		delivered[h.header.Get("webhook-id")] = true
	}
	for _, ev := range evs {
		if !delivered[ev.PublicID] {
			t.Errorf("%s never reached the receiver", ev.PublicID)
		}
	}
}

// TestStatusChangesReachAReceiverOnce: two replicas re-check a working
// connection and deliver webhooks. When the simulator's secret expires,
// exactly one connection.status_changed (connected → failing,
// client_secret_expired, setup step client_secret, trigger scheduled)
// reaches the receiver, once, with a signature the Standard Webhooks
// verifier accepts; when it works again, exactly one back to connected.
func TestStatusChangesReachAReceiverOnce(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t)
	sim := simulator.New(simulator.Options{})
	t.Cleanup(sim.Close)
	rc := newReceiver(t, ok)
	_, sec := e.createWebhook("acct", rc.srv.URL+"/hook", []string{store.EventConnectionStatusChanged})
	const interval = time.Second
	for range 2 {
		dyn := dynamics.NewClient(dynamics.Options{AllowLoopback: true, Logger: e.logger, StepTimeout: 2 * time.Second, Deadline: 4 * time.Second})
		t.Cleanup(dyn.CloseIdleConnections)
		chk := checker.New(e.st, e.keys, dyn, checker.Options{RecheckInterval: interval})
		e.startReplica(jobs.WebhookConfig{}, jobs.Config{RecheckInterval: interval, Checker: chk})
	}
	id := uuid.NewString()
	env, err := e.keys.Seal(context.Background(), []byte(simulator.ClientSecret), crypto.AssociatedData("acct", id))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateConnection(context.Background(), model.Connection{ID: id, Account: "acct", InstanceURL: sim.URL,
		Cloud: model.CloudPublic, ClientID: simulator.ClientID, Secret: model.SealedSecret(env)}, store.Audit{Actor: "tester"}); err != nil {
		t.Fatal(err)
	}
	received := func() []map[string]any {
		var out []map[string]any
		for _, h := range rc.got() {
			var ev map[string]any
			if err := json.Unmarshal(h.body, &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		}
		return out
	}
	eventually(t, "connected", func() bool { return len(received()) >= 1 })
	sim.SetScenario("secret_expired")
	eventually(t, "failing", func() bool { return len(received()) >= 2 })
	sim.SetScenario("ok")
	eventually(t, "connected again", func() bool { return len(received()) >= 3 })
	// Two more re-checks: nothing else may arrive, neither a second copy
	// from the other replica nor another change.
	n := e.countRechecks(id)
	eventually(t, "two more re-checks", func() bool { return e.countRechecks(id) >= n+2 })
	eventually(t, "the outbox to empty", func() bool {
		var busy bool
		err := e.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM events WHERE NOT dispatched)
			OR EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending')`).Scan(&busy)
		return err == nil && !busy
	})

	hits := rc.got()
	want := []string{"untested>connected <nil> <nil> scheduled",
		"connected>failing client_secret_expired client_secret scheduled",
		"failing>connected <nil> <nil> scheduled"}
	if len(hits) != len(want) {
		t.Fatalf("the receiver got %d deliveries, want %d: %v", len(hits), len(want), received())
	}
	verifier, err := standardwebhooks.NewWebhook(sec.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, ev := range received() {
		d := ev["data"].(map[string]any)
		got := fmt.Sprintf("%v>%v %v %v %v", d["from"], d["to"], d["code"], d["setup_step"], d["trigger"])
		if ev["type"] != store.EventConnectionStatusChanged || d["connection_id"] != id || got != want[i] {
			t.Errorf("delivery %d: %v %s, want %s", i+1, ev["type"], got, want[i])
		}
		if err := verifier.Verify(hits[i].body, hits[i].header); err != nil {
			t.Errorf("delivery %d: the reference verifier refused it: %v", i+1, err)
		}
		wid := hits[i].header.Get("webhook-id")
		if seen[wid] || wid != ev["id"] {
			t.Errorf("delivery %d: webhook-id %q (event id %v) repeated or wrong", i+1, wid, ev["id"])
		}
		seen[wid] = true
	}
}

// countRechecks counts a connection's scheduled test results.
func (e *hookEnv) countRechecks(connectionID string) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM connection_tests WHERE connection_id = $1 AND result->>'trigger' = 'scheduled'`, connectionID).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}
