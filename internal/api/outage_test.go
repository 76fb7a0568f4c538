package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// outcome is one create of the load in TestDatabaseOutageUnderCreateLoad.
type outcome struct {
	start, end time.Time
	status     int
	retryAfter string
	typ        string // the problem type of an error
	id         string // the connection of a 201
}

// TestDatabaseOutageUnderCreateLoad cuts the server off PostgreSQL for three
// seconds while clients keep creating connections (the store reaches the
// database through a proxy the test cuts, as a stopped server would), then
// restores it. Wanted: no 500 at all, 503 with Retry-After and the
// unavailable type for everything during the outage, creates succeeding
// again within 5s, every acknowledged create in the database, readiness
// naming the database, and one log line for the outage's start and one for
// its end.
func TestDatabaseOutageUnderCreateLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.URL(t)
	proxy := storetest.NewProxy(t, dbURL)
	logs := &logtest.Buffer{}
	st, err := store.Open(ctx, proxy.URL(), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	keys, err := crypto.ParseKeyring(mustKey(t, "k1"), "")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, st, pool, keys, logs)

	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	tok := token(t, "acct-a")
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				o := createOnce(t, e, tok, fmt.Sprintf("https://w%d-%d.crm.dynamics.com", w, i))
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		})
	}
	firstCreatedAfter := func(at time.Time) time.Time {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range outcomes {
			if o.status == http.StatusCreated && o.start.After(at) {
				return o.end
			}
		}
		return time.Time{}
	}

	id := e.do("POST", "/connections", "acct-b", validCreate()).json(t)["id"].(string)
	time.Sleep(500 * time.Millisecond)
	proxy.Cut()
	// Taken after the cut: a create that began just before Cut ran (the test
	// goroutine may be paused between the two) can rightly succeed.
	cut := time.Now()
	time.Sleep(time.Second)
	ready := e.do("GET", "/readyz", "", nil)
	if ready.status != http.StatusServiceUnavailable || !strings.Contains(string(ready.body), `{"name":"database","status":"failing"`) {
		t.Errorf("/readyz during the outage: %d %s", ready.status, ready.body)
	}
	// Every other endpoint that needs the database, checked against openapi.yaml.
	for _, rq := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/connections", nil}, {"GET", "/connections/" + id, nil},
		{"PATCH", "/connections/" + id, map[string]any{"name": "x"}}, {"DELETE", "/connections/" + id, nil},
		{"POST", "/connections/" + id + "/test", nil}, {"GET", "/connections/" + id + "/tests", nil},
		{"GET", "/connections/" + id + "/events", nil}, {"POST", "/connection-tests", map[string]any{"connection_id": id}},
	} {
		res := e.do(rq.method, rq.path, "acct-b", rq.body)
		if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" || res.json(t)["type"] != typeUnavailable {
			t.Errorf("%s %s during the outage: %d, Retry-After %q: %s", rq.method, rq.path, res.status, res.header.Get("Retry-After"), res.body)
		}
	}
	time.Sleep(time.Until(cut.Add(3 * time.Second)))
	restored := time.Now()
	proxy.Restore()
	var back time.Time
	for time.Since(restored) < 10*time.Second {
		if back = firstCreatedAfter(restored); !back.IsZero() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // the end of an outage is logged after a quiet second
	close(stop)
	wg.Wait()

	if back.IsZero() {
		t.Fatal("no create succeeded within 10s of the database coming back")
	}
	if d := back.Sub(restored); d > 5*time.Second {
		t.Errorf("the first create after the outage succeeded %s after the database came back, want within 5s", d)
	}
	counts := map[int]int{}
	var ids []string
	for _, o := range outcomes {
		counts[o.status]++
		switch o.status {
		case http.StatusCreated:
			ids = append(ids, o.id)
			if !o.start.Before(cut) && !o.end.After(restored) {
				t.Errorf("a create that started and ended during the outage succeeded: %+v", o)
			}
		case http.StatusServiceUnavailable:
			if o.retryAfter == "" || o.typ != typeUnavailable {
				t.Errorf("a 503 with Retry-After %q and type %q, want a Retry-After and %s", o.retryAfter, o.typ, typeUnavailable)
			}
		default:
			t.Errorf("a create answered %d (want 201, or 503 during the outage): %+v", o.status, o)
		}
	}
	t.Logf("creates: %v (status: count); first 201 %s after the database came back", counts, back.Sub(restored).Round(time.Millisecond))
	if counts[http.StatusServiceUnavailable] == 0 {
		t.Error("no create was answered 503 during the outage")
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM connections WHERE id = ANY($1::uuid[])`, ids).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != len(ids) {
		t.Errorf("%d creates were answered 201 but %d of them are in the database", len(ids), stored)
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"database unavailable`); n != 1 {
		t.Errorf("the log tells the start of the outage %d times, want once", n)
	}
	if n := strings.Count(out, `"msg":"database available again"`); n != 1 {
		t.Errorf("the log tells the end of the outage %d times, want once", n)
	}
	if strings.Contains(out, `"level":"ERROR","msg":"request failed"`) {
		t.Error("a request failed with an internal error")
	}
}

// createOnce posts one create and says how it went.
func createOnce(t *testing.T, e *testEnv, tok, instance string) outcome {
	body := `{"instance_url":"` + instance + `","client_id":"22222222-2222-2222-2222-222222222222","client_secret":"Abc8Q~pasted.secret-value_0123456789xyz"}`
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/connections", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	o := outcome{start: time.Now()}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Error(err)
		return o
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	o.end, o.status, o.retryAfter = time.Now(), res.StatusCode, res.Header.Get("Retry-After")
	var m struct{ ID, Type string }
	_ = json.Unmarshal(got, &m)
	o.id, o.typ = m.ID, m.Type
	return o
}
