package outbound

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxRedirects bounds SameHostRedirects.
const maxRedirects = 3

// SameHostRedirects is an http.Client CheckRedirect that follows at most
// three redirects, and only on the same scheme, host and port.
func SameHostRedirects(req *http.Request, via []*http.Request) error {
	prev := via[len(via)-1].URL
	if len(via) >= maxRedirects {
		return &RefusedError{"too many redirects"}
	}
	if req.URL.Scheme != prev.Scheme || CanonicalHostPort(req.URL) != CanonicalHostPort(prev) {
		return &RefusedError{fmt.Sprintf("redirect from %s to another host (%s)", prev.Host, req.URL.Host)}
	}
	return nil
}

// NoRedirects is an http.Client CheckRedirect that follows none: the client
// returns the 3xx answer itself, for the caller to treat as a failure.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// CanonicalHostPort is u's lower-case host:port with the scheme's default
// port filled in, so two spellings of one destination compare equal.
func CanonicalHostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
