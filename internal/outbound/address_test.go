package outbound

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", // loopback, also IPv4-mapped
		"10.0.0.1", "172.16.5.4", "192.168.1.20", "::ffff:10.0.0.1", "fd12:3456::1", // private
		"169.254.169.254", "fd00:ec2::254", "fe80::1", // link-local, metadata
		"100.64.0.1", "100.127.255.254", // CGNAT
		"0.0.0.0", "::", "0.1.2.3", // unspecified, "this network"
		"224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255", // multicast, broadcast
		"64:ff9b::a00:1", "64:ff9b::7f00:1", // NAT64 of 10.0.0.1, 127.0.0.1
		"2002:a00:1::1", "2001:0:4136:e378::1", // 6to4, Teredo
		"192.0.2.10", "203.0.113.7", "2001:db8::1", // documentation
	}
	for _, s := range refused {
		var re *RefusedError
		if err := CheckAddr(netip.MustParseAddr(s), false); !errors.As(err, &re) {
			t.Errorf("CheckAddr(%s) = %v, want refused", s, err)
		}
	}
	for _, s := range []string{"20.190.160.1", "52.96.0.1", "2603:1006::1", "64:ff9b::1414:a001"} {
		if err := CheckAddr(netip.MustParseAddr(s), false); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want allowed", s, err)
		}
	}
	// Loopback mode adds loopback, and nothing else.
	for _, s := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1"} {
		if err := CheckAddr(netip.MustParseAddr(s), true); err != nil {
			t.Errorf("CheckAddr(%s, loopback) = %v, want allowed", s, err)
		}
	}
	for _, s := range []string{"10.0.0.1", "169.254.169.254", "fd00:ec2::254", "64:ff9b::7f00:1"} {
		if err := CheckAddr(netip.MustParseAddr(s), true); err == nil {
			t.Errorf("CheckAddr(%s, loopback) allowed it", s)
		}
	}
}
