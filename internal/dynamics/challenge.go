package dynamics

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// challenge is what Dataverse's 401 answer to an unauthenticated request
// says about itself (microsoft-facts.md §3).
type challenge struct {
	AuthorizationURI string
	ResourceID       string
}

// errNoChallenge means no usable Bearer challenge: the host is not Dataverse.
var errNoChallenge = errors.New("no bearer challenge with authorization_uri and resource_id")

// parseChallenge reads WWW-Authenticate values the way Microsoft's
// ServiceClient does (AuthorityResolver.cs): the value must start with
// "bearer" (any case) and whitespace, then comma-separated key=value pairs,
// keys in any case, and both authorization_uri and resource_id are required.
// It does not use a general RFC 9110 parser on purpose: Dataverse's comma
// between the pairs is what such parsers trip over.
func parseChallenge(values []string) (challenge, error) {
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) < 7 || !strings.EqualFold(v[:6], "bearer") || !unicode.IsSpace(rune(v[6])) {
			continue
		}
		var c challenge
		for _, pair := range strings.Split(v[7:], ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok {
				continue
			}
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "authorization_uri":
				c.AuthorizationURI = val
			case "resource_id":
				c.ResourceID = val
			}
		}
		if c.AuthorizationURI != "" && c.ResourceID != "" {
			return c, nil
		}
	}
	return challenge{}, errNoChallenge
}

// authority is an approved Entra endpoint for one tenant.
type authority struct {
	// Base is scheme://host.
	Base string
	// Tenant is the tenant from the challenge: a GUID or a domain name.
	Tenant string
}

// TokenURL is the v2.0 token endpoint of tenant at this authority.
func (a authority) TokenURL(tenant string) string {
	return a.Base + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
}

// tenantName is a tenant GUID or a directory's DNS name; anything else could
// smuggle a path into the token URL.
var tenantName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// authorityError says why an authorization_uri was refused.
type authorityError struct{ reason string }

func (e *authorityError) Error() string { return "authority not allowed: " + e.reason }

// parseAuthority checks the challenge's authorization_uri against the
// instance's cloud: https, port 443, and a host of authorityHosts[cloud]. In
// loopback mode an http(s) loopback address with any port is accepted too,
// for the local simulator.
func parseAuthority(inst Instance, raw string, allowLoopback bool) (authority, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return authority{}, &authorityError{fmt.Sprintf("%q is not a URL", raw)}
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return authority{}, &authorityError{fmt.Sprintf("%q has user info, a query or a fragment", raw)}
	}
	path, ok := strings.CutSuffix(strings.TrimSuffix(u.Path, "/"), "/oauth2/authorize")
	if !ok {
		return authority{}, &authorityError{fmt.Sprintf("%q does not end in /oauth2/authorize", raw)}
	}
	i := strings.LastIndex(path, "/")
	prefix, tenant := path[:i+1], path[i+1:]
	prefix = strings.TrimSuffix(prefix, "/")
	if !tenantName.MatchString(tenant) {
		return authority{}, &authorityError{fmt.Sprintf("tenant %q is not a tenant id or domain", tenant)}
	}
	if strings.EqualFold(tenant, "common") {
		// As ServiceClient does; the client-credentials grant refuses /common.
		tenant = "organizations"
	}
	if prefix != "" {
		return authority{}, &authorityError{fmt.Sprintf("unexpected path %q", prefix)}
	}

	host := strings.ToLower(u.Hostname())
	if _, err := netip.ParseAddr(host); err == nil {
		loopback, ok := loopbackHost(u)
		if !allowLoopback || !ok || (u.Scheme != "http" && u.Scheme != "https") {
			return authority{}, &authorityError{fmt.Sprintf("%s is an IP address", host)}
		}
		return authority{Base: u.Scheme + "://" + loopback, Tenant: tenant}, nil
	}
	if u.Scheme != "https" {
		return authority{}, &authorityError{fmt.Sprintf("%q is not https", raw)}
	}
	if p := u.Port(); p != "" && p != "443" {
		return authority{}, &authorityError{fmt.Sprintf("port %s is not 443", p)}
	}
	if !slices.Contains(authorityHosts[inst.Cloud], host) {
		return authority{}, &authorityError{fmt.Sprintf("%s is not a sign-in host of the %s cloud", host, inst.Cloud)}
	}
	return authority{Base: "https://" + host, Tenant: tenant}, nil
}
