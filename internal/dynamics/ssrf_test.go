package dynamics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/model"
)

// dialRecorder stands in for the network behind the address checks: it
// records every address the client really tried to connect to, and connects
// only the public addresses a test maps to a local simulator.
type dialRecorder struct {
	mu     sync.Mutex
	routes map[string]string // "20.190.160.10:443" → "127.0.0.1:PORT"
	dialed []string
}

func (d *dialRecorder) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, address)
	to, ok := d.routes[address]
	d.mu.Unlock()
	if !ok {
		return nil, errors.New("test network: no route to " + address)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, to)
}

func (d *dialRecorder) addresses() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.dialed)
}

// TestSSRFInstance: instance URLs that lead to loopback, private, link-local
// or metadata addresses are refused before any connection is made.
func TestSSRFInstance(t *testing.T) {
	sim := newSim(t, simulator.Options{})

	t.Run("loopback URL with the switch off", func(t *testing.T) {
		c, _ := newClient(t, Options{})
		for _, u := range []string{sim.URL, "https://127.0.0.1", "http://[::1]:8443", "https://localhost"} {
			res := c.Test(context.Background(), simCreds(u))
			if ch := checkNamed(t, res, model.CheckInstanceURL); ch.Code != CodeInstanceURLInvalid {
				t.Errorf("%s: instance_url = %+v, want instance_url_invalid", u, ch)
			}
		}
		if n := sim.Count(""); n != 0 {
			t.Fatalf("the simulator got %d requests, want 0", n)
		}
	})

	answers := map[string][]string{
		"loopback":               {"127.0.0.1"},
		"loopback v6":            {"::1"},
		"ipv4-mapped loopback":   {"::ffff:127.0.0.1"},
		"private 10/8":           {"10.0.0.1"},
		"private 192.168/16":     {"192.168.1.20"},
		"private 172.16/12":      {"172.16.0.1"},
		"link-local":             {"169.254.10.1"},
		"metadata":               {"169.254.169.254"},
		"metadata v6":            {"fd00:ec2::254"},
		"link-local v6":          {"fe80::1"},
		"cgnat":                  {"100.64.0.1"},
		"unspecified":            {"0.0.0.0"},
		"multicast":              {"224.0.0.1"},
		"nat64 of private":       {"64:ff9b::a00:1"},
		"public and private mix": {"52.96.0.10", "10.0.0.1"},
	}
	for name, ips := range answers {
		t.Run("name resolving to "+name, func(t *testing.T) {
			rec := &dialRecorder{}
			c, _ := newClient(t, Options{Lookup: staticLookup(map[string][]string{"contoso.crm.dynamics.com": ips}), dial: rec.dial})
			res := c.Test(context.Background(), simCreds("https://contoso.crm.dynamics.com"))
			ch := checkNamed(t, res, model.CheckTenantDiscovery)
			if ch.Code != CodeDestinationNotAllowed || ch.SetupStep != nil {
				t.Fatalf("tenant_discovery = %+v, want destination_not_allowed", ch)
			}
			if got := rec.addresses(); len(got) != 0 {
				t.Fatalf("dialled %v, want nothing", got)
			}
		})
	}

	t.Run("name resolving to loopback with the switch on", func(t *testing.T) {
		// Loopback mode allows loopback literals only, never through DNS.
		rec := &dialRecorder{}
		c, _ := newClient(t, Options{AllowLoopback: true,
			Lookup: staticLookup(map[string][]string{"contoso.crm.dynamics.com": {"127.0.0.1"}}), dial: rec.dial})
		res := c.Test(context.Background(), simCreds("https://contoso.crm.dynamics.com"))
		if ch := checkNamed(t, res, model.CheckTenantDiscovery); ch.Code != CodeDestinationNotAllowed {
			t.Fatalf("tenant_discovery = %+v, want destination_not_allowed", ch)
		}
		if got := rec.addresses(); len(got) != 0 {
			t.Fatalf("dialled %v, want nothing", got)
		}
	})
}

// publicSim serves https://contoso.crm.dynamics.com and, when the lookup
// says so, https://login.microsoftonline.com from a local TLS simulator, so
// the production rules (https, port 443, public addresses, switch off) apply
// unchanged.
func publicSim(t *testing.T, authorityURL string, lookup map[string][]string) (*simulator.Server, *Client, *dialRecorder) {
	t.Helper()
	sim := newSim(t, simulator.Options{
		TLSHosts:     []string{"contoso.crm.dynamics.com", "login.microsoftonline.com"},
		InstanceURL:  "https://contoso.crm.dynamics.com",
		AuthorityURL: authorityURL,
	})
	u, _ := url.Parse(sim.URL)
	rec := &dialRecorder{routes: map[string]string{"52.96.0.10:443": u.Host, "20.190.160.10:443": u.Host}}
	c, _ := newClient(t, Options{Lookup: staticLookup(lookup), dial: rec.dial, rootCAs: sim.CertPool()})
	return sim, c, rec
}

