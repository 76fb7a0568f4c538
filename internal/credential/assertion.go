package credential

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// AssertionLifetime is how long a client assertion is valid after its nbf.
// Microsoft's page asks for 5 to 10 minutes; 10 is what MSAL uses, and an
// assertion is sent the moment it is signed.
const AssertionLifetime = 10 * time.Minute

// AssertionType is the client_assertion_type of a token request that
// authenticates with a signed JWT (OpenID Connect private_key_jwt).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Errors returned by NewSigner and Signer.Assertion. Test them with errors.Is.
var (
	// ErrKeyMismatch means the private key does not belong to the
	// certificate: an assertion signed with it would never verify.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	// ErrDestroyed means the Signer's key has been cleared.
	ErrDestroyed = errors.New("signer was destroyed")
)

// Signer signs client assertions with a certificate's private key. Call
// Destroy when done with it. A Signer prints and logs as "[redacted]".
// Assertion is safe for concurrent use; Destroy must not run alongside it.
type Signer struct {
	key     *rsa.PrivateKey
	x5tS256 string // base64url SHA-256 of the certificate's DER
}

// NewSigner returns a Signer for the certificate (DER or PEM) and its private
// key (PKCS #8 DER, as Generate returns it). It does not keep privateKey: the
// caller clears it. Returns ErrKeyMismatch if the key is not the certificate's.
func NewSigner(certificate, privateKey []byte) (*Signer, error) {
	c, err := parseX509(certificate)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(privateKey)
	if err != nil {
		return nil, errors.New("parse private key: not a PKCS #8 key") // the cause could quote the key
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("parse private key: not an RSA key")
	}
	if !key.PublicKey.Equal(c.PublicKey) {
		clearKey(key)
		return nil, ErrKeyMismatch
	}
	sum := sha256.Sum256(c.Raw)
	return &Signer{key: key, x5tS256: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}

// Assertion returns a client assertion for the token endpoint audience (the
// token URL, https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token) and
// the application's client id: a JWT with header alg PS256, typ JWT and
// x5t#S256, and claims aud, iss = sub = clientID, a random jti, nbf = iat = now
// and exp = now + AssertionLifetime.
func (s *Signer) Assertion(audience, clientID string, now time.Time) (string, error) {
	if s.key == nil {
		return "", ErrDestroyed
	}
	claims := jwt.RegisteredClaims{
		Audience:  jwt.ClaimStrings{audience},
		Issuer:    clientID,
		Subject:   clientID,
		ID:        uuid.NewString(),
		NotBefore: jwt.NewNumericDate(now),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(AssertionLifetime)),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodPS256, claims) // sets alg and typ
	t.Header["x5t#S256"] = s.x5tS256
	signed, err := t.SignedString(s.key)
	if err != nil {
		return "", errors.New("sign client assertion") // the cause could quote the key
	}
	return signed, nil
}

// Destroy clears the private key (see clearKey for what Go lets us reach);
// Assertion fails with ErrDestroyed afterwards.
func (s *Signer) Destroy() {
	if s.key != nil {
		clearKey(s.key)
		s.key = nil
	}
}

// String implements fmt.Stringer so that no verb prints the key.
func (*Signer) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer, for %#v.
func (*Signer) GoString() string { return "[redacted]" }

// LogValue implements slog.LogValuer.
func (*Signer) LogValue() slog.Value { return slog.StringValue("[redacted]") }

var _ slog.LogValuer = (*Signer)(nil)

// ClientCredentials returns the x/oauth2 configuration of a client-credentials
// token request that authenticates with assertion instead of a client secret:
// client_id, client_assertion_type and client_assertion in the form, and no
// client_secret or Authorization header (x/oauth2 sends neither when the
// secret is empty and AuthStyle is AuthStyleInParams). An assertion is good for
// AssertionLifetime, so build a new Config for each token request and do not
// keep its TokenSource.
func ClientCredentials(tokenURL, clientID string, scopes []string, assertion string) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID:  clientID,
		TokenURL:  tokenURL,
		Scopes:    scopes,
		AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{
			"client_assertion_type": {AssertionType},
			"client_assertion":      {assertion},
		},
	}
}
