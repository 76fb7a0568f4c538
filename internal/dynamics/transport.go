package dynamics

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxBody caps every response body read from Microsoft: its real answers are
// a few KiB, and an instance URL is customer input we must not let exhaust us.
const maxBody = 1 << 20

// refusedError is a destination dynconn will not talk to. It is returned
// before any byte is sent there.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return "destination not allowed: " + e.reason }

// errBodyTooLarge reports a response body over maxBody.
var errBodyTooLarge = errors.New("response body over 1 MiB")

// blockedPrefixes are address ranges that are never Microsoft's public
// endpoints but could reach our own network: private, shared (CGNAT),
// link-local (with cloud metadata at 169.254.169.254 and fd00:ec2::254),
// documentation-free reserved blocks, multicast and broadcast.
var blockedPrefixes = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // shared address space (CGNAT)
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation (TEST-NET-1)
		"198.51.100.0/24", // documentation (TEST-NET-2)
		"203.0.113.0/24",  // documentation (TEST-NET-3)
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"::/96",           // IPv4-compatible (deprecated)
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard
		"fc00::/7",        // unique local, includes fd00:ec2::254 (AWS metadata)
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local (deprecated)
		"ff00::/8",        // multicast
		"2001:db8::/32",   // documentation
		"2001:10::/28",    // ORCHID
		"2001::/32",       // Teredo: embeds an arbitrary IPv4 address
		"2002::/16",       // 6to4: embeds an arbitrary IPv4 address
		"::ffff:0:0/96",   // IPv4-mapped: unmapped before checking
		"::ffff:0:0:0/96", // IPv4-translated
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// addrAllowed reports whether dynconn may connect to addr. Loopback is
// allowed only in loopback mode, and only when the URL named the loopback
// address itself (literal), never through a host name.
func addrAllowed(addr netip.Addr, allowLoopback bool) error {
	addr = addr.Unmap()
	if addr.Is6() && nat64.Contains(addr) {
		b := addr.As16()
		embedded := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if err := addrAllowed(embedded, false); err != nil {
			return err
		}
	}
	if allowLoopback && addr.IsLoopback() {
		return nil
	}
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsLoopback() || addr.IsPrivate() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() ||
		addr.IsMulticast() || !addr.IsGlobalUnicast() {
		return &refusedError{fmt.Sprintf("address %s is not public", addr)}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(addr) {
			return &refusedError{fmt.Sprintf("address %s is in reserved range %s", addr, p)}
		}
	}
	return nil
}

// safeDialer resolves host names itself and checks every address before it
// dials, so a DNS answer (or a DNS rebinding) cannot lead us into our own
// network. The dialer's Control hook checks the address again at the socket.
type safeDialer struct {
	allowLoopback bool
	lookup        func(ctx context.Context, host string) ([]netip.Addr, error)
	// dial makes the connection once the address is approved; tests replace
	// it to reach a simulator that stands in for a public address.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
}

func newSafeDialer(opts Options) *safeDialer {
	d := &safeDialer{allowLoopback: opts.AllowLoopback, lookup: opts.Lookup, dial: opts.dial}
	if d.lookup == nil {
		d.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if d.dial == nil {
		nd := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: d.control}
		d.dial = nd.DialContext
	}
	return d
}

// control is net.Dialer's last-moment check of the address actually dialled.
func (d *safeDialer) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &refusedError{fmt.Sprintf("unparsable address %q", address)}
	}
	if err := addrAllowed(ap.Addr(), d.allowLoopback); err != nil {
		return err
	}
	if ap.Port() != 443 && !(d.allowLoopback && ap.Addr().Unmap().IsLoopback()) {
		return &refusedError{fmt.Sprintf("port %d is not 443", ap.Port())}
	}
	return nil
}

