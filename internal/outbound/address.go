package outbound

import (
	"fmt"
	"net/netip"
)

// blockedPrefixes are address ranges that are never a public server's but
// could reach our own network: private, shared (CGNAT), link-local (with
// cloud metadata at 169.254.169.254 and fd00:ec2::254), reserved blocks,
// multicast and broadcast.
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

// CheckAddr reports whether dynconn may connect to addr: nil for a public
// address, a *RefusedError otherwise. allowLoopback admits loopback
// addresses and nothing else; the dialer passes it only for loopback
// literals, never for names. Validators use it to refuse an IP-literal URL
// before it is stored.
func CheckAddr(addr netip.Addr, allowLoopback bool) error {
	addr = addr.Unmap()
	if addr.Is6() && nat64.Contains(addr) {
		b := addr.As16()
		embedded := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if err := CheckAddr(embedded, false); err != nil {
			return err
		}
	}
	if allowLoopback && addr.IsLoopback() {
		return nil
	}
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsLoopback() || addr.IsPrivate() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() ||
		addr.IsMulticast() || !addr.IsGlobalUnicast() {
		return &RefusedError{fmt.Sprintf("address %s is not public", addr)}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(addr) {
			return &RefusedError{fmt.Sprintf("address %s is in reserved range %s", addr, p)}
		}
	}
	return nil
}
