package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/credential"
)

func token(t *testing.T, s *Server, base string, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(base+"/"+TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token body: %v", err)
	}
	return resp, body
}

func goodForm(base string) url.Values {
	return url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret},
		"scope": {base + "/.default"}, "grant_type": {"client_credentials"}}
}

func TestTokenEndpointValidates(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	tests := []struct {
		name   string
		edit   func(url.Values)
		status int
		error  string
		code   float64
	}{
		{"no grant_type", func(f url.Values) { f.Del("grant_type") }, 400, "invalid_request", 900144},
		{"other grant", func(f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type", 70003},
		{"no client_id", func(f url.Values) { f.Del("client_id") }, 400, "invalid_request", 900144},
		{"no scope", func(f url.Values) { f.Del("scope") }, 400, "invalid_request", 900144},
		{"scope without https", func(f url.Values) { f.Set("scope", strings.TrimPrefix(s.URL, "http://")+"/.default") }, 400, "invalid_scope", 70011},
		{"scope without .default", func(f url.Values) { f.Set("scope", s.URL+"/user_impersonation") }, 400, "invalid_scope", 1002012},
		{"scope of another resource", func(f url.Values) { f.Set("scope", "https://other.crm.dynamics.com/.default") }, 400, "invalid_resource", 500011},
		{"unknown client", func(f url.Values) { f.Set("client_id", SecretID) }, 400, "unauthorized_client", 700016},
		{"no secret", func(f url.Values) { f.Del("client_secret") }, 401, "invalid_client", 7000218},
		{"secret id instead of value", func(f url.Values) { f.Set("client_secret", SecretID) }, 401, "invalid_client", 7000215},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := goodForm(s.URL)
			tt.edit(f)
			resp, body := token(t, s, s.URL, f)
			if resp.StatusCode != tt.status || body["error"] != tt.error {
				t.Fatalf("got %d %v, want %d %s", resp.StatusCode, body["error"], tt.status, tt.error)
			}
			codes, _ := body["error_codes"].([]any)
			if len(codes) != 1 || codes[0] != tt.code {
				t.Errorf("error_codes = %v, want [%v]", body["error_codes"], tt.code)
			}
			desc, _ := body["error_description"].(string)
			if !strings.Contains(desc, "\r\nTrace ID: "+body["trace_id"].(string)+"\r\nCorrelation ID: "+body["correlation_id"].(string)+"\r\nTimestamp: ") {
				t.Errorf("error_description lacks the Trace ID lines: %q", desc)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestDataverseWire(t *testing.T) {
	s := New(Options{})
	defer s.Close()

	resp, err := http.Get(s.URL + "/api/data/v9.2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "Bearer authorization_uri=" + s.URL + "/" + TenantID + "/oauth2/authorize, resource_id=" + s.URL + "/"
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("probe = %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}

	resp, body := token(t, s, s.URL, goodForm(s.URL))
	if resp.StatusCode != 200 || body["token_type"] != "Bearer" || body["expires_in"] != 3599.0 || resp.Header.Get("Cache-Control") != "no-store, no-cache" {
		t.Fatalf("token = %d %v", resp.StatusCode, body)
	}

	get := func(tok string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/data/v9.2/WhoAmI", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, got := get(body["access_token"].(string))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; odata.metadata=minimal" ||
		resp.Header.Get("OData-Version") != "4.0" || !strings.Contains(got, `"UserId":"`+UserID+`"`) {
		t.Fatalf("WhoAmI = %d %v %s", resp.StatusCode, resp.Header, got)
	}
	resp, got = get("forged")
	if resp.StatusCode != 401 || !strings.Contains(got, "0x80044302") {
		t.Fatalf("forged token = %d %s, want 401 0x80044302", resp.StatusCode, got)
	}
}

func TestScenarioSelection(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	if err := s.SetScenario("no_such"); err == nil {
		t.Error("SetScenario accepted an unknown scenario")
	}
	if _, err := s.Scenario("no_such"); err == nil {
		t.Error("Scenario accepted an unknown scenario")
	}
	probe := func(base string) *http.Response {
		t.Helper()
		resp, err := http.Get(base + "/api/data/v9.2/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	inst := s.InstanceURL("not_dataverse")
	if inst == s.URL || s.InstanceURL("not_dataverse") != inst {
		t.Fatalf("InstanceURL = %s (server %s), want one listener of its own, the same each time", inst, s.URL)
	}
	if u, err := url.Parse(inst); err != nil || u.Hostname() != "127.0.0.1" || u.Path != "" {
		t.Errorf("InstanceURL = %s, want http://127.0.0.1:PORT", inst)
	}
	if resp := probe(inst); resp.StatusCode != 200 {
		t.Errorf("not_dataverse probe = %d, want 200", resp.StatusCode)
	}
	ok := s.InstanceURL(ScenarioOK)
	want := "Bearer authorization_uri=" + ok + "/" + TenantID + "/oauth2/authorize, resource_id=" + ok + "/"
	if resp := probe(ok); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("ok probe = %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}

	if err := s.SetScenario("not_dataverse"); err != nil {
		t.Fatal(err)
	}
	if resp := probe(s.URL); resp.StatusCode != 200 {
		t.Errorf("after SetScenario probe = %d, want 200", resp.StatusCode)
	}
	if resp := probe(ok); resp.StatusCode != 401 {
		t.Errorf("SetScenario changed the ok listener: probe = %d, want 401", resp.StatusCode)
	}
}

func TestTokensAreBounded(t *testing.T) {
	h := NewHandler(Options{})
	for range maxTokens + 10 {
		h.issueToken("x")
	}
	if len(h.tokens) != maxTokens || len(h.ring) != maxTokens {
		t.Fatalf("remembered %d tokens, want %d", len(h.tokens), maxTokens)
	}
}

func TestScenarioTable(t *testing.T) {
	for _, sc := range Scenarios() {
		s := scenarioByName[sc.Name]
		if sc.Name != ScenarioOK && (s.respond == nil || s.at == "") {
			t.Errorf("scenario %s does nothing", sc.Name)
		}
		if sc.Summary == "" || sc.Check == "" || sc.Status == "" {
			t.Errorf("scenario %s is not described", sc.Name)
		}
	}
}

// assertionForm is a token request that authenticates with an assertion
// signed by s for the token endpoint of base.
func assertionForm(t *testing.T, s *credential.Signer, base string, now time.Time) url.Values {
	t.Helper()
	a, err := s.Assertion(base+"/"+TenantID+"/oauth2/v2.0/token", ClientID, now)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"client_id": {ClientID}, "client_assertion_type": {credential.AssertionType}, "client_assertion": {a},
		"scope": {base + "/.default"}, "grant_type": {"client_credentials"}}
}

func TestClientAssertions(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	cert, key, err := credential.Generate(uuid.New(), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := credential.NewSigner(cert.DER, key)
	if err != nil {
		t.Fatal(err)
	}
	defer signer.Destroy()
	expect := func(form url.Values, status int, code float64, text string) {
		t.Helper()
		resp, body := token(t, s, s.URL, form)
		if resp.StatusCode != status {
			t.Fatalf("status %d, want %d: %v", resp.StatusCode, status, body)
		}
		if code == 0 {
			if body["access_token"] == "" {
				t.Errorf("no token: %v", body)
			}
			return
		}
		desc, _ := body["error_description"].(string)
		if codes, _ := body["error_codes"].([]any); len(codes) != 1 || codes[0] != code || !strings.Contains(desc, text) {
			t.Errorf("error %v %q, want [%v] and %q", body["error_codes"], desc, code, text)
		}
	}
	upload := func(clientID string, body []byte) *http.Response {
		t.Helper()
		resp, err := http.Post(s.URL+"/_sim/apps/"+clientID+"/certificates", "application/x-pem-file", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	now := time.Now()

	// Before the upload: Microsoft's AADSTS700027 naming the thumbprint.
	expect(assertionForm(t, signer, s.URL, now), 401, 700027, "[Reason - The key was not found., Thumbprint of key used by client: '"+cert.ThumbprintSHA256+"'")

	if resp := upload(SecretID, cert.PEM()); resp.StatusCode != http.StatusNotFound {
		t.Errorf("upload to an unknown app: %d", resp.StatusCode)
	}
	if resp := upload(ClientID, []byte("not a certificate")); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("upload of garbage: %d", resp.StatusCode)
	}
	if resp := upload(ClientID, cert.PEM()); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	if got := s.Certificates(); len(got) != 1 || got[0].Thumbprint != cert.Thumbprint {
		t.Fatalf("uploaded: %+v", got)
	}

	expect(assertionForm(t, signer, s.URL, now), 200, 0, "")
	stale := assertionForm(t, signer, s.URL, now.Add(-time.Hour))
	expect(stale, 400, 700024, "not within its valid time range")
	otherAud := assertionForm(t, signer, "https://login.microsoftonline.com", now)
	otherAud.Set("scope", s.URL+"/.default")
	expect(otherAud, 400, 50027, "Invalid JWT token")
	wrongType := assertionForm(t, signer, s.URL, now)
	wrongType.Set("client_assertion_type", "urn:other")
	expect(wrongType, 400, 900144, "client_assertion_type")

	// Removed from the app: the key is not found again.
	req, _ := http.NewRequest(http.MethodDelete, s.URL+"/_sim/apps/"+ClientID+"/certificates/"+strings.ToLower(cert.Thumbprint), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	expect(assertionForm(t, signer, s.URL, now), 401, 700027, "The key was not found.")

	// What the token endpoint saw: assertions, never a secret or a key.
	for _, f := range s.TokenRequests() {
		if f.Has("client_secret") || strings.Contains(f.Encode(), "PRIVATE") {
			t.Errorf("token request with a secret or a key: %v", f)
		}
	}
}
