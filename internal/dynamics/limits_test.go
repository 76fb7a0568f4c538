package dynamics

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dynconn/dynconn/internal/model"
)

// verbose is longer than any bound, in two-byte characters, so that a cut in
// the middle of one would show as invalid UTF-8.
var verbose = strings.Repeat("é", 5000)

// TestVerboseMicrosoftAnswersAreCapped: an instance and a token endpoint that
// answer errors with huge fields (as a misbehaving or impostor endpoint
// could) give a result whose upstream fields stay within their bounds.
func TestVerboseMicrosoftAnswersAreCapped(t *testing.T) {
	codes := make([]int, 1000)
	for i := range codes {
		codes[i] = 7000215
	}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/data/v9.2/":
			w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+srv.URL+`/tenant.example/oauth2/authorize", resource_id="`+srv.URL+`/"`)
			w.WriteHeader(http.StatusUnauthorized)
		case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": verbose, "error_description": verbose, "error_codes": codes,
				"trace_id": verbose, "correlation_id": verbose})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, logs := newClient(t, Options{AllowLoopback: true})
	res := c.Test(context.Background(), simCreds(srv.URL))
	up := checkNamed(t, res, model.CheckToken).Upstream
	if up == nil || up.Error == "" || up.TraceID == "" || up.Message == "" || len(up.ErrorCodes) == 0 {
		t.Fatalf("token check without Entra's answer: %+v", res.Checks)
	}
	checkBounds(t, *up)
	if len(logs.String()) > 4000 {
		t.Errorf("the test's log line is %d bytes", len(logs.String()))
	}

	dataverse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": verbose, "message": verbose}})
	}))
	defer dataverse.Close()
	res = c.Test(context.Background(), simCreds(dataverse.URL))
	up = checkNamed(t, res, model.CheckTenantDiscovery).Upstream
	if up == nil || up.Code == "" || up.Message == "" {
		t.Fatalf("tenant_discovery without Dataverse's answer: %+v", res.Checks)
	}
	checkBounds(t, *up)
}

func checkBounds(t *testing.T, up model.Upstream) {
	t.Helper()
	for name, f := range map[string]struct {
		s   string
		max int
	}{
		"error": {up.Error, maxToken}, "code": {up.Code, maxToken}, "trace_id": {up.TraceID, maxToken},
		"correlation_id": {up.CorrelationID, maxToken}, "message": {up.Message, maxText},
	} {
		if len(f.s) > f.max || !utf8.ValidString(f.s) {
			t.Errorf("%s: %d bytes (valid UTF-8: %t), want at most %d", name, len(f.s), utf8.ValidString(f.s), f.max)
		}
	}
	if len(up.ErrorCodes) > maxErrorCodes {
		t.Errorf("%d error codes, want at most %d", len(up.ErrorCodes), maxErrorCodes)
	}
}

func TestLimitUpstreamTextKeepsRolesBounded(t *testing.T) {
	roles := make([]string, 500)
	for i := range roles {
		roles[i] = verbose
	}
	res := model.TestResult{OK: true, Identity: &model.Identity{Roles: roles},
		Checks: []model.Check{{Name: model.CheckSecurityRole, Status: model.CheckPassed, Detail: verbose}}}
	limitUpstreamText(&res)
	if len(res.Identity.Roles) != maxRoles || len(res.Identity.Roles[0]) > maxRoleName || !utf8.ValidString(res.Identity.Roles[0]) {
		t.Errorf("%d roles, the first %d bytes", len(res.Identity.Roles), len(res.Identity.Roles[0]))
	}
	if d := res.Checks[0].Detail; len(d) > maxText || !utf8.ValidString(d) {
		t.Errorf("detail of %d bytes", len(d))
	}
	if got := cut("short", maxText); got != "short" {
		t.Errorf("cut of a short text = %q", got)
	}
}
