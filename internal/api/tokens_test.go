package api

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
)

// workerToken is a token of account that grants connections:token.
func workerToken(t testing.TB, account string) string {
	t.Helper()
	tok, err := auth.NewToken([]byte(hsSecret), account, "worker-"+account, time.Hour, auth.ScopeToken)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// issue asks for an access token as a worker of account.
func (e *testEnv) issue(account, id, query string) response {
	e.t.Helper()
	return e.do("POST", "/connections/"+id+"/token"+query, "", nil, "Authorization", "Bearer "+workerToken(e.t, account))
}

// whoAmI calls the simulator's WhoAmI with an access token, as a worker would.
func (e *testEnv) whoAmI(instance, accessToken string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, instance+"/api/data/v9.2/WhoAmI", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestConnectionToken(t *testing.T) {
	t.Parallel()
	metrics := NewMetrics(prometheus.NewRegistry())
	e := newEnv(t, func(o *envConfig) { o.Metrics = metrics })
	const acct = "acct-worker"
	instance := e.sim.InstanceURL("ok")
	id := e.do("POST", "/connections", acct, e.simCreate("ok")).json(t)["id"].(string)

	// Without the scope: 403, whether or not the id exists.
	for _, path := range []string{id, "00000000-0000-0000-0000-000000000000"} {
		res := e.do("POST", "/connections/"+path+"/token", acct, nil)
		if res.status != http.StatusForbidden || res.json(t)["type"] != typeForbidden {
			t.Errorf("without the scope: %d %s", res.status, res.body)
		}
	}
	if res := e.issue("acct-other", id, ""); res.status != http.StatusNotFound {
		t.Errorf("another account's connection: %d", res.status)
	}
	if res := e.issue(acct, id, "?fresh=maybe"); res.status != http.StatusUnprocessableEntity {
		t.Errorf("fresh=maybe: %d", res.status)
	}

	first := e.issue(acct, id, "")
	tok := first.json(t)
	if first.status != http.StatusOK || first.header.Get("Cache-Control") != "no-store" || tok["token_type"] != "Bearer" || tok["resource"] != instance {
		t.Fatalf("token: %d %v %s", first.status, first.header, first.body)
	}
	access := tok["access_token"].(string)
	if status := e.whoAmI(instance, access); status != http.StatusOK {
		t.Errorf("WhoAmI with the token: %d", status)
	}
	expires, _ := time.Parse(time.RFC3339, tok["expires_at"].(string))
	if d := time.Until(expires); d < 55*time.Minute || d > time.Hour {
		t.Errorf("expires in %v", d)
	}

	// Within its lifetime the token comes from the cache; fresh=true asks again.
	if again := e.issue(acct, id, "").json(t); again["access_token"] != access || e.sim.Count("token") != 1 {
		t.Errorf("second call: same token %t, %d token requests", again["access_token"] == access, e.sim.Count("token"))
	}
	fresh := e.issue(acct, id, "?fresh=true").json(t)
	if fresh["access_token"] == access || e.sim.Count("token") != 2 {
		t.Errorf("fresh=true: new token %t, %d token requests", fresh["access_token"] != access, e.sim.Count("token"))
	}
	cached := e.issue(acct, id, "").json(t)["access_token"]
	if cached != fresh["access_token"] {
		t.Error("the fresh token did not replace the cached one")
	}

	// A new secret is a new credential: the cached token is not handed out.
	e.do("PATCH", "/connections/"+id, acct, map[string]any{"client_secret": simulator.ClientSecret})
	if after := e.issue(acct, id, "").json(t); after["access_token"] == cached || e.sim.Count("token") != 3 {
		t.Errorf("after a PATCH of the secret: new token %t, %d token requests", after["access_token"] != cached, e.sim.Count("token"))
	}

	for source, n := range map[string]float64{sourceCache: 2, sourceMicrosoft: 3} {
		if got := testutil.ToFloat64(metrics.tokens.WithLabelValues(source, "issued")); got != n {
			t.Errorf("tokens issued from %s: %v, want %v", source, got, n)
		}
	}
	if !strings.Contains(e.logs.String(), `"msg":"connection token issued"`) || !strings.Contains(e.logs.String(), `"actor":"worker-`+acct+`"`) {
		t.Error("no log line with the actor")
	}
	if strings.Contains(e.logs.String(), access) {
		t.Error("the token was logged")
	}
}

// TestConnectionTokenColdCacheCoalesces: 20 workers asking at once for a
// connection whose token is not cached make one token request.
func TestConnectionTokenColdCacheCoalesces(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sim.SetScenario("slow") // answers after 200ms: the 20 requests overlap
	id := e.do("POST", "/connections", "acct-cold", map[string]any{"instance_url": e.sim.URL,
		"client_id": simulator.ClientID, "client_secret": simulator.ClientSecret}).json(t)["id"].(string)
	var wg sync.WaitGroup
	tokens := make([]string, 20)
	for i := range tokens {
		wg.Go(func() {
			res := e.issue("acct-cold", id, "")
			if res.status == http.StatusOK {
				tokens[i] = res.json(t)["access_token"].(string)
			}
		})
	}
	wg.Wait()
	if n := e.sim.Count("token"); n != 1 {
		t.Errorf("%d token requests for 20 concurrent cold calls, want 1", n)
	}
	for _, tok := range tokens {
		if tok == "" || tok != tokens[0] {
			t.Fatalf("tokens %q: want 20 copies of one", tokens)
		}
	}
}

// TestConnectionTokenRefused: Microsoft's refusals come back with the
// diagnosis: 502, or 503 with Retry-After when it throttles.
func TestConnectionTokenRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		scenario   string
		status     int
		code, step string
		retryAfter string
	}{
		{"secret_expired", http.StatusBadGateway, dynamics.CodeClientSecretExpired, dynamics.StepClientSecret, ""},
		{"app_not_found", http.StatusBadGateway, dynamics.CodeAppNotFound, dynamics.StepCreateAppRegistration, ""},
		{"entra_throttled", http.StatusServiceUnavailable, dynamics.CodeThrottled, "", "10"},
		{"entra_unavailable", http.StatusBadGateway, dynamics.CodeMicrosoftUnavailable, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			acct := "acct-" + tt.scenario
			id := e.do("POST", "/connections", acct, e.simCreate(tt.scenario)).json(t)["id"].(string)
			res := e.issue(acct, id, "")
			p := res.json(t)
			d, _ := p["diagnosis"].(map[string]any)
			if res.status != tt.status || d == nil || d["code"] != tt.code || res.header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("%d %s (Retry-After %q)", res.status, res.body, res.header.Get("Retry-After"))
			}
			if step, _ := d["setup_step"].(string); step != tt.step || d["message"] == "" || d["hint"] == "" {
				t.Errorf("diagnosis %v", d)
			}
		})
	}

	// An expired certificate: refused before Microsoft is asked.
	clk := &clock{}
	ex := newEnv(t, func(o *envConfig) { o.Now = clk.Now })
	clk.advance(-400 * 24 * time.Hour)
	id := ex.do("POST", "/connections", "acct-x", ex.certCreate("ok")).json(t)["id"].(string)
	clk.advance(400 * 24 * time.Hour)
	res := ex.issue("acct-x", id, "")
	if d, _ := res.json(t)["diagnosis"].(map[string]any); res.status != http.StatusBadGateway || d["code"] != dynamics.CodeCertificateExpired ||
		ex.sim.Count("token") != 0 {
		t.Errorf("expired certificate: %d %s, %d token requests", res.status, res.body, ex.sim.Count("token"))
	}
}

// A certificate connection's token comes from a client assertion.
func TestConnectionTokenWithCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/connections", "acct-c", e.certCreate("ok")).json(t)["id"].(string)
	e.upload(e.download("/connections/"+id+"/certificate", "acct-c", "", mediaPEM, "dynconn-"+id+".pem"))
	res := e.issue("acct-c", id, "")
	if res.status != http.StatusOK || e.whoAmI(e.sim.InstanceURL("ok"), res.json(t)["access_token"].(string)) != http.StatusOK {
		t.Fatalf("token: %d %s", res.status, res.body)
	}
	if f := e.sim.TokenRequests()[0]; f.Has("client_secret") || !f.Has("client_assertion") {
		t.Errorf("token request %v", f)
	}
}
