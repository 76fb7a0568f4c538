package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/dynconn/dynconn/internal/secret"
)

// Config says how tokens are verified. Exactly one of JWKSURL and HS256Secret
// must be set.
type Config struct {
	// JWKSURL (AUTH_JWKS_URL) serves the RS256/ES256 public keys; it is
	// fetched at start-up and refreshed periodically and when a token names
	// an unknown key id. Must be https, except on a loopback host.
	JWKSURL string
	// HS256Secret (AUTH_HS256_SECRET) is a shared secret for development and
	// tests; at least MinHS256SecretLen bytes.
	HS256Secret secret.String
	// Issuer (AUTH_ISSUER) is required to equal the iss claim when set.
	Issuer string
	// Audience (AUTH_AUDIENCE) is required to be in the aud claim when set.
	// It must be set with JWKSURL.
	Audience string
	// AccountClaim (AUTH_ACCOUNT_CLAIM) names the claim holding the account
	// id; DefaultAccountClaim when empty.
	AccountClaim string
	// Logger receives JWKS refresh failures; slog.Default() when nil.
	Logger *slog.Logger
}

// Validate reports every problem with the configuration, each naming its
// environment variable, so that the server can report them together with its
// other configuration errors. NewVerifier refuses a Config that has any.
func (c Config) Validate() []error {
	var errs []error
	switch hasJWKS, hasHS := c.JWKSURL != "", !c.HS256Secret.IsEmpty(); {
	case !hasJWKS && !hasHS:
		errs = append(errs, errors.New("AUTH_JWKS_URL and AUTH_HS256_SECRET: set one of them so callers can be authenticated"))
	case hasJWKS && hasHS:
		errs = append(errs, errors.New("AUTH_JWKS_URL and AUTH_HS256_SECRET: set only one of them"))
	case hasJWKS:
		if u, err := url.Parse(c.JWKSURL); err != nil || u.Host == "" ||
			u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
			errs = append(errs, errors.New("AUTH_JWKS_URL: must be an https URL (http only on a loopback host)"))
		}
		// An identity provider signs the tokens of every application it
		// serves with the same keys (and the same issuer), so without an
		// audience a token issued for any of them would pass here.
		if c.Audience == "" {
			errs = append(errs, errors.New("AUTH_AUDIENCE: required with AUTH_JWKS_URL, or tokens that the identity provider issued for other applications are accepted too; set it to the audience (aud) of the tokens meant for dynconn"))
		}
	case len(c.HS256Secret.Reveal()) < MinHS256SecretLen:
		errs = append(errs, fmt.Errorf("AUTH_HS256_SECRET: must be at least %d bytes", MinHS256SecretLen))
	}
	return errs
}

// isLoopback reports whether host names this machine, where a JWKS may be
// served over plain http (development and tests).
func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
