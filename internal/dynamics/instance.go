package dynamics

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/dynconn/dynconn/internal/model"
)

// Instance is a parsed, normalised Dynamics 365 instance URL.
type Instance struct {
	// URL is "https://host" with nothing after the host (or, in loopback mode,
	// "http://127.0.0.1:port").
	URL string
	// Host is the lower-case host name (with the port in loopback mode).
	Host string
	// Cloud is the Microsoft cloud the host belongs to.
	Cloud model.Cloud
	// Loopback reports whether this is a local simulator address, accepted only
	// when loopback mode is on.
	Loopback bool
}

// InstanceURLError says why an instance URL was refused, in words a customer
// understands. Code is stable and listed in openapi.yaml.
type InstanceURLError struct {
	Code    string
	Message string
}

func (e *InstanceURLError) Error() string { return "instance url: " + e.Message }

// regionCloud maps the region part of a host ({org}.{region} or
// {org}.api.{region}) to its cloud. Source: microsoft-facts.md §6.1.
var regionCloud = map[string]model.Cloud{
	"crm.dynamics.com":         model.CloudPublic,
	"crm2.dynamics.com":        model.CloudPublic,
	"crm3.dynamics.com":        model.CloudPublic,
	"crm4.dynamics.com":        model.CloudPublic,
	"crm5.dynamics.com":        model.CloudPublic,
	"crm6.dynamics.com":        model.CloudPublic,
	"crm7.dynamics.com":        model.CloudPublic,
	"crm8.dynamics.com":        model.CloudPublic,
	"crm9.dynamics.com":        model.CloudGCC,
	"crm11.dynamics.com":       model.CloudPublic,
	"crm12.dynamics.com":       model.CloudPublic,
	"crm14.dynamics.com":       model.CloudPublic,
	"crm15.dynamics.com":       model.CloudPublic,
	"crm16.dynamics.com":       model.CloudPublic,
	"crm17.dynamics.com":       model.CloudPublic,
	"crm19.dynamics.com":       model.CloudPublic,
	"crm20.dynamics.com":       model.CloudPublic,
	"crm21.dynamics.com":       model.CloudPublic,
	"crm.microsoftdynamics.us": model.CloudGCCHigh,
	"crm.appsplatform.us":      model.CloudDoD,
	"crm.dynamics.cn":          model.CloudChina,
}

// orgLabel is one DNS label, as Dataverse environment names are.
var orgLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseInstanceURL normalises what a customer pasted into the Resource URL
// field. It is forgiving where that is safe (surrounding whitespace, a missing
// https://, a path or query copied from the address bar, upper case) and strict
// where it is not (http, ports, user info, IP addresses, hosts outside the
// Dynamics domains). With allowLoopback, http://127.0.0.1:PORT is accepted too,
// so a local simulator can stand in for Microsoft. Errors are *InstanceURLError.
func ParseInstanceURL(raw string, allowLoopback bool) (Instance, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return Instance{}, &InstanceURLError{"required", "Enter your Dynamics 365 instance URL, for example https://yourorg.crm.dynamics.com."}
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return Instance{}, &InstanceURLError{"invalid_url", "This is not a web address. Copy the address bar of Dynamics 365 up to the first slash, for example https://yourorg.crm.dynamics.com."}
	}
	if allowLoopback {
		if inst, ok := loopbackInstance(u); ok {
			return inst, nil
		}
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		return Instance{}, &InstanceURLError{"not_https", "The instance URL must start with https://, not http://."}
	default:
		return Instance{}, &InstanceURLError{"not_https", "The instance URL must start with https://."}
	}
	if u.User != nil {
		return Instance{}, &InstanceURLError{"has_userinfo", "Remove the user name or password from the instance URL: paste only https://yourorg.crm.dynamics.com."}
	}
	if u.Port() != "" {
		return Instance{}, &InstanceURLError{"has_port", "Remove the port from the instance URL: Dynamics 365 is reached on the standard https port."}
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if _, err := netip.ParseAddr(host); err == nil || net.ParseIP(host) != nil {
		return Instance{}, &InstanceURLError{"ip_address", "Use the instance's name (like https://yourorg.crm.dynamics.com), not an IP address."}
	}
	cloud, ok := hostCloud(host)
	if !ok {
		if strings.HasSuffix(host, ".crm.microsoftdynamics.de") {
			return Instance{}, &InstanceURLError{"unsupported_cloud", "The Microsoft Cloud Germany (crm.microsoftdynamics.de) was closed in 2021. Use the URL of your environment in its new region."}
		}
		return Instance{}, &InstanceURLError{"not_dynamics_host", fmt.Sprintf("%q is not a Dynamics 365 address. Open Dynamics 365 (for example the Sales Hub) and copy the address bar up to the first slash: it looks like https://yourorg.crm.dynamics.com.", host)}
	}
	return Instance{URL: "https://" + host, Host: host, Cloud: cloud}, nil
}

// hostCloud reports the cloud of an {org}.{region} or {org}.api.{region} host.
func hostCloud(host string) (model.Cloud, bool) {
	org, region, ok := strings.Cut(host, ".")
	if !ok || !orgLabel.MatchString(org) {
		return "", false
	}
	if cloud, ok := regionCloud[region]; ok {
		return cloud, true
	}
	if rest, ok := strings.CutPrefix(region, "api."); ok {
		cloud, ok := regionCloud[rest]
		return cloud, ok
	}
	return "", false
}

// loopbackInstance accepts http(s)://127.0.0.1:PORT (or [::1]) for the local
// simulator. The path is dropped as for real instances.
func loopbackInstance(u *url.URL) (Instance, bool) {
	if u.Scheme != "http" && u.Scheme != "https" || u.User != nil {
		return Instance{}, false
	}
	host, ok := loopbackHost(u)
	if !ok {
		return Instance{}, false
	}
	return Instance{URL: u.Scheme + "://" + host, Host: host, Cloud: model.CloudPublic, Loopback: true}, true
}

// loopbackHost returns the host and port of u in one canonical form
// ("127.0.0.1:8443", "[::1]:8443") when u names a loopback address and a
// port from 1 to 65535. Other spellings of the same address become that
// form: an IPv4-mapped IPv6 address ([::ffff:127.0.0.1]) its IPv4 address,
// and a zone ([::1%25lo]) is dropped, so what is stored is one address that
// parses again.
func loopbackHost(u *url.URL) (string, bool) {
	port, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil || port == 0 {
		return "", false
	}
	addr, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return "", false
	}
	addr = addr.Unmap().WithZone("")
	if !addr.IsLoopback() {
		return "", false
	}
	return netip.AddrPortFrom(addr, uint16(port)).String(), true
}

// authorityHosts lists the Entra sign-in hosts of each cloud, the only hosts a
// token request may go to (design.md "Outbound calls"; microsoft-facts.md §6.2).
// An instance's 401 challenge may name only one of its cloud's as the
// authority, so an instance cannot make dynconn send a client secret to a host
// of its choosing.
var authorityHosts = map[model.Cloud][]string{
	model.CloudPublic:  {"login.microsoftonline.com", "login.windows.net"},
	model.CloudGCC:     {"login.microsoftonline.com", "login.windows.net"},
	model.CloudGCCHigh: {"login.microsoftonline.us"},
	model.CloudDoD:     {"login.microsoftonline.us"},
	model.CloudChina:   {"login.partner.microsoftonline.cn", "login.chinacloudapi.cn"},
}
