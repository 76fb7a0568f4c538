package credential

import (
	"bytes"
	"crypto/sha1" // x5t names the certificate by its SHA-1, as older clients send it
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by Verify, one for each answer the token endpoint gives.
// Test them with errors.Is; the messages never contain the assertion.
var (
	// ErrMalformed means the assertion is not a JWT the token endpoint can
	// read: bad encoding, an algorithm other than PS256 or RS256, or no
	// thumbprint header (Entra: AADSTS50027, "Invalid JWT token").
	ErrMalformed = errors.New("client assertion is malformed")
	// ErrKeyNotFound means no uploaded certificate has the assertion's
	// thumbprint, including a thumbprint in the wrong encoding (Entra:
	// AADSTS700027, "The key was not found."). The error is a
	// *KeyNotFoundError that carries the thumbprint.
	ErrKeyNotFound = errors.New("certificate used to sign the client assertion is not registered")
	// ErrCertificateExpired means the matching uploaded certificate is past
	// its NotAfter.
	ErrCertificateExpired = errors.New("certificate used to sign the client assertion has expired")
	// ErrSignature means the certificate was found but the signature does not
	// verify with its key (Entra: AADSTS700027, "invalid signature").
	ErrSignature = errors.New("client assertion signature is invalid")
	// ErrTimeRange means now is not between the assertion's nbf and exp
	// (Entra: AADSTS700024, "not within its valid time range").
	ErrTimeRange = errors.New("client assertion is not within its valid time range")
	// ErrClaims means aud, iss, sub, jti, iat, nbf or exp is missing or
	// wrong; the error names which.
	ErrClaims = errors.New("client assertion has invalid claims")
)

// KeyNotFoundError is the ErrKeyNotFound answer. Thumbprint is the digest the
// assertion named, in upper-case hex (SHA-256 for x5t#S256, SHA-1 for x5t, the
// one the portal shows), or the header as sent when it is not base64url.
type KeyNotFoundError struct {
	Thumbprint string
}

// Error implements error.
func (e *KeyNotFoundError) Error() string {
	return fmt.Sprintf("%v (thumbprint %s)", ErrKeyNotFound, e.Thumbprint)
}

// Is makes errors.Is(err, ErrKeyNotFound) true.
func (e *KeyNotFoundError) Is(target error) bool { return target == ErrKeyNotFound }

// Verify checks a client assertion as Entra's token endpoint does, against the
// certificates uploaded to the app (DER or PEM): it finds the certificate by the
// x5t#S256 header (or x5t when there is none), verifies the PS256 (or RS256)
// signature with its key, and requires aud = audience, iss = sub = clientID,
// a jti, an iat, and nbf <= now < exp. It returns the certificate that signed.
//
// Errors are checked in that order, and each wraps one of ErrMalformed,
// ErrKeyNotFound, ErrCertificateExpired, ErrSignature, ErrTimeRange or
// ErrClaims. An uploaded certificate that does not parse is an error of its own.
func Verify(assertion string, uploaded [][]byte, audience, clientID string, now time.Time) (Certificate, error) {
	var signer Certificate
	var keyErr error // what keyfunc refused with, without jwt's wrapping
	keyfunc := func(t *jwt.Token) (any, error) {
		found, err := lookup(t, uploaded)
		if err == nil && !now.Before(found.NotAfter) {
			err = ErrCertificateExpired
		}
		if err != nil {
			keyErr = err
			return nil, err
		}
		signer = describe(found)
		return found.PublicKey, nil
	}
	p := jwt.NewParser(
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithAudience(audience),
		jwt.WithIssuer(clientID),
		jwt.WithSubject(clientID),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
	)
	_, err := p.ParseWithClaims(assertion, &assertionClaims{}, keyfunc)
	switch {
	case err == nil:
		return signer, nil
	case keyErr != nil:
		return Certificate{}, keyErr
	case errors.Is(err, jwt.ErrTokenMalformed), errors.Is(err, jwt.ErrTokenUnverifiable): // unverifiable: an unknown alg
		return Certificate{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Certificate{}, ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet):
		return Certificate{}, ErrTimeRange
	default:
		return Certificate{}, fmt.Errorf("%w: %w", ErrClaims, err)
	}
}

// lookup finds the uploaded certificate that t's header names, for an
// algorithm the token endpoint accepts.
func lookup(t *jwt.Token, uploaded [][]byte) (*x509.Certificate, error) {
	if t.Method != jwt.SigningMethodPS256 && t.Method != jwt.SigningMethodRS256 {
		return nil, fmt.Errorf("%w: alg %s", ErrMalformed, t.Method.Alg())
	}
	name, digest := "x5t#S256", func(der []byte) []byte { s := sha256.Sum256(der); return s[:] }
	if _, ok := t.Header[name]; !ok {
		name, digest = "x5t", func(der []byte) []byte { s := sha1.Sum(der); return s[:] }
	}
	raw, ok := t.Header[name].(string)
	if !ok || raw == "" {
		return nil, fmt.Errorf("%w: no x5t#S256 or x5t header", ErrMalformed)
	}
	want, err := base64.RawURLEncoding.Strict().DecodeString(raw)
	if err != nil {
		return nil, &KeyNotFoundError{Thumbprint: raw} // Entra: a wrong encoding is just an unknown key
	}
	for _, u := range uploaded {
		c, err := parseX509(u)
		if err != nil {
			return nil, fmt.Errorf("uploaded certificate: %w", err)
		}
		if bytes.Equal(digest(c.Raw), want) {
			return c, nil
		}
	}
	return nil, &KeyNotFoundError{Thumbprint: upperHex(want)}
}

// assertionClaims adds the checks jwt's validator has no option for.
type assertionClaims struct {
	jwt.RegisteredClaims
}

// Validate implements jwt.ClaimsValidator.
func (c *assertionClaims) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, fmt.Errorf("%w: jti", jwt.ErrTokenRequiredClaimMissing))
	}
	if c.IssuedAt == nil {
		errs = append(errs, fmt.Errorf("%w: iat", jwt.ErrTokenRequiredClaimMissing))
	}
	return errors.Join(errs...)
}