// DialContext resolves address, refuses it unless every answer is allowed,
// and connects to the first one that answers.
func (d *safeDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	var addrs []netip.Addr
	literal := false
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs, literal = []netip.Addr{a}, true
	} else {
		addrs, err = d.lookup(ctx, host)
		if err != nil {
			return nil, err // *net.DNSError tells "not found" from a failing resolver
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	if port != "443" && !(literal && d.allowLoopback && addrs[0].Unmap().IsLoopback()) {
		return nil, &refusedError{fmt.Sprintf("port %s is not 443", port)}
	}
	// Refuse the whole name when any answer is bad: a name that resolves to
	// both a public and a private address is an attack, not a misconfiguration.
	for _, a := range addrs {
		if err := addrAllowed(a, d.allowLoopback && literal); err != nil {
			return nil, fmt.Errorf("%s: %w", host, err)
		}
	}
	var firstErr error
	for _, a := range addrs {
		conn, err := d.dial(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// newTransport builds the one http.Transport a Client shares between tests,
// so connections to Microsoft are reused.
func newTransport(opts Options) *http.Transport {
	d := newSafeDialer(opts)
	return &http.Transport{
		Proxy:             nil, // a proxy would dial for us and bypass the address checks
		DialContext:       d.DialContext,
		ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    opts.rootCAs,
		},
		TLSHandshakeTimeout:    10 * time.Second,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// destination is a scheme and host:port a test may send requests to.
type destination struct{ scheme, hostport string }

// exchange is the record of one test's traffic: the destinations allowed so
// far and what the latest response looked like. The oauth2 package reports
// errors with %v, so the record is how we still learn that a body was too big.
type exchange struct {
	mu       sync.Mutex
	allowed  []destination
	overflow bool
	requests int
	// lastStatus is the status of the latest response, so an answer the
	// oauth2 package could not parse is told apart from no answer at all.
	lastStatus int
}

// takeStatus returns lastStatus and clears it for the next step.
func (x *exchange) takeStatus() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.lastStatus
	x.lastStatus = 0
	return s
}

func (x *exchange) allow(u *url.URL) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.allowed = append(x.allowed, destination{u.Scheme, canonicalHostPort(u)})
}

func (x *exchange) isAllowed(u *url.URL) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	d := destination{u.Scheme, canonicalHostPort(u)}
	for _, a := range x.allowed {
		if a == d {
			return true
		}
	}
	return false
}

func (x *exchange) sawOverflow() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.overflow
}

// canonicalHostPort is host:port with the scheme's default port filled in.
func canonicalHostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// guard is the per-test RoundTripper: it lets a request through only to a
// destination the test has approved (the instance, then the authority), and
// caps the response body.
type guard struct {
	base http.RoundTripper
	x    *exchange
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if !g.x.isAllowed(req.URL) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &refusedError{fmt.Sprintf("%s://%s is not the instance or its sign-in service", req.URL.Scheme, req.URL.Host)}
	}
	g.x.mu.Lock()
	g.x.requests++
	g.x.mu.Unlock()
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	g.x.mu.Lock()
	g.x.lastStatus = resp.StatusCode
	g.x.mu.Unlock()
	resp.Body = &cappedBody{rc: resp.Body, left: maxBody, x: g.x}
	return resp, nil
}

// httpClient returns the http.Client one test uses: the shared transport
// behind the guard, and no redirect to another host.
func (x *exchange) httpClient(base http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: &guard{base: base, x: x},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			prev := via[len(via)-1].URL
			if len(via) >= 3 {
				return &refusedError{"too many redirects"}
			}
			if req.URL.Scheme != prev.Scheme || canonicalHostPort(req.URL) != canonicalHostPort(prev) {
				return &refusedError{fmt.Sprintf("redirect from %s to another host (%s)", prev.Host, req.URL.Host)}
			}
			return nil
		},
	}
}

// cappedBody fails a read once the body is known to exceed maxBody. It
// looks one byte ahead at the limit, so a reader that itself stops at 1 MiB
// (as oauth2 does) still sees the error instead of a silently cut body.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
	x    *exchange
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, b.tooLarge()
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left == 0 && err == nil {
		var one [1]byte
		m, perr := io.ReadFull(b.rc, one[:])
		if m > 0 {
			return n, b.tooLarge()
		}
		if perr != nil && !errors.Is(perr, io.EOF) && !errors.Is(perr, io.ErrUnexpectedEOF) {
			return n, perr
		}
		return n, io.EOF
	}
	return n, err
}

func (b *cappedBody) tooLarge() error {
	b.x.mu.Lock()
	b.x.overflow = true
	b.x.mu.Unlock()
	return errBodyTooLarge
}

func (b *cappedBody) Close() error { return b.rc.Close() }
