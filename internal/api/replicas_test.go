package api

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// twoReplicas starts two API servers, each with a pool of its own, on one
// database: two replicas of the service.
func twoReplicas(t *testing.T, opts ...func(*envConfig)) (*testEnv, *testEnv) {
	t.Helper()
	keys, err := crypto.ParseKeyring(mustKey(t, "k1"), "")
	if err != nil {
		t.Fatal(err)
	}
	url := storetest.URL(t)
	pool := func() *pgxpool.Pool {
		p, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	return newEnvWith(t, pool(), keys, opts...), newEnvWith(t, pool(), keys, opts...)
}

// TestRateLimitIsTheServices: 40 quick tests of one account spread over two
// replicas get the one budget (a burst of 10, then one per 6 s), not one each.
func TestRateLimitIsTheServices(t *testing.T) {
	t.Parallel()
	a, b := twoReplicas(t)
	body := a.simCreate("secret_invalid") // a quick test: refused at the token step
	var allowed, limited atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		e := a
		if i%2 == 1 {
			e = b
		}
		wg.Go(func() {
			switch r := e.do("POST", "/connection-tests", "acct-a", body); r.status {
			case http.StatusOK:
				allowed.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
			default:
				t.Errorf("status %d: %s", r.status, r.body)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n < 10 || n > 12 {
		t.Errorf("%d of 40 tests allowed (%d refused), want the burst of 10 and at most 2 more", n, limited.Load())
	}
}

// TestConcurrentTestsShareOneRunAcrossReplicas: 8 tests of one connection at
// once, over two replicas, make one token request to Microsoft; every caller
// gets its result, recorded once.
func TestConcurrentTestsShareOneRunAcrossReplicas(t *testing.T) {
	t.Parallel()
	// The token endpoint answers after a second, so that all 8 are waiting.
	slow := func(o *envConfig) { o.sim.SlowDelay = time.Second }
	a, b := twoReplicas(t, slow)
	id := a.do("POST", "/connections", "acct-a", a.simCreate("slow")).json(t)["id"].(string)
	results := make([]model.TestResult, 8)
	var wg sync.WaitGroup
	for i := range results {
		e := a
		if i%2 == 1 {
			e = b
		}
		wg.Go(func() { results[i] = decodeResult(t, e.do("POST", "/connections/"+id+"/test", "acct-a", nil)) })
	}
	wg.Wait()
	if n := a.sim.Count("token"); n != 1 {
		t.Errorf("token requests = %d, want 1 run shared by all", n)
	}
	for i, r := range results {
		if !r.OK || !r.TestedAt.Equal(results[0].TestedAt) || r.Trigger != model.TriggerManual {
			t.Errorf("result %d: ok %t tested at %v trigger %q; want the shared result of %v", i, r.OK, r.TestedAt, r.Trigger, results[0].TestedAt)
		}
	}
	if items := a.do("GET", "/connections/"+id+"/tests", "acct-a", nil).json(t)["items"].([]any); len(items) != 1 {
		t.Errorf("history holds %d results, want 1", len(items))
	}
	// A test after that one is a new run.
	decodeResult(t, b.do("POST", "/connections/"+id+"/test", "acct-a", nil))
	if n := a.sim.Count("token"); n != 2 {
		t.Errorf("token requests after a later test = %d, want 2", n)
	}
}

// TestStatusFilter lists the connections of one status.
func TestStatusFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ok := e.do("POST", "/connections", "acct-a", e.simCreate("ok")).json(t)["id"].(string)
	bad := e.do("POST", "/connections", "acct-a", e.simCreate("secret_invalid")).json(t)["id"].(string)
	e.do("POST", "/connections", "acct-a", e.simCreate("app_disabled"))
	decodeResult(t, e.do("POST", "/connections/"+ok+"/test", "acct-a", nil))
	decodeResult(t, e.do("POST", "/connections/"+bad+"/test", "acct-a", nil))
	for status, want := range map[string]string{"connected": ok, "failing": bad} {
		items := e.do("GET", "/connections?status="+status, "acct-a", nil).json(t)["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["id"] != want {
			t.Errorf("status=%s lists %v", status, items)
		}
	}
	if items := e.do("GET", "/connections?status=untested", "acct-a", nil).json(t)["items"].([]any); len(items) != 1 {
		t.Errorf("status=untested lists %d", len(items))
	}
	if r := e.do("GET", "/connections?status=broken", "acct-a", nil); r.status != http.StatusUnprocessableEntity {
		t.Errorf("status=broken: %d", r.status)
	}
}
