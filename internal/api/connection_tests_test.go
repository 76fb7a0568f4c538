package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// simCreate is a create body for a connection that meets scenario on the simulator.
func (e *testEnv) simCreate(scenario string) map[string]any {
	return map[string]any{
		"instance_url":  e.sim.InstanceURL(scenario),
		"client_id":     simulator.ClientID,
		"client_secret": simulator.ClientSecret,
	}
}

func decodeResult(t *testing.T, r response) model.TestResult {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("test: status %d: %s", r.status, r.body)
	}
	var res model.TestResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func checkNamed(res model.TestResult, name string) model.Check {
	for _, c := range res.Checks {
		if c.Name == name {
			return c
		}
	}
	return model.Check{}
}

// TestConnectionTestEveryScenario runs POST /connections/{id}/test against
// every way the simulator can answer, and checks the diagnosis, the setup
// step, the check statuses, what Microsoft said, and what is stored.
func TestConnectionTestEveryScenario(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, sc := range simulator.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			account := "acct-" + sc.Name // each its own rate limit
			id := e.do("POST", "/connections", account, e.simCreate(sc.Name)).json(t)["id"].(string)
			res := decodeResult(t, e.do("POST", "/connections/"+id+"/test", account, nil))

			names := []string{}
			for _, c := range res.Checks {
				names = append(names, c.Name)
			}
			if got := strings.Join(names, ","); got != "instance_url,tenant_discovery,token,whoami,security_role" {
				t.Fatalf("checks = %s", got)
			}
			c := checkNamed(res, sc.Check)
			if string(c.Status) != sc.Status || c.Code != sc.Code {
				t.Errorf("check %s = %s/%q, want %s/%q (%s)", sc.Check, c.Status, c.Code, sc.Status, sc.Code, c.Message)
			}
			failed := sc.Status == "failed"
			if res.OK == failed {
				t.Errorf("ok = %t for a %s check", res.OK, sc.Status)
			}
			after := false
			for _, ch := range res.Checks {
				if after && failed && ch.Status != model.CheckSkipped {
					t.Errorf("check %s after the failure is %s, want skipped", ch.Name, ch.Status)
				}
				after = after || ch.Name == sc.Check
			}
			if sc.Code != "" {
				d, ok := dynamics.Lookup(sc.Code)
				if !ok {
					t.Fatalf("code %s is not in the diagnosis table", sc.Code)
				}
				if !equalStep(c.SetupStep, d.Step()) || c.Message == "" || c.Hint == "" {
					t.Errorf("check setup_step=%v message=%q hint=%q, want step %v", deref(c.SetupStep), c.Message, c.Hint, deref(d.Step()))
				}
			}
			if failed {
				if res.Error == nil || res.Error.Code != sc.Code || !equalStep(res.Error.SetupStep, c.SetupStep) {
					t.Errorf("error = %+v, want code %s", res.Error, sc.Code)
				}
				// Microsoft's own error answers are passed on for support staff.
				if sc.MicrosoftCode != "" && (c.Upstream == nil || c.Upstream.HTTPStatus != sc.HTTPStatus ||
					c.Upstream.Code+joinCodes(c.Upstream.ErrorCodes) == "") {
					t.Errorf("upstream = %+v, want http_status %d and %s", c.Upstream, sc.HTTPStatus, sc.MicrosoftCode)
				}
			} else if res.Identity == nil || res.Identity.UserID == "" || res.Error != nil {
				t.Errorf("a passing test has identity %+v and error %+v", res.Identity, res.Error)
			}

			conn := e.do("GET", "/connections/"+id, account, nil).json(t)
			wantStatus := "connected"
			if failed {
				wantStatus = "failing"
			}
			if conn["status"] != wantStatus || conn["last_test"] == nil {
				t.Errorf("stored status %v, last_test %v; want %s", conn["status"], conn["last_test"] != nil, wantStatus)
			}
		})
	}
}

