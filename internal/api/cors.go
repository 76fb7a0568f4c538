package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/cors"
)

// allowOrigins lets pages of the given origins call the API from a browser
// (an app that embeds <dynconn-connect>). Callers authenticate with bearer
// tokens only, so credentials (cookies) are never allowed. With no origins it
// adds nothing: go-chi/cors would read an empty list as "every origin".
func allowOrigins(origins []string) func(http.Handler) http.Handler {
	if len(origins) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	return cors.Handler(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Accept", "Idempotency-Key", "If-Match", "X-Request-Id"},
		// What the modal reads: the version for If-Match, the new connection,
		// how long to wait after a 429 or 503, and the id to quote to support.
		ExposedHeaders:   []string{"ETag", "Location", "Retry-After", "X-Request-Id"},
		AllowCredentials: false,
		MaxAge:           600, // seconds a browser may reuse a preflight answer
	})
}

// ParseOrigins reads a comma-separated list of exact origins
// (scheme://host[:port], as a browser sends them in Origin), such as
// CORS_ALLOWED_ORIGINS. Wildcards, paths and trailing slashes are refused
// rather than silently never matching.
func ParseOrigins(s string) ([]string, error) {
	var origins []string
	for _, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		// An origin is exactly scheme://host[:port]: anything more (a path, a
		// slash, user info) makes the rebuilt string differ.
		o := strings.ToLower(raw)
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Contains(o, "*") || o != u.Scheme+"://"+u.Host {
			return nil, fmt.Errorf("%q is not an origin: write scheme://host[:port], such as https://app.example.com, without a path, a trailing slash or a wildcard", raw)
		}
		origins = append(origins, o)
	}
	return origins, nil
}
