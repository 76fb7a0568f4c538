// Package outbound is the one way dynconn calls other people's servers:
// Microsoft's endpoints for connection tests, and customers' webhook
// endpoints. Its transport resolves names itself and refuses loopback,
// private, link-local and metadata addresses at dial time (so DNS tricks do
// not get around it), speaks only to port 443 (or, in loopback mode, to a
// loopback literal on any port), never goes through a proxy, and has short
// handshake timeouts. Callers add their own redirect rule (SameHostRedirects
// or NoRedirects), per-request deadlines and CapBody.
package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Options configures the guard. The zero value is the production setting.
type Options struct {
	// AllowLoopback also accepts loopback literals (127.0.0.1:PORT,
	// [::1]:PORT) on any port, so a local simulator or receiver can stand in
	// for a public server. Loopback reached through a host name stays
	// refused. For development and tests only.
	AllowLoopback bool
	// Lookup resolves a host name (default: net.DefaultResolver.LookupNetIP).
	// Tests use it to make a name resolve to a forbidden address.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Dial makes the connection once the address is approved (default: a
	// net.Dialer that checks the address again at the socket). Tests replace
	// it to reach a local server that stands in for a public address.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// RootCAs are the trusted roots (default: the system's); tests add a
	// local TLS server's.
	RootCAs *x509.CertPool
}

// RefusedError is a destination dynconn will not talk to. It is returned
// before any byte is sent there.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "destination not allowed: " + e.Reason }

// NewTransport returns the guarded transport. Share one per purpose and
// process, so connections are reused.
func NewTransport(opts Options) *http.Transport {
	d := newSafeDialer(opts)
	return &http.Transport{
		Proxy:             nil, // a proxy would dial for us and bypass the address checks
		DialContext:       d.DialContext,
		ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    opts.RootCAs,
		},
		TLSHandshakeTimeout:    10 * time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}
