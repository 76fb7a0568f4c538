package dynamics

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/outbound"
	"github.com/dynconn/dynconn/internal/secret"
)

// Defaults for Options.
const (
	DefaultStepTimeout  = 10 * time.Second
	DefaultDeadline     = 25 * time.Second
	DefaultDiscoveryTTL = time.Hour
)

// Options configures a Client. The zero value is the production setting.
type Options struct {
	// AllowLoopback (DYNAMICS_ALLOW_LOOPBACK) also accepts http(s) loopback
	// literals (127.0.0.1:PORT, [::1]:PORT) as instance and authority, so a
	// local simulator can stand in for Microsoft. For development and tests.
	AllowLoopback bool
	// StepTimeout bounds each check's request (default 10s).
	StepTimeout time.Duration
	// Deadline bounds a whole Test (default 25s).
	Deadline time.Duration
	// DiscoveryTTL is how long a tenant discovered for an instance is reused
	// (default one hour); a negative value turns the cache off.
	DiscoveryTTL time.Duration
	// Logger receives one line per test (default: slog.Default()).
	Logger *slog.Logger
	// Lookup resolves a host name (default: net.DefaultResolver.LookupNetIP).
	// Tests use it to make a name resolve to a forbidden address.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Now is the clock of the discovery cache and TestedAt (default time.Now).
	Now func() time.Time

	// dial and rootCAs let in-package tests put a TLS simulator behind a
	// public host name; the address checks still run before dial.
	dial    func(ctx context.Context, network, address string) (net.Conn, error)
	rootCAs *x509.CertPool
}

// outbound is the guard's share of opts.
func (o Options) outbound() outbound.Options {
	return outbound.Options{AllowLoopback: o.AllowLoopback, Lookup: o.Lookup, Dial: o.dial, RootCAs: o.rootCAs}
}

// Client tests Dynamics 365 credentials against Microsoft. It is safe for
// concurrent use; create one per process so connections are reused.
type Client struct {
	opts      Options
	logger    *slog.Logger
	transport *http.Transport
	cache     *discoveryCache
}

// NewClient returns a Client with opts' zero fields set to their defaults.
func NewClient(opts Options) *Client {
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = DefaultStepTimeout
	}
	if opts.Deadline <= 0 {
		opts.Deadline = DefaultDeadline
	}
	if opts.DiscoveryTTL == 0 {
		opts.DiscoveryTTL = DefaultDiscoveryTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Client{
		opts:      opts,
		logger:    logger,
		transport: outbound.NewTransport(opts.outbound()),
		cache:     newDiscoveryCache(opts.DiscoveryTTL, 4096, opts.Now),
	}
}

// CloseIdleConnections closes the connections kept open to Microsoft, for a
// clean shutdown and for tests that check for leaked goroutines.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// Credentials are what a test signs in with: what a customer pasted into the
// modal, with a client secret or a certificate that dynconn made.
type Credentials struct {
	// InstanceURL is the Resource URL, raw or normalised.
	InstanceURL string
	// ClientID is the app registration's Application (client) ID.
	ClientID string
	// TenantID is optional; "" means discover it from the instance.
	TenantID string
	// ClientSecret is the secret's Value, unless Certificate is set.
	ClientSecret secret.Bytes
	// Certificate, when set, signs a client assertion that the token
	// request sends instead of a secret.
	Certificate *Certificate
}

// Certificate is a certificate credential as a test uses it.
type Certificate struct {
	// Signer signs client assertions with the certificate's private key.
	Signer *credential.Signer
	// Thumbprint is the certificate's SHA-1 thumbprint as the Azure portal
	// shows it, for diagnoses the customer compares with the portal.
	Thumbprint string
	// NotAfter is when the certificate expires: from then on the token
	// check fails with certificate_expired without asking Microsoft.
	NotAfter time.Time
}

// Clear clears the client secret and destroys the certificate's signer:
// call it when the credentials are no longer needed.
func (cr Credentials) Clear() {
	cr.ClientSecret.Clear()
	if cr.Certificate != nil {
		cr.Certificate.Signer.Destroy()
	}
}

// discoveryCache remembers, per instance, the authority its challenge named.
// It holds no secret, and only successful, approved discoveries.
type discoveryCache struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	now func() time.Time
	m   map[string]cacheEntry
}

type cacheEntry struct {
	auth    authority
	expires time.Time
}

func newDiscoveryCache(ttl time.Duration, max int, now func() time.Time) *discoveryCache {
	return &discoveryCache{ttl: ttl, max: max, now: now, m: make(map[string]cacheEntry)}
}

func (d *discoveryCache) get(key string) (authority, bool) {
	if d.ttl < 0 {
		return authority{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[key]
	if !ok {
		return authority{}, false
	}
	if !d.now().Before(e.expires) {
		delete(d.m, key)
		return authority{}, false
	}
	return e.auth, true
}

func (d *discoveryCache) put(key string, a authority) {
	if d.ttl < 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if len(d.m) >= d.max {
		for k, e := range d.m {
			if !now.Before(e.expires) {
				delete(d.m, k)
			}
		}
		// Still full: forget an arbitrary entry. Rediscovery costs one request.
		for k := range d.m {
			if len(d.m) < d.max {
				break
			}
			delete(d.m, k)
		}
	}
	d.m[key] = cacheEntry{auth: a, expires: now.Add(d.ttl)}
}
