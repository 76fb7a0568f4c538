package dynamics

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
)

var checkOrder = []string{model.CheckInstanceURL, model.CheckTenantDiscovery, model.CheckToken, model.CheckWhoAmI, model.CheckSecurityRole}

// TestScenarios runs every simulator scenario through Test and checks the
// code, the setup step, the statuses of all checks and the upstream details.
func TestScenarios(t *testing.T) {
	for _, sc := range simulator.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			sim := newSim(t, simulator.Options{SlowDelay: 10 * time.Millisecond})
			c, logs := newClient(t, Options{AllowLoopback: true, StepTimeout: 500 * time.Millisecond})
			res := c.Test(context.Background(), simCreds(sim.InstanceURL(sc.Name)))

			// Statuses: passed up to the reporting check, then its status,
			// then skipped after a failure (or passed after a warning).
			at := slices.Index(checkOrder, sc.Check)
			if at < 0 {
				t.Fatalf("scenario names unknown check %q", sc.Check)
			}
			want := make([]model.CheckStatus, len(checkOrder))
			for i := range want {
				switch {
				case i < at:
					want[i] = model.CheckPassed
				case i == at:
					want[i] = model.CheckStatus(sc.Status)
				case sc.Status == "failed":
					want[i] = model.CheckSkipped
				default:
					want[i] = model.CheckPassed
				}
			}
			if diff := cmp.Diff(want, checkStatuses(res)); diff != "" {
				t.Fatalf("check statuses (-want +got):\n%s\nchecks: %+v", diff, res.Checks)
			}

			check := res.Checks[at]
			if check.Code != sc.Code {
				t.Fatalf("%s code = %q, want %q (detail %q)", sc.Check, check.Code, sc.Code, check.Detail)
			}
			if sc.Code == "" {
				if !res.OK || res.Error != nil || res.Identity == nil {
					t.Fatalf("want a passing result, got %+v", res)
				}
				return
			}
			d, _ := Lookup(sc.Code)
			if diff := cmp.Diff(d.Step(), check.SetupStep); diff != "" {
				t.Errorf("setup_step (-want +got):\n%s", diff)
			}
			if check.Message != d.Message || check.Hint != d.Hint {
				t.Errorf("message/hint not the table's: %q / %q", check.Message, check.Hint)
			}

			if sc.Status == "failed" {
				wantErr := &model.TestError{Code: sc.Code, SetupStep: d.Step(), Message: d.Message, Hint: d.Hint}
				if res.OK || res.Identity != nil {
					t.Errorf("ok = %v, identity = %+v; want a failure without identity", res.OK, res.Identity)
				}
				if diff := cmp.Diff(wantErr, res.Error); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
			} else if !res.OK || res.Error != nil {
				t.Errorf("a warning must leave ok true and error null, got ok=%v error=%+v", res.OK, res.Error)
			}

			checkUpstream(t, sim, sc, check)

			line := logs.String()
			if !strings.Contains(line, `"outcome":"`+outcome(res)+`"`) {
				t.Errorf("log line lacks the outcome: %s", line)
			}
			if up := check.Upstream; up != nil && up.TraceID != "" &&
				(!strings.Contains(line, `"trace_id":"`+up.TraceID+`"`) || !strings.Contains(line, `"correlation_id":"`+up.CorrelationID+`"`)) {
				t.Errorf("log line lacks Microsoft's trace and correlation ids: %s", line)
			}
			if strings.Contains(line, simulator.ClientSecret) {
				t.Errorf("log line holds the secret: %s", line)
			}
		})
	}
}

func outcome(res model.TestResult) string {
	if res.Error != nil {
		return res.Error.Code
	}
	return "ok"
}

