package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestModalFiles(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/modal/", "text/html; charset=utf-8", "<dynconn-connect"},
		{"/modal/dynconn-connect.js", "text/javascript; charset=utf-8", `customElements.define("dynconn-connect"`},
		{"/modal/guide.html", "text/html; charset=utf-8", `id="client_secret"`},
		{"/modal/demo.css", "text/css; charset=utf-8", ".modal"},
	} {
		res := e.do("GET", tc.path, "", nil) // no token: static files need none
		if res.status != http.StatusOK || res.header.Get("Content-Type") != tc.contentType || !strings.Contains(string(res.body), tc.contains) {
			t.Errorf("GET %s = %d %q, body has %q: %v", tc.path, res.status, res.header.Get("Content-Type"), tc.contains, strings.Contains(string(res.body), tc.contains))
		}
		if got := res.header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (revalidate with the ETag)", tc.path, got)
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no X-Content-Type-Options: nosniff", tc.path)
		}
		etag := res.header.Get("ETag")
		if again := e.do("GET", tc.path, "", nil, "If-None-Match", etag); etag == "" || again.status != http.StatusNotModified || len(again.body) != 0 {
			t.Errorf("GET %s with If-None-Match %s = %d, want 304 without a body", tc.path, etag, again.status)
		}
	}
	if csp := e.do("GET", "/modal/", "", nil).header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("demo page CSP = %q", csp)
	}
	if res := e.do("GET", "/modal/secret.txt", "", nil); res.status != http.StatusNotFound || res.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown file = %d %s", res.status, res.header.Get("Content-Type"))
	}
}

// TestAPIResponsesAreNotStored covers answers that are not problems: those
// set no-store themselves.
func TestAPIResponsesAreNotStored(t *testing.T) {
	e := newEnv(t)
	created := e.do("POST", "/connections", "acct-a", validCreate())
	for _, res := range []response{
		created,
		e.do("GET", "/connections/"+created.json(t)["id"].(string), "acct-a", nil),
		e.do("GET", "/connections", "acct-a", nil),
	} {
		if res.status >= 300 || res.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%d with Cache-Control %q, want no-store", res.status, res.header.Get("Cache-Control"))
		}
	}
}
