package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dynconn/dynconn/internal/api"
	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/jobs"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// A replica killed with SIGKILL ends as a crashed server does: no deferred
// function runs, nothing tells the database, its jobs stay "running" and its
// River leadership stays in place until it lapses. So the replica the tests
// kill is a process of its own: the test binary run again with replicaDBEnv
// set, which makes TestHelperReplica a replica.
const (
	replicaDBEnv   = "DYNCONN_TEST_REPLICA_DATABASE_URL"
	replicaKeysEnv = "DYNCONN_TEST_REPLICA_ENCRYPTION_KEYS"
	// replicaIDLine precedes the River client id the replica prints.
	replicaIDLine = "river client id: "
)

// rescueConfig lets River rescue a killed replica's jobs within seconds.
// River's rescuer runs on the leader when it becomes leader, then every 30 s
// (River does not let that be configured). A leader killed with SIGKILL
// keeps its leadership until it lapses, 10 to 15 s later (River's leader TTL
// is 15 s, renewed every 5 s), so when the survivor becomes leader the dead
// replica's jobs have been running more than 10 s: with RescueAfter under
// that, its first rescuer run takes them. JobTimeout is near the longest
// that the validation allows (under RescueAfter − 5 s): the killed
// replica's requests must still be in flight when it dies.
var rescueConfig = jobs.Config{JobTimeout: 3 * time.Second, RescueAfter: 8500 * time.Millisecond}

// TestHelperReplica is not a test: it is the replica that
// TestKilledLeaderLosesNoDelivery runs in a process of its own and kills. It
// returns at once when not run as one.
func TestHelperReplica(t *testing.T) {
	url := os.Getenv(replicaDBEnv)
	if url == "" {
		return
	}
	keys, err := crypto.ParseKeyring(os.Getenv(replicaKeysEnv), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AfterConnect = store.AfterConnect
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &hookEnv{t: t, pool: pool, st: store.New(pool), keys: keys, logger: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
	r := e.startReplica(jobs.WebhookConfig{}, rescueConfig)
	fmt.Println(replicaIDLine + r.jobs.Client.ID())
	select {} // until killed
}

// replicaProcess is a replica running in a process of its own.
type replicaProcess struct {
	cmd *exec.Cmd
	// id is its River client id.
	id     string
	exited chan struct{}
}

// startReplicaProcess starts a replica on e's database in a new process, as
// startReplica does in this one, and returns once it works. The test kills
// it when it ends, if it has not already.
func (e *hookEnv) startReplicaProcess() *replicaProcess {
	t := e.t
	t.Helper()
	// -test.timeout ends an orphan that nobody killed.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperReplica$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), replicaDBEnv+"="+e.pool.Config().ConnString(), replicaKeysEnv+"="+e.keyLine)
	var stdout, stderr logtest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &replicaProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // its status is read from cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // fails when it is dead already
		<-p.exited
		if t.Failed() {
			t.Logf("the replica process's output:\n%s%s", stdout.String(), stderr.String())
		}
	})
	eventually(t, "the replica process to start", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("the replica process ended: %v\n%s%s", cmd.ProcessState, stdout.String(), stderr.String())
		default:
		}
		_, rest, ok := strings.Cut(stdout.String(), replicaIDLine)
		id, _, ok2 := strings.Cut(rest, "\n")
		p.id = id
		return ok && ok2
	})
	return p
}

// kill ends the process with SIGKILL and waits until it is gone.
func (p *replicaProcess) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill the replica: %v", err)
	}
	<-p.exited
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the replica ended with %v, not by SIGKILL", p.cmd.ProcessState)
	}
}

// leader returns the River client id of the replica that leads now, "" in
// between leaders.
func (e *hookEnv) leader() string {
	e.t.Helper()
	var id string
	err := e.pool.QueryRow(context.Background(), `SELECT leader_id FROM river_leader WHERE expires_at > now()`).Scan(&id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		e.t.Fatalf("river leader: %v", err)
	}
	return id
}