// checkUpstream compares the check's upstream member with what the
// simulator sent for the scenario.
func checkUpstream(t *testing.T, sim *simulator.Server, sc simulator.Scenario, check model.Check) {
	t.Helper()
	up := check.Upstream
	switch {
	case strings.HasPrefix(sc.MicrosoftCode, "AADSTS"):
		n, _ := strconv.Atoi(strings.TrimPrefix(sc.MicrosoftCode, "AADSTS"))
		trace, corr := sim.LastTrace()
		if up == nil {
			t.Fatalf("no upstream for an Entra error")
		}
		if up.HTTPStatus != sc.HTTPStatus || !slices.Equal(up.ErrorCodes, []int{n}) || up.Error == "" ||
			up.TraceID != trace || up.CorrelationID != corr || !strings.HasPrefix(up.Message, sc.MicrosoftCode+": ") {
			t.Errorf("upstream = %+v; want status %d, codes [%d], trace %s, correlation %s", *up, sc.HTTPStatus, n, trace, corr)
		}
		if strings.Contains(up.Message, "\r\n") {
			t.Errorf("upstream message keeps the Trace ID lines: %q", up.Message)
		}
	case sc.MicrosoftCode != "":
		if up == nil || up.HTTPStatus != sc.HTTPStatus || up.Code != sc.MicrosoftCode || up.Message == "" {
			t.Errorf("upstream = %+v; want status %d and code %s with its message", up, sc.HTTPStatus, sc.MicrosoftCode)
		}
	case sc.Code == CodeMicrosoftUnavailable || sc.Code == CodeNotDataverse:
		if up == nil || up.HTTPStatus != sc.HTTPStatus {
			t.Errorf("upstream = %+v; want status %d", up, sc.HTTPStatus)
		}
	}
	if sc.Code == CodeThrottled {
		want := map[string]int{"throttled": 27, "entra_throttled": 10}[sc.Name]
		if up == nil || up.RetryAfter != want {
			t.Errorf("upstream = %+v; want retry_after_seconds %d", up, want)
		}
	}
}

// TestEveryCodeHasAScenarioOrTest keeps allDiagnoses(), the simulator and this
// package's tests in step: a code nobody can produce is dead, and a scenario
// with an unknown code is a typo.
func TestEveryCodeHasAScenarioOrTest(t *testing.T) {
	covered := map[string]bool{
		CodeInstanceURLInvalid:     true, // TestInstanceURLInvalid
		CodeInstanceNotFound:       true, // TestInstanceNotFound
		CodeTenantMismatch:         true, // TestExplicitTenant
		CodeMicrosoftUnreachable:   true, // TestAuthorityUnreachable
		CodeCertificateNotUploaded: true, // TestCertificateSignsInWithAnAssertion
		CodeCertificateExpired:     true, // TestCertificateExpired
	}
	for _, sc := range simulator.Scenarios() {
		if sc.Code == "" {
			continue
		}
		if _, ok := Lookup(sc.Code); !ok {
			t.Errorf("scenario %s expects unknown code %q", sc.Name, sc.Code)
		}
		covered[sc.Code] = true
	}
	for _, d := range allDiagnoses() {
		if !covered[d.Code] {
			t.Errorf("code %s has no simulator scenario or test", d.Code)
		}
		if d.Message == "" || d.Hint == "" || !strings.HasSuffix(d.Message, ".") {
			t.Errorf("code %s needs a one-sentence message and a hint", d.Code)
		}
		switch d.SetupStep {
		case "", StepFindInstanceURL, StepCreateAppRegistration, StepAPIPermissions, StepClientSecret,
			StepUploadCertificate, StepCreateAPIUserRole, StepCreateApplicationUser, StepAssignRole:
		default:
			t.Errorf("code %s has unknown setup step %q", d.Code, d.SetupStep)
		}
	}
}

