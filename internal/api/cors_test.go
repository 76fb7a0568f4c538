package api

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const allowedOrigin = "https://app.example.com"

// preflight sends what a browser sends before a cross-origin request.
func preflight(t *testing.T, e *testEnv, origin, method, path, headers string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", method)
	req.Header.Set("Access-Control-Request-Headers", headers)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

func listOf(h string) []string {
	var out []string
	for _, v := range strings.Split(h, ",") {
		out = append(out, strings.ToLower(strings.TrimSpace(v)))
	}
	return out
}

func TestCORS(t *testing.T) {
	e := newEnv(t, func(o *envConfig) { o.CORSAllowedOrigins = []string{allowedOrigin} })

	t.Run("preflight from an allowed origin is answered", func(t *testing.T) {
		res := preflight(t, e, allowedOrigin, "PATCH", "/connections/x", "authorization,content-type,if-match,idempotency-key")
		if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
			t.Fatalf("preflight = %d, Allow-Origin %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
		}
		if got := res.Header.Get("Access-Control-Allow-Methods"); got != "PATCH" {
			t.Errorf("Allow-Methods = %q", got)
		}
		if diff := cmp.Diff([]string{"authorization", "content-type", "if-match", "idempotency-key"}, listOf(res.Header.Get("Access-Control-Allow-Headers"))); diff != "" {
			t.Errorf("Allow-Headers (-want +got):\n%s", diff)
		}
		if got := res.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("Allow-Credentials = %q: bearer tokens only, never cookies", got)
		}
	})
	t.Run("preflight from another origin gets no permission", func(t *testing.T) {
		for _, origin := range []string{"https://evil.example.com", "https://app.example.com.evil.example", "http://app.example.com"} {
			res := preflight(t, e, origin, "POST", "/connections", "authorization,content-type")
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("preflight from %s: Allow-Origin %q", origin, got)
			}
		}
	})
	t.Run("a request that is not allowed gets no permission", func(t *testing.T) {
		res := preflight(t, e, allowedOrigin, "PUT", "/connections", "authorization")
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("PUT preflight: Allow-Origin %q", got)
		}
		res = preflight(t, e, allowedOrigin, "POST", "/connections", "authorization,cookie")
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight with a Cookie header: Allow-Origin %q", got)
		}
	})
	t.Run("an allowed origin may read the modal's headers", func(t *testing.T) {
		res := e.do("POST", "/connections", "acct-a", validCreate(), "Origin", allowedOrigin)
		if res.status != http.StatusCreated || res.header.Get("Access-Control-Allow-Origin") != allowedOrigin {
			t.Fatalf("create = %d, Allow-Origin %q", res.status, res.header.Get("Access-Control-Allow-Origin"))
		}
		exposed := listOf(res.header.Get("Access-Control-Expose-Headers"))
		for _, h := range []string{"etag", "location", "retry-after"} {
			if !slices.Contains(exposed, h) {
				t.Errorf("Expose-Headers %v lacks %s", exposed, h)
			}
		}
		if other := e.do("GET", "/connections", "acct-a", nil, "Origin", "https://evil.example.com"); other.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("another origin got Allow-Origin %q", other.header.Get("Access-Control-Allow-Origin"))
		}
	})
}

func TestCORSOffByDefault(t *testing.T) {
	e := newEnv(t)
	res := preflight(t, e, allowedOrigin, "POST", "/connections", "authorization,content-type")
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("without CORS_ALLOWED_ORIGINS a preflight got Allow-Origin %q", got)
	}
	if got := e.do("GET", "/connections", "acct-a", nil, "Origin", allowedOrigin).header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("without CORS_ALLOWED_ORIGINS a request got Allow-Origin %q", got)
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins(" https://App.example.com, http://localhost:3000 ,,")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"https://app.example.com", "http://localhost:3000"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got, err := ParseOrigins(""); err != nil || got != nil {
		t.Errorf(`ParseOrigins("") = %v, %v; want none`, got, err)
	}
	for _, bad := range []string{"*", "https://*.example.com", "https://app.example.com/", "https://app.example.com/path",
		"app.example.com", "ftp://app.example.com", "https://user@app.example.com", "https://app.example.com?x", "null"} {
		if _, err := ParseOrigins("https://ok.example.com," + bad); err == nil || !strings.Contains(err.Error(), "not an origin") {
			t.Errorf("ParseOrigins(%q) = %v, want an error", bad, err)
		}
	}
}