// deliveryJob is River's job of one delivery, with the delivery.
type deliveryJob struct {
	deliveryID  int64
	eventID     string // the event's public id: the webhook-id
	webhookID   string
	status      string // the delivery's
	attempts    int    // the delivery's recorded attempts
	httpStatus  *int
	next        *time.Time
	state       string // the job's
	attempt     int    // the job's runs, River's count
	attemptedBy []string
	rescues     int
}

func (j deliveryJob) lastWorker() string { return j.attemptedBy[len(j.attemptedBy)-1] }

// deliveryJobs returns every delivery with its River job.
func (e *hookEnv) deliveryJobs() []deliveryJob {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `
		SELECT d.id, ev.public_id, d.webhook_id::text, d.status, d.attempts, d.http_status, d.next_attempt_at,
			j.state, j.attempt, coalesce(j.attempted_by, '{}'), coalesce((j.metadata->>'river:rescue_count')::int, 0)
		FROM webhook_deliveries d JOIN events ev ON ev.id = d.event_id
		JOIN river_job j ON j.kind = 'webhook_delivery' AND (j.args->>'delivery_id')::bigint = d.id
		ORDER BY d.id`)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (deliveryJob, error) {
		var j deliveryJob
		err := r.Scan(&j.deliveryID, &j.eventID, &j.webhookID, &j.status, &j.attempts, &j.httpStatus, &j.next,
			&j.state, &j.attempt, &j.attemptedBy, &j.rescues)
		return j, err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// runningOn returns the ids of the deliveries whose jobs replica id is
// working now.
func runningOn(js []deliveryJob, id string) []int64 {
	var out []int64
	for _, j := range js {
		if j.state == "running" && j.lastWorker() == id {
			out = append(out, j.deliveryID)
		}
	}
	return out
}

// apiDeliveries returns GET /webhooks/{id}/deliveries of the account's
// webhook, answered by the API's handler on e's database.
func (e *hookEnv) apiDeliveries(account, webhookID string) []map[string]any {
	e.t.Helper()
	ctx := context.Background()
	const hs = "rescue-test-signing-secret-0123456789-0123456789"
	v, err := auth.NewVerifier(ctx, auth.Config{HS256Secret: secret.String(hs)})
	if err != nil {
		e.t.Fatal(err)
	}
	hashKey, err := api.LoadRequestHashKey(ctx, e.st, e.keys)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := auth.NewToken([]byte(hs), account, "tester", time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	// No checker or token source: this request needs neither.
	srv := api.NewServer(e.logger, e.st, e.keys, v, nil, nil, api.Options{RequestHashKey: hashKey})
	req := httptest.NewRequest(http.MethodGet, "/webhooks/"+webhookID+"/deliveries", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	var page struct {
		Items      []map[string]any `json:"items"`
		NextCursor *string          `json:"next_cursor"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &page); rec.Code != http.StatusOK || err != nil || page.NextCursor != nil {
		e.t.Fatalf("GET deliveries: %d %s (%v); want 200 with one page", rec.Code, rec.Body, err)
	}
	return page.Items
}

// TestKilledLeaderLosesNoDelivery: two replicas are in the middle of
// deliveries, the receiver holding their requests open, when the one that
// leads River is killed with SIGKILL. The survivor becomes leader, its
// rescuer finds the dead replica's jobs stuck, and it delivers them: every
// event reaches every endpoint with the same webhook-id and a signature that
// the Standard Webhooks verifier accepts, and the deliveries endpoint and
// table agree with what arrived.
//
// The killed replica leads on purpose: that is the case where the rescuer
// itself has to move to the survivor, through River's election, before
// anything is rescued. A killed follower's jobs are rescued by the same
// rescuer of the same leader, on its next run (every 30 s in River, not
// configurable), which would make this test take half a minute more.
func TestKilledLeaderLosesNoDelivery(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t)
	var (
		mu      sync.Mutex
		held    int
		release = make(chan struct{})
	)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, seen int) {
		if seen == 0 {
			// First attempts are held: the doomed replica's until it
			// dies, the survivor's until the test lets them go.
			mu.Lock()
			held++
			mu.Unlock()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll)
	paths := map[string]string{}                        // webhook id → receiver path
	verifiers := map[string]*standardwebhooks.Webhook{} // receiver path → its secret's verifier
	for _, path := range []string{"/a", "/b"} {
		w, sec := e.createWebhook("acct", rc.srv.URL+path, nil)
		v, err := standardwebhooks.NewWebhook(sec.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		paths[w.ID], verifiers[path] = path, v
	}

	// The doomed replica starts alone, so it leads; the survivor follows.
	victim := e.startReplicaProcess()
	eventually(t, "the replica process to lead", func() bool { return e.leader() == victim.id })
	survivor := e.startReplica(jobs.WebhookConfig{}, rescueConfig)
	survivorID := survivor.jobs.Client.ID()

	// 20 deliveries and 10 workers a replica: when every first attempt is
	// held, each replica is working 10.
	const events = 10
	for range events {
		e.appendEvent("acct", store.EventConnectionUpdated)
	}
	const deliveries = events * 2
	eventually(t, "every first attempt in flight", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return held == deliveries
	})
	before := e.deliveryJobs()
	doomed := runningOn(before, victim.id)
	if len(doomed) != deliveries/2 || len(runningOn(before, survivorID)) != deliveries/2 {
		t.Fatalf("the replicas work %d and %d deliveries, want %d each", len(doomed), len(runningOn(before, survivorID)), deliveries/2)
	}
	if l := e.leader(); l != victim.id {
		t.Fatalf("before the kill the leader is %q, want the replica process %q", l, victim.id)
	}

	victim.kill(t)
	killed := time.Now()
	releaseAll()
	if stuck := runningOn(e.deliveryJobs(), victim.id); !slices.Equal(stuck, doomed) {
		t.Fatalf("jobs left running by the killed replica: %v, want those it was working %v", stuck, doomed)
	}
	eventually(t, "the survivor to lead", func() bool { return e.leader() == survivorID })
	t.Logf("the survivor leads %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	eventually(t, "every delivery, its job completed", func() bool {
		n := 0
		for _, j := range e.deliveryJobs() {
			if j.status == store.DeliveryDelivered && j.state == "completed" {
				n++
			}
		}
		return n == deliveries
	})
	t.Logf("every delivery made %s after the kill", time.Since(killed).Round(100*time.Millisecond))

	// What reached the receiver, by (endpoint, webhook-id).
	arrived := map[[2]string][]hit{}
	for _, h := range rc.got() {
		k := [2]string{h.path, h.header.Get("webhook-id")}
		arrived[k] = append(arrived[k], h)
		if err := verifiers[h.path].Verify(h.body, h.header); err != nil {
			t.Errorf("%s %s: the reference verifier refused it: %v", h.path, k[1], err)
		}
	}
	if len(arrived) != deliveries {
		t.Errorf("%d (endpoint, event) pairs reached the receiver, want %d", len(arrived), deliveries)
	}
	jobsAfter := e.deliveryJobs()
	var dups []string
	for _, j := range jobsAfter {
		k := [2]string{paths[j.webhookID], j.eventID}
		hits, pair := arrived[k], k[0]+" "+k[1]
		rescued := slices.Contains(doomed, j.deliveryID)
		// The killed replica's attempt reached the receiver, but the
		// replica died before it could record it: the survivor's record
		// counts it, as River does.
		switch {
		case j.status != store.DeliveryDelivered || j.httpStatus == nil || *j.httpStatus != http.StatusOK || j.next != nil:
			t.Errorf("delivery %d (%s): %s, http %v, next %v; want delivered with 200", j.deliveryID, pair, j.status, j.httpStatus, j.next)
		case j.state != "completed" || j.lastWorker() != survivorID:
			t.Errorf("delivery %d (%s): job %s, last worked by %s; want completed by the survivor", j.deliveryID, pair, j.state, j.lastWorker())
		case rescued != (j.rescues == 1) || j.rescues > 1:
			t.Errorf("delivery %d (%s): rescued %d times; want once for the killed replica's jobs, never for the others", j.deliveryID, pair, j.rescues)
		case len(hits) != j.attempt || j.attempts != j.attempt:
			t.Errorf("delivery %d (%s): %d requests arrived, River ran the job %d times, the delivery records %d attempts",
				j.deliveryID, pair, len(hits), j.attempt, j.attempts)
		}
		for _, h := range hits[min(1, len(hits)):] {
			if string(h.body) != string(hits[0].body) {
				t.Errorf("%s: the body changed between attempts:\n%s\n%s", pair, hits[0].body, h.body)
			}
		}
		if len(hits) > 1 {
			dups = append(dups, fmt.Sprintf("%s ×%d", pair, len(hits)))
		}
	}
	// At-least-once: a request the killed replica sent may have been
	// processed by the receiver even though no answer came back, so the
	// survivor sends it again with the same webhook-id, by which a
	// Standard Webhooks receiver drops the repeat.
	t.Logf("delivered more than once (allowed: at least once, same webhook-id): %d of %d: %s", len(dups), deliveries, strings.Join(dups, ", "))

	// GET /webhooks/{id}/deliveries says what the table says.
	for webhookID := range paths {
		items := e.apiDeliveries("acct", webhookID)
		if len(items) != events {
			t.Errorf("GET /webhooks/%s/deliveries: %d items, want %d", webhookID, len(items), events)
		}
		for _, it := range items {
			i := slices.IndexFunc(jobsAfter, func(j deliveryJob) bool { return j.webhookID == webhookID && j.eventID == it["event_id"] })
			if i < 0 {
				t.Errorf("GET /webhooks/%s/deliveries: %v is not in the table", webhookID, it)
				continue
			}
			j := jobsAfter[i]
			var httpStatus any
			if j.httpStatus != nil {
				httpStatus = float64(*j.httpStatus)
			}
			if it["status"] != j.status || it["attempts"] != float64(j.attempts) || it["http_status"] != httpStatus || (it["next_attempt_at"] == nil) != (j.next == nil) {
				t.Errorf("GET /webhooks/%s/deliveries: %v; the table says %s after %d attempts, http %v, next %v", webhookID, it, j.status, j.attempts, httpStatus, j.next)
			}
		}
	}
}

// TestRescueAfterMustOutlastJobs: jobs.New refuses a RescueAfter at which
// a job could still be running, its own or River's default timeout, plus
// the 5 s a job may take to record its outcome.
func TestRescueAfterMustOutlastJobs(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	logger := slog.New(slog.NewJSONHandler(&logtest.Buffer{}, nil))
	for _, tt := range []struct {
		cfg jobs.Config
		ok  bool
	}{
		{jobs.Config{}, true}, // a minute's jobs, rescued after two
		{jobs.Config{JobTimeout: 3 * time.Second, RescueAfter: 8500 * time.Millisecond}, true},
		{jobs.Config{JobTimeout: 3 * time.Second, RescueAfter: 8 * time.Second}, false},
		{jobs.Config{RescueAfter: time.Minute}, false},    // the default job timeout is a minute
		{jobs.Config{JobTimeout: 2 * time.Minute}, false}, // the default rescue is after two
		{jobs.Config{JobTimeout: -1}, false},              // River's "no timeout": never safe to rescue
	} {
		_, err := jobs.New(pool, logger, tt.cfg, river.NewWorkers())
		if tt.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "RescueAfter") {
			t.Errorf("JobTimeout %s, RescueAfter %s: %v", tt.cfg.JobTimeout, tt.cfg.RescueAfter, err)
		}
	}
	// With re-checks on, a job must have time for a test (25 s) and its
	// record (5 s) besides.
	chk := checker.New(store.New(pool), nil, nil, checker.Options{RecheckInterval: time.Hour})
	for timeout, ok := range map[time.Duration]bool{30 * time.Second: false, 40 * time.Second: true} {
		cfg := jobs.Config{RecheckInterval: time.Hour, Checker: chk, JobTimeout: timeout}
		if _, err := jobs.New(pool, logger, cfg, river.NewWorkers()); ok != (err == nil) {
			t.Errorf("re-checks with JobTimeout %s: %v", timeout, err)
		}
	}
}
