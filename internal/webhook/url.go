package webhook

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/dynconn/dynconn/internal/outbound"
)

// MaxURLLength bounds an endpoint URL, as browsers and most proxies do.
const MaxURLLength = 2048

// URLError says, in words for the person who typed the URL, why it was refused.
type URLError struct{ Message string }

func (e *URLError) Error() string { return e.Message }

// CheckURL reports whether raw may be a webhook endpoint: https to port 443
// of a host name (or public IP address), without user info. allowLoopback
// (WEBHOOK_ALLOW_LOOPBACK) also admits http or https to a loopback literal
// on any port, such as http://127.0.0.1:9000/hook. It returns a *URLError.
//
// This is the check at the door, so the customer hears at once what is
// wrong; the dial-time guard of package outbound still checks every address
// a host name resolves to, at every attempt.
func CheckURL(raw string, allowLoopback bool) error {
	if len(raw) > MaxURLLength {
		return &URLError{fmt.Sprintf("must be at most %d characters", MaxURLLength)}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Hostname() == "" {
		return &URLError{"must be an absolute URL such as https://example.com/webhooks"}
	}
	if u.User != nil {
		return &URLError{"must not contain a user name or password"}
	}
	host := strings.ToLower(u.Hostname())
	if addr, err := netip.ParseAddr(host); err == nil {
		if err := outbound.CheckAddr(addr, allowLoopback); err != nil {
			return &URLError{"must not point to a loopback, private, link-local or reserved address"}
		}
		if allowLoopback && addr.Unmap().IsLoopback() {
			if u.Scheme != "http" && u.Scheme != "https" {
				return &URLError{"must be an http or https URL"}
			}
			return nil
		}
	} else if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return &URLError{"must not point to a loopback, private, link-local or reserved address"}
	} else if !strings.Contains(strings.TrimSuffix(host, "."), ".") {
		return &URLError{"must name a public host (a fully qualified domain name)"}
	}
	if u.Scheme != "https" {
		return &URLError{"must use https"}
	}
	if p := u.Port(); p != "" && p != "443" {
		return &URLError{"must use port 443"}
	}
	return nil
}