// TestDesignMapping pins the setup steps design.md assigns.
func TestDesignMapping(t *testing.T) {
	want := map[string]string{
		CodeClientSecretInvalid:     StepClientSecret,
		CodeClientSecretExpired:     StepClientSecret,
		CodeClientSecretMissing:     StepClientSecret,
		CodeAppNotFound:             StepCreateAppRegistration,
		CodeAppDisabled:             StepCreateAppRegistration,
		CodeInstanceNotFound:        StepFindInstanceURL,
		CodeNotDataverse:            StepFindInstanceURL,
		CodeDynamicsNotInTenant:     StepFindInstanceURL,
		CodeApplicationUserMissing:  StepCreateApplicationUser,
		CodeApplicationUserDisabled: StepCreateApplicationUser,
		CodePrivilegeMissing:        StepCreateAPIUserRole,
		CodeSecurityRoleMissing:     StepAssignRole,
		CodeThrottled:               "",
		CodeMicrosoftUnavailable:    "",
	}
	for code, step := range want {
		if d, _ := Lookup(code); d.SetupStep != step {
			t.Errorf("%s: setup step %q, want %q", code, d.SetupStep, step)
		}
	}
}

func TestSuccess(t *testing.T) {
	sim := newSim(t, simulator.Options{Roles: []string{"API User", "Basic User"}})
	c, logs := newClient(t, Options{AllowLoopback: true})
	res := c.Test(context.Background(), simCreds(sim.URL+"/main.aspx?appid=123"))
	if !res.OK || res.Error != nil {
		t.Fatalf("want success, got %+v", res)
	}
	want := &model.Identity{
		TenantID: simulator.TenantID, UserID: simulator.UserID, BusinessUnitID: simulator.BusinessUnitID,
		OrganizationID: simulator.OrganizationID, Roles: []string{"API User", "Basic User"},
	}
	if diff := cmp.Diff(want, res.Identity); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if got := checkNamed(t, res, model.CheckTenantDiscovery).Detail; got != "tenant "+simulator.TenantID {
		t.Errorf("tenant_discovery detail = %q", got)
	}
	if res.TestedAt.IsZero() || res.TestedAt.Location() != time.UTC {
		t.Errorf("tested_at = %v, want a UTC time", res.TestedAt)
	}
	for _, name := range []string{"probe", "token", "whoami", "user"} {
		if n := sim.Count(name); n != 1 {
			t.Errorf("%s requests = %d, want 1", name, n)
		}
	}

	// Neither the secret nor the token may reach the log or the result.
	body, _ := json.Marshal(res)
	for _, leak := range []string{simulator.ClientSecret, "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.", ".simulator"} {
		if strings.Contains(logs.String(), leak) || strings.Contains(string(body), leak) {
			t.Errorf("%q leaked into the log or the result", leak)
		}
	}
}

func TestSecretIDPastedInsteadOfValue(t *testing.T) {
	sim := newSim(t, simulator.Options{})
	c, _ := newClient(t, Options{AllowLoopback: true})
	cr := simCreds(sim.URL)
	cr.ClientSecret = secret.Bytes(simulator.SecretID)
	res := c.Test(context.Background(), cr)
	tok := checkNamed(t, res, model.CheckToken)
	if tok.Code != CodeClientSecretInvalid || !strings.Contains(tok.Detail, "Secret ID") {
		t.Fatalf("token check = %+v; want client_secret_invalid naming the Secret ID", tok)
	}
	if !strings.Contains(tok.Hint, "Value, not its Secret ID") {
		t.Errorf("hint does not explain Value vs Secret ID: %q", tok.Hint)
	}
}

// TestSimulatorValidates shows that the simulator's default scenario fails
// wrong credentials with Microsoft's own errors, not with a pass.
func TestSimulatorValidates(t *testing.T) {
	sim := newSim(t, simulator.Options{})
	tests := []struct {
		name     string
		edit     func(*Credentials)
		wantCode string
		wantMS   int
	}{
		{"wrong client id is AADSTS700016", func(c *Credentials) { c.ClientID = "22222222-2222-2222-2222-999999999999" }, CodeAppNotFound, 700016},
		{"wrong secret is AADSTS7000215", func(c *Credentials) { c.ClientSecret = secret.Bytes("not-the-secret") }, CodeClientSecretInvalid, 7000215},
		{"unknown explicit tenant is AADSTS90002", func(c *Credentials) { c.TenantID = "99999999-9999-9999-9999-999999999999" }, CodeTenantNotFound, 90002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClient(t, Options{AllowLoopback: true})
			cr := simCreds(sim.URL)
			tt.edit(&cr)
			tok := checkNamed(t, c.Test(context.Background(), cr), model.CheckToken)
			if tok.Code != tt.wantCode || tok.Upstream == nil || !slices.Equal(tok.Upstream.ErrorCodes, []int{tt.wantMS}) {
				t.Fatalf("token check = %+v; want %s with AADSTS%d", tok, tt.wantCode, tt.wantMS)
			}
		})
	}
}