var publicNames = map[string][]string{
	"contoso.crm.dynamics.com":  {"52.96.0.10"},
	"login.microsoftonline.com": {"20.190.160.10"},
}

// TestSSRFAuthority: the authority named in the challenge must be a sign-in
// host of the instance's cloud, on https and 443, at a public address; the
// token request (and with it the secret) goes nowhere else.
func TestSSRFAuthority(t *testing.T) {
	t.Run("the real shape passes with the switch off", func(t *testing.T) {
		sim, c, rec := publicSim(t, "https://login.microsoftonline.com", publicNames)
		res := c.Test(context.Background(), simCreds("https://contoso.crm.dynamics.com"))
		if !res.OK {
			t.Fatalf("want success, got %+v", res.Checks)
		}
		if n := sim.Count("token"); n != 1 {
			t.Fatalf("token requests = %d, want 1", n)
		}
		for _, a := range rec.addresses() {
			if a != "52.96.0.10:443" && a != "20.190.160.10:443" {
				t.Errorf("dialled %s", a)
			}
		}
	})

	refused := []struct {
		name      string
		authority func(sim string) string
		lookup    map[string][]string
		check     string
		code      string
	}{
		{"loopback authority with the switch off", func(sim string) string { return sim }, publicNames,
			model.CheckTenantDiscovery, CodeAuthorityNotAllowed},
		{"authority of another cloud", func(string) string { return "https://login.microsoftonline.us" }, publicNames,
			model.CheckTenantDiscovery, CodeAuthorityNotAllowed},
		{"authority over http", func(string) string { return "http://login.microsoftonline.com" }, publicNames,
			model.CheckTenantDiscovery, CodeAuthorityNotAllowed},
		{"authority on another port", func(string) string { return "https://login.microsoftonline.com:8443" }, publicNames,
			model.CheckTenantDiscovery, CodeAuthorityNotAllowed},
		{"authority at a private address", func(string) string { return "https://10.0.0.1" }, publicNames,
			model.CheckTenantDiscovery, CodeAuthorityNotAllowed},
		{"authority name resolving to loopback", func(string) string { return "https://login.microsoftonline.com" },
			map[string][]string{"contoso.crm.dynamics.com": {"52.96.0.10"}, "login.microsoftonline.com": {"127.0.0.1"}},
			model.CheckToken, CodeDestinationNotAllowed},
		{"authority name resolving to metadata", func(string) string { return "https://login.microsoftonline.com" },
			map[string][]string{"contoso.crm.dynamics.com": {"52.96.0.10"}, "login.microsoftonline.com": {"169.254.169.254"}},
			model.CheckToken, CodeDestinationNotAllowed},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			// The simulator's address is known only once it runs; start one
			// to learn it for the loopback case, then the one under test.
			probe := newSim(t, simulator.Options{})
			sim, c, rec := publicSim(t, tt.authority(probe.URL), tt.lookup)
			res := c.Test(context.Background(), simCreds("https://contoso.crm.dynamics.com"))
			if ch := checkNamed(t, res, tt.check); ch.Code != tt.code {
				t.Fatalf("%s = %+v, want %s", tt.check, ch, tt.code)
			}
			if n := sim.Count("token") + probe.Count(""); n != 0 {
				t.Fatalf("%d requests reached a token endpoint, want 0", n)
			}
			if got := rec.addresses(); !slices.Equal(got, []string{"52.96.0.10:443"}) {
				t.Fatalf("dialled %v, want only the instance", got)
			}
		})
	}

	t.Run("loopback authority as the simulator's own", func(t *testing.T) {
		// With the authority at the loopback simulator itself, the switch off
		// must still refuse it before any token request.
		var tokenHits atomic.Int32
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tokenHits.Add(1) }))
		t.Cleanup(target.Close)
		_, c, _ := publicSim(t, target.URL, publicNames)
		res := c.Test(context.Background(), simCreds("https://contoso.crm.dynamics.com"))
		if ch := checkNamed(t, res, model.CheckTenantDiscovery); ch.Code != CodeAuthorityNotAllowed {
			t.Fatalf("tenant_discovery = %+v, want authority_not_allowed", ch)
		}
		if n := tokenHits.Load(); n != 0 {
			t.Fatalf("%d requests reached the loopback target", n)
		}
	})
}

// TestSSRFRedirect: a redirect to another host is refused, without a request
// reaching it.
func TestSSRFRedirect(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(target.Close)
	sim := newSim(t, simulator.Options{Scenario: "redirect", RedirectURL: target.URL + "/api/data/v9.2/"})
	c, _ := newClient(t, Options{AllowLoopback: true})
	res := c.Test(context.Background(), simCreds(sim.URL))
	if ch := checkNamed(t, res, model.CheckTenantDiscovery); ch.Code != CodeDestinationNotAllowed {
		t.Fatalf("tenant_discovery = %+v, want destination_not_allowed", ch)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests, want 0", n)
	}
}
