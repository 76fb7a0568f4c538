package outbound

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
)

// TestDialControl checks the last-moment check on the socket address, which
// runs even when a name was resolved by someone else (the Go resolver, a proxy).
func TestDialControl(t *testing.T) {
	off := &safeDialer{}
	on := &safeDialer{allowLoopback: true}
	tests := []struct {
		d       *safeDialer
		address string
		ok      bool
	}{
		{off, "20.190.160.1:443", true},
		{off, "[2603:1006::1]:443", true},
		{off, "20.190.160.1:80", false},
		{off, "127.0.0.1:443", false},
		{off, "169.254.169.254:443", false},
		{off, "[::ffff:10.0.0.1]:443", false},
		{on, "127.0.0.1:8443", true},
		{on, "[::1]:8443", true},
		{on, "10.0.0.1:443", false},
		{on, "20.190.160.1:8443", false},
	}
	for _, tt := range tests {
		err := tt.d.control("tcp", tt.address, nil)
		if tt.ok != (err == nil) {
			t.Errorf("control(%s, loopback=%v) = %v, want ok %v", tt.address, tt.d.allowLoopback, err, tt.ok)
		}
	}
}

// TestTransport sends real requests through the guarded transport: a
// loopback server is reachable only in loopback mode and only by its
// literal, names resolving to forbidden addresses and ports other than 443
// are refused before anything is dialled.
func TestTransport(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	_, port, _ := net.SplitHostPort(u.Host)

	var dialed atomic.Int32
	countingDial := func(ctx context.Context, network, address string) (net.Conn, error) {
		dialed.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "loopback.example":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "metadata.example":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		case "mixed.example":
			return []netip.Addr{netip.MustParseAddr("52.96.0.10"), netip.MustParseAddr("10.0.0.1")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	tests := []struct {
		name     string
		loopback bool
		url      string
		ok       bool
	}{
		{"loopback literal, switch on", true, srv.URL, true},
		{"loopback literal, switch off", false, srv.URL, false},
		{"name resolving to loopback, switch on", true, "http://loopback.example:" + port, false},
		{"name resolving to metadata", false, "https://metadata.example", false},
		{"name resolving to public and private", false, "https://mixed.example", false},
		{"public address on another port", false, "https://52.96.0.10:8443", false},
		{"private literal, switch on", true, "https://10.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			dialed.Store(0)
			tr := NewTransport(Options{AllowLoopback: tt.loopback, Lookup: lookup, Dial: countingDial})
			t.Cleanup(tr.CloseIdleConnections)
			hc := &http.Client{Transport: tr, CheckRedirect: NoRedirects}
			resp, err := hc.Get(tt.url)
			if tt.ok {
				if err != nil {
					t.Fatalf("GET %s: %v", tt.url, err)
				}
				resp.Body.Close()
				if hits.Load() != 1 {
					t.Fatalf("server hits = %d, want 1", hits.Load())
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s succeeded, want refused", tt.url)
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("GET %s: %v, want a RefusedError", tt.url, err)
			}
			if n := dialed.Load(); n != 0 {
				t.Fatalf("dialled %d times, want 0", n)
			}
		})
	}
}
