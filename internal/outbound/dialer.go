package outbound

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// safeDialer resolves host names itself and checks every address before it
// dials, so a DNS answer (or a DNS rebinding) cannot lead us into our own
// network. The dialer's Control hook checks the address again at the socket.
type safeDialer struct {
	allowLoopback bool
	lookup        func(ctx context.Context, host string) ([]netip.Addr, error)
	dial          func(ctx context.Context, network, address string) (net.Conn, error)
}

func newSafeDialer(opts Options) *safeDialer {
	d := &safeDialer{allowLoopback: opts.AllowLoopback, lookup: opts.Lookup, dial: opts.Dial}
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
		return &RefusedError{fmt.Sprintf("unparsable address %q", address)}
	}
	if err := CheckAddr(ap.Addr(), d.allowLoopback); err != nil {
		return err
	}
	if ap.Port() != 443 && !(d.allowLoopback && ap.Addr().Unmap().IsLoopback()) {
		return &RefusedError{fmt.Sprintf("port %d is not 443", ap.Port())}
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
		return nil, &RefusedError{fmt.Sprintf("port %s is not 443", port)}
	}
	// Refuse the whole name when any answer is bad: a name that resolves to
	// both a public and a private address is an attack, not a misconfiguration.
	for _, a := range addrs {
		if err := CheckAddr(a, d.allowLoopback && literal); err != nil {
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
