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

// URLError says why a URL was refused: a stable Code (the API's field error
// code) and a Message in words for the person who typed it.
type URLError struct{ Code, Message string }

func (e *URLError) Error() string { return e.Message }

// errNotPublic refuses an address of our own network, by literal or by name.
var errNotPublic = &URLError{"not_public",
	"Use a public address: loopback, private, link-local and reserved addresses (and localhost) cannot receive webhooks."}

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
		return &URLError{"too_long", fmt.Sprintf("Use a URL of at most %d characters.", MaxURLLength)}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Hostname() == "" {
		return &URLError{"invalid_url", "Enter a full URL such as https://example.com/webhooks."}
	}
	if u.User != nil {
		return &URLError{"has_userinfo", "Remove the user name and password from the URL; authenticate by verifying the webhook-signature header instead."}
	}
	host := strings.ToLower(u.Hostname())
	if addr, err := netip.ParseAddr(host); err == nil {
		if err := outbound.CheckAddr(addr, allowLoopback); err != nil {
			return errNotPublic
		}
		if allowLoopback && addr.Unmap().IsLoopback() {
			if u.Scheme != "http" && u.Scheme != "https" {
				return &URLError{"not_https", "Use an http or https URL."}
			}
			return nil
		}
	} else if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return errNotPublic
	} else if !strings.Contains(strings.TrimSuffix(host, "."), ".") {
		return &URLError{"not_public", "Use a public host name such as hooks.example.com, not a local name."}
	}
	if u.Scheme != "https" {
		return &URLError{"not_https", "Use an https URL: webhooks are sent only over TLS."}
	}
	if p := u.Port(); p != "" && p != "443" {
		return &URLError{"has_port", "Use the default https port (443): leave the port out."}
	}
	return nil
}
