package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"gopkg.in/yaml.v3"

	"github.com/dynconn/dynconn"
	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
)

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type entry struct{ Field, Code string }
	tests := []struct {
		name string
		body any
		want []entry
	}{
		{"missing everything", map[string]any{}, []entry{{"instance_url", "required"}, {"client_id", "required"}, {"client_secret", "required"}}},
		{"http is refused", with(validCreate(), "instance_url", "http://contoso.crm.dynamics.com"), []entry{{"instance_url", "not_https"}}},
		{"port is refused", with(validCreate(), "instance_url", "https://contoso.crm.dynamics.com:8443"), []entry{{"instance_url", "has_port"}}},
		{"user info is refused", with(validCreate(), "instance_url", "https://bob:pw@contoso.crm.dynamics.com"), []entry{{"instance_url", "has_userinfo"}}},
		{"IP address is refused", with(validCreate(), "instance_url", "https://10.0.0.1"), []entry{{"instance_url", "ip_address"}}},
		{"IPv6 address is refused", with(validCreate(), "instance_url", "https://[::1]"), []entry{{"instance_url", "ip_address"}}},
		{"other host is refused", with(validCreate(), "instance_url", "https://contoso.example.com"), []entry{{"instance_url", "not_dynamics_host"}}},
		{"lookalike host is refused", with(validCreate(), "instance_url", "https://contoso.crm.dynamics.com.evil.io"), []entry{{"instance_url", "not_dynamics_host"}}},
		{"German cloud is closed", with(validCreate(), "instance_url", "https://contoso.crm.microsoftdynamics.de"), []entry{{"instance_url", "unsupported_cloud"}}},
		{"empty URL", with(validCreate(), "instance_url", "  "), []entry{{"instance_url", "required"}}},
		{"client id not a GUID", with(validCreate(), "client_id", "my-app"), []entry{{"client_id", "not_guid"}}},
		{"tenant id not a GUID", with(validCreate(), "tenant_id", "contoso"), []entry{{"tenant_id", "not_guid"}}},
		{"empty secret", with(validCreate(), "client_secret", " \n"), []entry{{"client_secret", "required"}}},
		{"secret ID pasted instead of value", with(validCreate(), "client_secret", "9a8b7c6d-1234-4321-abcd-0123456789ab"), []entry{{"client_secret", "secret_is_guid"}}},
		{"secret equal to client id", with(validCreate(), "client_secret", "22222222-2222-2222-2222-222222222222"), []entry{{"client_secret", "secret_is_client_id"}}},
		{"secret too long", with(validCreate(), "client_secret", strings.Repeat("x", 1025)), []entry{{"client_secret", "too_long"}}},
		{"name too long", with(validCreate(), "name", strings.Repeat("n", 201)), []entry{{"name", "too_long"}}},
		{"wrong types", with(validCreate(), "client_id", 42, "name", true), []entry{{"name", "invalid_type"}, {"client_id", "invalid_type"}}},
		{"unknown field (camelCase typo)", with(validCreate(), "clientId", "x"), []entry{{"clientId", "unknown_field"}}},
		{"expiry not a timestamp", with(validCreate(), "client_secret_expires_at", "next year"), []entry{{"client_secret_expires_at", "invalid_timestamp"}}},
		{"expiry in the past", with(validCreate(), "client_secret_expires_at", "2020-01-01T00:00:00Z"), []entry{{"client_secret_expires_at", "in_past"}}},
		{"every field wrong at once", map[string]any{"instance_url": "ftp://x", "client_id": "x", "client_secret": "22222222-2222-2222-2222-222222222222"},
			[]entry{{"instance_url", "not_https"}, {"client_id", "not_guid"}, {"client_secret", "secret_is_guid"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do("POST", "/connections", "acct-a", tt.body)
			if res.status != http.StatusUnprocessableEntity {
				t.Fatalf("status = %d, want 422\n%s", res.status, res.body)
			}
			var got []entry
			for _, fe := range res.json(t)["errors"].([]any) {
				m := fe.(map[string]any)
				got = append(got, entry{m["field"].(string), m["code"].(string)})
				if msg, _ := m["message"].(string); len(msg) < 20 {
					t.Errorf("field %s: message %q does not tell the customer what to do", m["field"], msg)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
	// Bad input changes nothing.
	if res := e.do("GET", "/connections", "acct-a", nil); len(res.json(t)["items"].([]any)) != 0 {
		t.Errorf("invalid creates stored something: %s", res.body)
	}
}

func TestCreateNormalises(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		in, wantURL, wantCloud string
	}{
		{"  contoso.crm.dynamics.com \n", "https://contoso.crm.dynamics.com", "public"},
		{"https://Contoso.CRM4.Dynamics.com/main.aspx?appid=123&pagetype=entitylist", "https://contoso.crm4.dynamics.com", "public"},
		{"https://agency.crm9.dynamics.com/", "https://agency.crm9.dynamics.com", "gcc"},
		{"https://agency.crm.microsoftdynamics.us", "https://agency.crm.microsoftdynamics.us", "gcc_high"},
		{"https://agency.crm.appsplatform.us", "https://agency.crm.appsplatform.us", "dod"},
		{"https://contoso.crm.dynamics.cn", "https://contoso.crm.dynamics.cn", "china"},
		{"https://contoso.api.crm.dynamics.com/api/data/v9.2/", "https://contoso.api.crm.dynamics.com", "public"},
	}
	for i, tt := range tests {
		body := with(validCreate(), "instance_url", tt.in, "client_id", fmt.Sprintf("{2222222%d-2222-2222-2222-22222222222A}", i),
			"tenant_id", "11111111-1111-1111-1111-11111111111F")
		res := e.do("POST", "/connections", "acct-a", body)
		if res.status != http.StatusCreated {
			t.Fatalf("%q: status %d: %s", tt.in, res.status, res.body)
		}
		got := res.json(t)
		if got["instance_url"] != tt.wantURL || got["cloud"] != tt.wantCloud {
			t.Errorf("%q: got %v %v, want %v %v", tt.in, got["instance_url"], got["cloud"], tt.wantURL, tt.wantCloud)
		}
		if want := fmt.Sprintf("2222222%d-2222-2222-2222-22222222222a", i); got["client_id"] != want {
			t.Errorf("client_id = %v, want canonical %v", got["client_id"], want)
		}
		if got["tenant_id"] != "11111111-1111-1111-1111-11111111111f" {
			t.Errorf("tenant_id = %v, want canonical lower case", got["tenant_id"])
		}
	}
}

func TestConnectionLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.do("POST", "/connections", "acct-a", with(validCreate(), "name", "  Production  "))
	if res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	created := res.json(t)
	id := created["id"].(string)
	if loc := res.header.Get("Location"); loc != "/connections/"+id {
		t.Errorf("Location = %q", loc)
	}
	if created["name"] != "Production" || created["status"] != "untested" || created["last_test"] != nil {
		t.Errorf("created = %v", created)
	}
	secret := created["client_secret"].(map[string]any)
	if secret["set"] != true || secret["expires_at"] != nil {
		t.Errorf("client_secret = %v", secret)
	}

	got := e.do("GET", "/connections/"+id, "acct-a", nil)
	if got.status != http.StatusOK {
		t.Fatalf("get: %d", got.status)
	}
	if diff := cmp.Diff(created, got.json(t)); diff != "" {
		t.Errorf("get differs from create (-create +get):\n%s", diff)
	}

	upd := e.do("PATCH", "/connections/"+id, "acct-a", map[string]any{"name": "Prod EU", "client_secret": "  new-secret-value~0123456789abcdef \n", "client_secret_expires_at": "2099-01-01T00:00:00Z"})
	if upd.status != http.StatusOK {
		t.Fatalf("patch: %d %s", upd.status, upd.body)
	}
	u := upd.json(t)
	us := u["client_secret"].(map[string]any)
	if u["name"] != "Prod EU" || us["expires_at"] != "2099-01-01T00:00:00Z" || us["updated_at"] == secret["updated_at"] {
		t.Errorf("after patch: %v", u)
	}
	c, err := e.st.Connection(context.Background(), "acct-a", uuid.MustParse(id))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := checker.Open(context.Background(), e.keys, c)
	if err != nil || plain.Reveal() != "new-secret-value~0123456789abcdef" {
		t.Errorf("stored secret after rotation: err=%v, trimmed=%t", err, plain.Reveal() == "new-secret-value~0123456789abcdef")
	}

	list := e.do("GET", "/connections?limit=10", "acct-a", nil).json(t)
	if items := list["items"].([]any); len(items) != 1 || list["next_cursor"] != nil {
		t.Errorf("list = %v", list)
	}

	if res := e.do("DELETE", "/connections/"+id, "acct-a", nil); res.status != http.StatusNoContent {
		t.Fatalf("delete: %d", res.status)
	}
	if res := e.do("GET", "/connections/"+id, "acct-a", nil); res.status != http.StatusNotFound {
		t.Errorf("get after delete: %d", res.status)
	}
}

func TestErrorStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.do("POST", "/connections", "acct-a", validCreate())
	id := first.json(t)["id"].(string)

	tests := []struct {
		name, method, path, account string
		body                        any
		headers                     []string
		want                        int
		wantType                    string
	}{
		{"no token", "GET", "/connections", "", nil, nil, 401, typeUnauthorized},
		{"garbage token", "GET", "/connections", "", nil, []string{"Authorization", "Bearer not.a.jwt"}, 401, typeUnauthorized},
		{"malformed JSON", "POST", "/connections", "acct-a", `{"instance_url": `, nil, 400, typeMalformed},
		{"JSON array", "POST", "/connections", "acct-a", `[1,2]`, nil, 400, typeMalformed},
		{"trailing data", "POST", "/connections", "acct-a", `{} {}`, nil, 400, typeMalformed},
		{"not JSON content type", "POST", "/connections", "acct-a", `instance_url=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, typeMediaType},
		{"body over 64 KiB", "POST", "/connections", "acct-a", `{"name":"` + strings.Repeat("a", 70<<10) + `"}`, nil, 413, typeTooLarge},
		{"duplicate", "POST", "/connections", "acct-a", with(validCreate(), "instance_url", "CONTOSO.crm.dynamics.com/main.aspx"), nil, 409, typeConflict},
		{"unknown id", "GET", "/connections/7d3f1b1e-8a0a-4f43-9c55-2b1f0e4c3a11", "acct-a", nil, nil, 404, typeNotFound},
		{"id not a uuid", "GET", "/connections/nope", "acct-a", nil, nil, 404, typeNotFound},
		{"sql in id", "GET", "/connections/'%20OR%20'1'='1", "acct-a", nil, nil, 404, typeNotFound},
		{"patch id not a uuid", "PATCH", "/connections/nope", "acct-a", map[string]any{"name": "x"}, nil, 404, typeNotFound},
		{"patch id not a uuid, invalid body", "PATCH", "/connections/nope", "acct-a", `{"clientSecret":"x"}`, nil, 422, typeValidation},
		{"delete id not a uuid", "DELETE", "/connections/nope", "acct-a", nil, nil, 404, typeNotFound},
		{"test id not a uuid", "POST", "/connections/nope/test", "acct-a", nil, nil, 404, typeNotFound},
		{"tests of id not a uuid", "GET", "/connections/nope/tests", "acct-a", nil, nil, 404, typeNotFound},
		{"events of id not a uuid", "GET", "/connections/nope/events", "acct-a", nil, nil, 404, typeNotFound},
		{"credentials test of connection_id not a uuid", "POST", "/connection-tests", "acct-a", map[string]any{"connection_id": "nope"}, nil, 404, typeNotFound},
		{"limit out of range", "GET", "/connections?limit=500", "acct-a", nil, nil, 422, typeValidation},
		{"bad cursor", "GET", "/connections?cursor=zzz", "acct-a", nil, nil, 400, typeInvalidCursor},
		{"patch unknown field", "PATCH", "/connections/" + id, "acct-a", `{"clientSecret":"x"}`, nil, 422, typeValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do(tt.method, tt.path, tt.account, tt.body, tt.headers...)
			if res.status != tt.want {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.want, res.body)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			p := res.json(t)
			if p["type"] != tt.wantType || p["status"] != float64(tt.want) || p["title"] == "" || p["request_id"] != res.header.Get("X-Request-Id") {
				t.Errorf("problem = %v", p)
			}
			if tt.want == 409 && p["existing_id"] != id {
				t.Errorf("409 existing_id = %v, want %v", p["existing_id"], id)
			}
		})
	}
	if n := len(e.do("GET", "/connections", "acct-a", nil).json(t)["items"].([]any)); n != 1 {
		t.Errorf("refused requests changed the store: %d connections", n)
	}
}

// TestPathIDForms: an id names its connection in any form a uuid takes
// (upper case, braces), and every response names it in canonical form.
func TestPathIDForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/connections", "acct-a", validCreate()).json(t)["id"].(string)
	for _, form := range []string{strings.ToUpper(id), "{" + id + "}"} {
		res := e.do("GET", "/connections/"+url.PathEscape(form), "acct-a", nil)
		if res.status != http.StatusOK || res.json(t)["id"] != id {
			t.Errorf("GET /connections/%s: %d %s", form, res.status, res.body)
		}
	}
	if res := e.do("GET", "/connections/"+strings.ToUpper(id)+"/events", "acct-a", nil); res.status != http.StatusOK {
		t.Errorf("events by upper-case id: %d %s", res.status, res.body)
	}
}

func TestOtherAccountsConnectionIsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/connections", "acct-a", validCreate()).json(t)["id"].(string)
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/connections/" + id, nil},
		{"PATCH", "/connections/" + id, map[string]any{"name": "stolen"}},
		{"DELETE", "/connections/" + id, nil},
	} {
		if res := e.do(req.method, req.path, "acct-b", req.body); res.status != http.StatusNotFound {
			t.Errorf("%s %s as another account: %d, want 404", req.method, req.path, res.status)
		}
	}
	if items := e.do("GET", "/connections", "acct-b", nil).json(t)["items"].([]any); len(items) != 0 {
		t.Errorf("another account lists %d connections", len(items))
	}
	if got := e.do("GET", "/connections/"+id, "acct-a", nil).json(t); got["name"] != "contoso" {
		t.Errorf("owner's connection changed: %v", got)
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := map[string]bool{}
	for i := range 7 {
		body := with(validCreate(), "client_id", fmt.Sprintf("22222222-2222-2222-2222-00000000000%d", i))
		want[e.do("POST", "/connections", "acct-a", body).json(t)["id"].(string)] = true
	}
	seen := map[string]bool{}
	path := "/connections?limit=3"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("too many pages")
		}
		page := e.do("GET", path, "acct-a", nil).json(t)
		for _, it := range page["items"].([]any) {
			id := it.(map[string]any)["id"].(string)
			if seen[id] {
				t.Errorf("%s listed twice", id)
			}
			seen[id] = true
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		path = "/connections?limit=3&cursor=" + next
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
}

func TestSwappedCiphertextFailsToOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.do("POST", "/connections", "acct-a", validCreate()).json(t)["id"].(string)
	b := e.do("POST", "/connections", "acct-a", with(validCreate(), "client_id", "33333333-2222-2222-2222-222222222222")).json(t)["id"].(string)
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `UPDATE connections SET secret_ciphertext = CASE id WHEN $1 THEN (SELECT secret_ciphertext FROM connections WHERE id = $2) ELSE (SELECT secret_ciphertext FROM connections WHERE id = $1) END,
		secret_wrapped_dek = CASE id WHEN $1 THEN (SELECT secret_wrapped_dek FROM connections WHERE id = $2) ELSE (SELECT secret_wrapped_dek FROM connections WHERE id = $1) END WHERE id IN ($1, $2)`, a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a, b} {
		c, err := e.st.Connection(ctx, "acct-a", uuid.MustParse(id))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := checker.Open(ctx, e.keys, c); !errors.Is(err, crypto.ErrUnwrap) && !errors.Is(err, crypto.ErrDecrypt) {
			t.Errorf("swapped secret of %s opened or failed oddly: %v", id, err)
		}
	}
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if res := e.do("GET", "/readyz", "", nil); res.status != http.StatusOK {
		t.Fatalf("readyz = %d %s", res.status, res.body)
	}
	if res := e.do("GET", "/healthz", "", nil); res.status != http.StatusOK {
		t.Fatalf("healthz = %d", res.status)
	}
	e.do("POST", "/connections", "acct-a", validCreate())

	// The same database served by a process that lacks key k1.
	other, err := crypto.ParseKeyring(mustKey(t, "k2"), "")
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEnvWith(t, e.pool, other)
	res := e2.do("GET", "/readyz", "", nil)
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without k1 = %d, want 503", res.status)
	}
	if !strings.Contains(string(res.body), `"encryption_keys"`) || !strings.Contains(string(res.body), "k1") {
		t.Errorf("503 body does not name the missing key k1: %s", res.body)
	}

	// Once no secret uses k1 (this one is deleted), a server without k1 is
	// ready again, even before anything forgets k1's id.
	id := e.do("GET", "/connections", "acct-a", nil).json(t)["items"].([]any)[0].(map[string]any)["id"].(string)
	e.do("DELETE", "/connections/"+id, "acct-a", nil)
	if res := e2.do("GET", "/readyz", "", nil); res.status != http.StatusOK {
		t.Errorf("readyz without k1 after its last secret went = %d %s", res.status, res.body)
	}
}

// TestReadinessNeedsRiversSchema: a database whose job queue schema is
// behind this binary's is not ready.
func TestReadinessNeedsRiversSchema(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.pool.Exec(context.Background(), `DELETE FROM river_migration WHERE version = (SELECT max(version) FROM river_migration)`); err != nil {
		t.Fatal(err)
	}
	res := e.do("GET", "/readyz", "", nil)
	if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), "River") {
		t.Errorf("readyz with River's schema behind = %d %s", res.status, res.body)
	}
}

// TestEveryRouteIsInTheSpec keeps openapi.yaml and the router in step.
func TestEveryRouteIsInTheSpec(t *testing.T) {
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(dynconn.OpenAPI, &spec); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	addRoutes(r, nil, nil, nil, nil, nil, Options{})
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if _, ok := spec.Paths[route][strings.ToLower(method)]; !ok {
			t.Errorf("%s %s is served but not in openapi.yaml", method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
