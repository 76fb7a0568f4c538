// Package credential makes and checks the certificate credentials of a
// connection, so the customer never pastes a secret: dynconn generates an RSA
// key pair and a self-signed certificate (Generate), the customer uploads the
// public certificate to the app registration, and the token request carries a
// client assertion signed with the private key (Signer, ClientCredentials)
// instead of a client secret. Verify is the token endpoint's side of that
// exchange, for the simulator.
//
// The private key leaves Generate only as PKCS #8 DER for the caller to seal
// and clear, and comes back only into a Signer. Neither ever appears in an
// error, a log or a formatted value.
package credential

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // names the certificate as the Azure portal does; nothing relies on it for security
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/google/uuid"
)

// KeyBits is the size of the RSA keys Generate makes. Entra wants at least
// 2048 bits. On our 2-core machine under load, a 3072-bit key took about four
// times as long to generate (median 300 ms against 67 ms, p90 840 ms against
// 140 ms, measured in the request that creates the connection) and three times
// as long to sign with, and buys nothing a one-year credential needs: NIST
// SP 800-57 accepts 2048 bits until 2030.
const KeyBits = 2048

// DefaultValidity is how long a certificate is valid unless
// CERTIFICATE_VALIDITY says otherwise.
const DefaultValidity = 8760 * time.Hour

// Certificate is the public half of a certificate credential: what the customer
// uploads to the app registration and what the connection resource shows.
type Certificate struct {
	// DER is the certificate in DER encoding (a .cer file).
	DER []byte
	// Thumbprint is the SHA-1 of DER in upper-case hex, as the Azure portal's
	// Certificates tab shows it, so the customer can compare the two.
	Thumbprint string
	// ThumbprintSHA256 is the SHA-256 of DER in upper-case hex, the same
	// encoding as Thumbprint. (The client assertion's x5t#S256 header carries
	// the same digest in base64url.)
	ThumbprintSHA256 string
	// NotBefore and NotAfter bound the certificate's validity, in UTC.
	NotBefore, NotAfter time.Time
}

// Generate makes a new RSA key pair of KeyBits bits and a self-signed
// certificate for the connection, valid from now (to the second) for validity.
// It returns the certificate and the private key as PKCS #8 DER, for the
// caller to seal and then clear.
func Generate(connectionID uuid.UUID, now time.Time, validity time.Duration) (Certificate, []byte, error) {
	if validity <= 0 {
		return Certificate{}, nil, fmt.Errorf("certificate validity %v is not positive", validity)
	}
	key, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return Certificate{}, nil, fmt.Errorf("generate RSA key: %w", err)
	}
	defer clearKey(key)
	der, err := selfSign(key, connectionID, now, validity)
	if err != nil {
		return Certificate{}, nil, err
	}
	cert, err := ParseCertificate(der)
	if err != nil {
		return Certificate{}, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Certificate{}, nil, errors.New("marshal private key") // the cause could quote the key
	}
	return cert, pkcs8, nil
}

// selfSign makes the certificate for key. The serial number is left to
// x509.CreateCertificate, which draws a random one as RFC 5280 asks.
func selfSign(key *rsa.PrivateKey, connectionID uuid.UUID, now time.Time, validity time.Duration) ([]byte, error) {
	notBefore := now.UTC().Truncate(time.Second) // certificates hold whole seconds; never start after now
	template := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:   "dynconn connection " + connectionID.String(),
			Organization: []string{"dynconn"},
		},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, // and IsCA false: this key signs assertions, never certificates
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, errors.New("create certificate") // the cause could quote the key
	}
	return der, nil
}

// ParseCertificate reads a certificate in DER or PEM encoding, as the Azure
// portal's upload accepts either.
func ParseCertificate(data []byte) (Certificate, error) {
	c, err := parseX509(data)
	if err != nil {
		return Certificate{}, err
	}
	return describe(c), nil
}

func parseX509(data []byte) (*x509.Certificate, error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("parse certificate: PEM block is %q, not CERTIFICATE", block.Type)
		}
		der = block.Bytes
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, nil
}

func describe(c *x509.Certificate) Certificate {
	sum1 := sha1.Sum(c.Raw)
	sum256 := sha256.Sum256(c.Raw)
	return Certificate{
		DER:              c.Raw,
		Thumbprint:       upperHex(sum1[:]),
		ThumbprintSHA256: upperHex(sum256[:]),
		NotBefore:        c.NotBefore.UTC(),
		NotAfter:         c.NotAfter.UTC(),
	}
}

// PEM returns the certificate in PEM encoding (a .pem or .crt file).
func (c Certificate) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
}

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// clearKey overwrites the private parts of key that this package can reach.
// crypto/rsa keeps a second copy of them inside its FIPS module that no API
// can clear (golang/go#21865); that copy becomes garbage with key.
func clearKey(key *rsa.PrivateKey) {
	clearInt(key.D)
	for _, p := range key.Primes {
		clearInt(p)
	}
	clearInt(key.Precomputed.Dp)
	clearInt(key.Precomputed.Dq)
	clearInt(key.Precomputed.Qinv)
	// Precomputed.CRTValues is empty: it only serves keys of three or more primes.
}

func clearInt(x *big.Int) {
	if x != nil {
		clear(x.Bits()) // Bits shares x's storage, so this zeroes the words themselves
		x.SetInt64(0)
	}
}