func joinCodes(codes []int) string {
	var b strings.Builder
	for _, c := range codes {
		b.WriteString(strconv.Itoa(c))
	}
	return b.String()
}

func equalStep(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

func TestTestHistoryNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/connections", "acct-a", e.simCreate("ok")).json(t)["id"].(string)
	for range 3 {
		decodeResult(t, e.do("POST", "/connections/"+id+"/test", "acct-a", nil))
	}
	page := e.do("GET", "/connections/"+id+"/tests?limit=2", "acct-a", nil).json(t)
	items := page["items"].([]any)
	if len(items) != 2 || page["next_cursor"] == nil {
		t.Fatalf("page 1 = %v", page)
	}
	first, second := items[0].(map[string]any)["tested_at"].(string), items[1].(map[string]any)["tested_at"].(string)
	if first < second {
		t.Errorf("not newest first: %s before %s", first, second)
	}
	rest := e.do("GET", "/connections/"+id+"/tests?limit=2&cursor="+page["next_cursor"].(string), "acct-a", nil).json(t)
	if n := len(rest["items"].([]any)); n != 1 || rest["next_cursor"] != nil {
		t.Errorf("page 2 = %v", rest)
	}
	if res := e.do("GET", "/connections/"+id+"/tests", "acct-b", nil); res.status != http.StatusNotFound {
		t.Errorf("another account's history: %d", res.status)
	}
	if res := e.do("POST", "/connections/"+id+"/test", "acct-b", nil); res.status != http.StatusNotFound {
		t.Errorf("another account's test: %d", res.status)
	}
}