func TestExplicitTenant(t *testing.T) {
	sim := newSim(t, simulator.Options{})
	c, _ := newClient(t, Options{AllowLoopback: true})

	t.Run("same tenant in another case passes", func(t *testing.T) {
		cr := simCreds(sim.URL)
		cr.TenantID = strings.ToUpper(simulator.TenantID)
		res := c.Test(context.Background(), cr)
		if !res.OK || checkNamed(t, res, model.CheckTenantDiscovery).Status != model.CheckPassed {
			t.Fatalf("want success, got %+v", res)
		}
	})
	t.Run("other tenant warns and is used", func(t *testing.T) {
		cr := simCreds(sim.URL)
		cr.TenantID = "99999999-9999-9999-9999-999999999999"
		res := c.Test(context.Background(), cr)
		disc := checkNamed(t, res, model.CheckTenantDiscovery)
		if disc.Status != model.CheckWarning || disc.Code != CodeTenantMismatch ||
			!strings.Contains(disc.Detail, simulator.TenantID) || !strings.Contains(disc.Detail, cr.TenantID) {
			t.Fatalf("tenant_discovery = %+v; want a tenant_mismatch warning naming both tenants", disc)
		}
		if diff := cmp.Diff(stepOf(t, CodeTenantMismatch), disc.SetupStep); diff != "" {
			t.Errorf("setup_step (-want +got):\n%s", diff)
		}
		// The explicit tenant was used: the simulator does not know it.
		if tok := checkNamed(t, res, model.CheckToken); tok.Code != CodeTenantNotFound {
			t.Fatalf("token = %+v; want tenant_not_found", tok)
		}
	})
}

func TestInstanceURLInvalid(t *testing.T) {
	c, _ := newClient(t, Options{})
	res := c.Test(context.Background(), simCreds("https://contoso.example.com"))
	want := []model.CheckStatus{model.CheckFailed, model.CheckSkipped, model.CheckSkipped, model.CheckSkipped, model.CheckSkipped}
	if diff := cmp.Diff(want, checkStatuses(res)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
	ch := res.Checks[0]
	if ch.Code != CodeInstanceURLInvalid || *ch.SetupStep != StepFindInstanceURL || !strings.Contains(ch.Detail, "not a Dynamics 365 address") {
		t.Fatalf("instance_url = %+v", ch)
	}
}

func TestInstanceNotFound(t *testing.T) {
	c, _ := newClient(t, Options{Lookup: staticLookup(nil)})
	res := c.Test(context.Background(), simCreds("https://nosuchorg.crm4.dynamics.com"))
	ch := checkNamed(t, res, model.CheckTenantDiscovery)
	if ch.Code != CodeInstanceNotFound || ch.Status != model.CheckFailed || *ch.SetupStep != StepFindInstanceURL {
		t.Fatalf("tenant_discovery = %+v; want instance_not_found", ch)
	}
}

func TestInstanceUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	c, _ := newClient(t, Options{AllowLoopback: true})
	res := c.Test(context.Background(), simCreds("http://"+addr))
	if ch := checkNamed(t, res, model.CheckTenantDiscovery); ch.Code != CodeInstanceUnreachable || ch.SetupStep != nil {
		t.Fatalf("tenant_discovery = %+v; want instance_unreachable without a setup step", ch)
	}
}

// TestAuthorityUnreachable: the challenge names a loopback authority nobody
// listens on, so the token request cannot connect.
func TestAuthorityUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	sim := newSim(t, simulator.Options{AuthorityURL: dead})
	c, _ := newClient(t, Options{AllowLoopback: true})
	res := c.Test(context.Background(), simCreds(sim.URL))
	if ch := checkNamed(t, res, model.CheckToken); ch.Code != CodeMicrosoftUnreachable {
		t.Fatalf("token = %+v; want microsoft_unreachable", ch)
	}
}

func TestEmptySecretSendsNothing(t *testing.T) {
	sim := newSim(t, simulator.Options{})
	c, _ := newClient(t, Options{AllowLoopback: true})
	cr := simCreds(sim.URL)
	cr.ClientSecret = nil
	res := c.Test(context.Background(), cr)
	if ch := checkNamed(t, res, model.CheckToken); ch.Code != CodeClientSecretMissing {
		t.Fatalf("token = %+v; want client_secret_missing", ch)
	}
	if n := sim.Count("token"); n != 0 {
		t.Errorf("token requests = %d, want 0", n)
	}
}

func TestDiscoveryCache(t *testing.T) {
	sim := newSim(t, simulator.Options{})
	now := time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	c, _ := newClient(t, Options{AllowLoopback: true, Now: clock})
	cr := simCreds(sim.URL)

	c.Test(context.Background(), cr)
	res := c.Test(context.Background(), cr)
	if n := sim.Count("probe"); n != 1 {
		t.Fatalf("probes after two tests = %d, want 1 (cached)", n)
	}
	if !res.OK || !strings.Contains(checkNamed(t, res, model.CheckTenantDiscovery).Detail, "discovered earlier") {
		t.Errorf("cached discovery not reported: %+v", res.Checks[1])
	}
	if n := sim.Count("token"); n != 2 {
		t.Errorf("token requests = %d, want 2: every test needs a fresh token", n)
	}

	now = now.Add(61 * time.Minute)
	c.Test(context.Background(), cr)
	if n := sim.Count("probe"); n != 2 {
		t.Fatalf("probes after the hour = %d, want 2", n)
	}

	off, _ := newClient(t, Options{AllowLoopback: true, DiscoveryTTL: -1})
	off.Test(context.Background(), cr)
	off.Test(context.Background(), cr)
	if n := sim.Count("probe"); n != 4 {
		t.Fatalf("probes with the cache off = %d, want 4", n)
	}
}

func TestDiscoveryCacheIsBounded(t *testing.T) {
	now := time.Now()
	d := newDiscoveryCache(time.Hour, 3, func() time.Time { return now })
	for i := range 10 {
		d.put("https://org"+strconv.Itoa(i)+".crm.dynamics.com", authority{Base: "https://login.microsoftonline.com", Tenant: "t"})
	}
	if n := len(d.m); n != 3 {
		t.Fatalf("cache holds %d entries, want 3", n)
	}
	if _, ok := d.get("https://org9.crm.dynamics.com"); !ok {
		t.Errorf("the newest entry was evicted")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]int{
		"27": 27, "": 0, "soon": 0, "-3": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestProgress checks that a test under WithProgress reports its five checks
// in order, each as soon as it is decided (before the next step's request
// reaches Microsoft), and exactly as the result holds them.
func TestProgress(t *testing.T) {
	for _, scenario := range []string{"ok", "secret_invalid"} {
		t.Run(scenario, func(t *testing.T) {
			sim := newSim(t, simulator.Options{})
			c, _ := newClient(t, Options{AllowLoopback: true})
			var got []model.Check
			tokenRequestsAt := map[string]int{}
			ctx := WithProgress(context.Background(), func(ch model.Check) {
				got = append(got, ch)
				tokenRequestsAt[ch.Name] = sim.Count("token")
			})
			res := c.Test(ctx, simCreds(sim.InstanceURL(scenario)))
			if diff := cmp.Diff(res.Checks, got); diff != "" {
				t.Errorf("reported checks differ from the result (-result +reported):\n%s", diff)
			}
			if n := tokenRequestsAt[model.CheckTenantDiscovery]; n != 0 {
				t.Errorf("tenant_discovery was reported after %d token requests, want before the token step", n)
			}
		})
	}
}