func TestCredentialsTestStoresNothing(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics := checker.NewMetrics(reg)
	e := newEnv(t, func(o *envConfig) { o.checker.Metrics = metrics })
	res := decodeResult(t, e.do("POST", "/connection-tests", "acct-a", e.simCreate("ok")))
	if !res.OK {
		t.Fatalf("test of good credentials failed: %+v", res.Error)
	}
	if items := e.do("GET", "/connections", "acct-a", nil).json(t)["items"].([]any); len(items) != 0 {
		t.Errorf("a credentials test stored %d connections", len(items))
	}
	bad := decodeResult(t, e.do("POST", "/connection-tests", "acct-a", with(e.simCreate("secret_invalid"))))
	if bad.OK || bad.Error.Code != dynamics.CodeClientSecretInvalid {
		t.Errorf("bad secret: %+v", bad.Error)
	}
	want := `
# HELP dynconn_connection_tests_total Connection tests by outcome (ok or the diagnosis code) and trigger (manual or scheduled).
# TYPE dynconn_connection_tests_total counter
dynconn_connection_tests_total{outcome="client_secret_invalid",trigger="manual"} 1
dynconn_connection_tests_total{outcome="ok",trigger="manual"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dynconn_connection_tests_total"); err != nil {
		t.Errorf("metrics: %v", err)
	}
	if r := e.do("POST", "/connection-tests", "acct-a", map[string]any{"client_id": simulator.ClientID}); r.status != http.StatusUnprocessableEntity {
		t.Errorf("missing fields: %d", r.status)
	}
	if r := e.do("POST", "/connection-tests", "acct-a", with(e.simCreate("ok"), "name", "x")); r.status != http.StatusUnprocessableEntity {
		t.Errorf("name in a test body: %d", r.status)
	}
}

// TestCredentialsTestOfAnEdit tests new fields with the stored secret, as the
// modal does when a customer edits a connection without retyping the secret.
func TestCredentialsTestOfAnEdit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/connections", "acct-a", e.simCreate("app_not_found")).json(t)["id"].(string)
	edit := map[string]any{"connection_id": id, "instance_url": e.sim.InstanceURL("ok")}
	res := decodeResult(t, e.do("POST", "/connection-tests", "acct-a", edit))
	if !res.OK {
		t.Fatalf("edit with the stored secret failed: %+v", res.Error)
	}
	if c := e.do("GET", "/connections/"+id, "acct-a", nil).json(t); c["status"] != "untested" || c["instance_url"] != e.sim.InstanceURL("app_not_found") {
		t.Errorf("testing an edit changed the connection: %v", c)
	}
	if r := e.do("POST", "/connection-tests", "acct-b", edit); r.status != http.StatusNotFound {
		t.Errorf("another account's connection_id: %d, want 404", r.status)
	}
}

func TestConnectionTestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *envConfig) { o.checker.RateLimit = store.RateLimit{Every: time.Hour, Burst: 2} })
	id := e.do("POST", "/connections", "acct-a", e.simCreate("ok")).json(t)["id"].(string)
	for range 2 {
		decodeResult(t, e.do("POST", "/connections/"+id+"/test", "acct-a", nil))
	}
	res := e.do("POST", "/connections/"+id+"/test", "acct-a", nil)
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Fatalf("third test: %d, Retry-After %q", res.status, res.header.Get("Retry-After"))
	}
	if r := e.do("POST", "/connection-tests", "acct-a", e.simCreate("ok")); r.status != http.StatusTooManyRequests {
		t.Errorf("credentials test past the limit: %d", r.status)
	}
	// Another account has its own budget.
	other := e.do("POST", "/connections", "acct-b", e.simCreate("ok")).json(t)["id"].(string)
	decodeResult(t, e.do("POST", "/connections/"+other+"/test", "acct-b", nil))
}

// TestConcurrentTestsShareOneRun starts two tests of one connection at once:
// Microsoft sees one token request, and both callers get the result.
func TestConcurrentTestsShareOneRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/connections", "acct-a", e.simCreate("slow")).json(t)["id"].(string)
	var wg sync.WaitGroup
	results := make([]model.TestResult, 2)
	for i := range results {
		wg.Go(func() { results[i] = decodeResult(t, e.do("POST", "/connections/"+id+"/test", "acct-a", nil)) })
	}
	wg.Wait()
	if n := e.sim.Count("token"); n != 1 {
		t.Errorf("token requests = %d, want 1 shared run", n)
	}
	if !results[0].OK || !results[0].TestedAt.Equal(results[1].TestedAt) {
		t.Errorf("results differ: %v vs %v", results[0].TestedAt, results[1].TestedAt)
	}
	// One run, recorded once.
	if items := e.do("GET", "/connections/"+id+"/tests", "acct-a", nil).json(t)["items"].([]any); len(items) != 1 {
		t.Errorf("history holds %d results, want 1", len(items))
	}
	if got := e.events("acct-a", id); len(got) != 2 || got[0] != "connection.tested" {
		t.Errorf("events = %v, want one test after the create", got)
	}
}

// TestExpiredSecretIsRecorded: a test that Microsoft answers with the
// expired-secret error marks the secret expired until it is rotated.
func TestExpiredSecretIsRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/connections", "acct-a", e.simCreate("secret_expired")).json(t)["id"].(string)
	res := decodeResult(t, e.do("POST", "/connections/"+id+"/test", "acct-a", nil))
	if res.Error == nil || res.Error.Code != dynamics.CodeClientSecretExpired || deref(res.Error.SetupStep) != "client_secret" {
		t.Fatalf("error = %+v", res.Error)
	}
	secret := e.do("GET", "/connections/"+id, "acct-a", nil).json(t)["client_secret"].(map[string]any)
	if secret["state"] != "expired" {
		t.Errorf("state after expired-secret test = %v", secret["state"])
	}
	if items, _ := e.do("GET", "/connections?secret_state=expired", "acct-a", nil).json(t)["items"].([]any); len(items) != 1 {
		t.Errorf("secret_state=expired lists %d", len(items))
	}
	rotated := e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"client_secret": "Fresh8Q~new.secret.value.0123456789abcd"}).json(t)
	if st := rotated["client_secret"].(map[string]any)["state"]; st != "unknown" {
		t.Errorf("state after rotation = %v, want unknown", st)
	}
}
