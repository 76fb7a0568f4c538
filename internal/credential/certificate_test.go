package credential_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/credential"
)

// t0 is the tests' clock: half a second past the minute, so truncation shows.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)

// generated is one credential.Generate result, kept parsed for the tests.
type generated struct {
	id    uuid.UUID
	cert  credential.Certificate
	pkcs8 []byte
	key   *rsa.PrivateKey
}

// fixtures holds two credentials, made once: RSA key generation is slow
// enough (more so under -race) that every test making its own would add up.
var fixtures = sync.OnceValues(func() ([2]generated, error) {
	var out [2]generated
	for i := range out {
		id := uuid.New()
		cert, pkcs8, err := credential.Generate(id, t0, credential.DefaultValidity)
		if err != nil {
			return out, err
		}
		key, err := x509.ParsePKCS8PrivateKey(pkcs8)
		if err != nil {
			return out, err
		}
		out[i] = generated{id: id, cert: cert, pkcs8: pkcs8, key: key.(*rsa.PrivateKey)}
	}
	return out, nil
})

func mustFixtures(t testing.TB) [2]generated {
	t.Helper()
	f, err := fixtures()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGenerate(t *testing.T) {
	g := mustFixtures(t)[0]
	c, err := x509.ParseCertificate(g.cert.DER)
	if err != nil {
		t.Fatal(err)
	}

	if want := "dynconn connection " + g.id.String(); c.Subject.CommonName != want {
		t.Errorf("subject CN = %q, want %q", c.Subject.CommonName, want)
	}
	if !slices.Equal(c.Subject.Organization, []string{"dynconn"}) {
		t.Errorf("subject O = %q, want [dynconn]", c.Subject.Organization)
	}
	// Not CheckSignatureFrom: it insists the parent be a CA, and this one must not be.
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Errorf("not signed by its own key: %v", err)
	}
	if !bytes.Equal(c.RawIssuer, c.RawSubject) {
		t.Error("issuer differs from subject")
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage = %v, want digitalSignature only", c.KeyUsage)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ext key usage = %v, want clientAuth", c.ExtKeyUsage)
	}
	if c.IsCA {
		t.Error("certificate is a CA")
	}
	if c.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %v is not positive", c.SerialNumber)
	}

	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != credential.KeyBits {
		t.Errorf("public key = %T of %d bits, want RSA of %d", c.PublicKey, pub.N.BitLen(), credential.KeyBits)
	}
	if !g.key.PublicKey.Equal(c.PublicKey) {
		t.Error("PKCS #8 private key does not belong to the certificate")
	}

	wantStart := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if !g.cert.NotBefore.Equal(wantStart) || !c.NotBefore.Equal(wantStart) {
		t.Errorf("not before = %v (x509 %v), want %v", g.cert.NotBefore, c.NotBefore, wantStart)
	}
	if want := wantStart.Add(8760 * time.Hour); !g.cert.NotAfter.Equal(want) || !c.NotAfter.Equal(want) {
		t.Errorf("not after = %v (x509 %v), want %v", g.cert.NotAfter, c.NotAfter, want)
	}
	if g.cert.NotBefore.Location() != time.UTC || g.cert.NotAfter.Location() != time.UTC {
		t.Error("dates are not in UTC")
	}
}

func TestGenerateMakesDistinctCertificates(t *testing.T) {
	f := mustFixtures(t)
	a, err := x509.ParseCertificate(f[0].cert.DER)
	if err != nil {
		t.Fatal(err)
	}
	b, err := x509.ParseCertificate(f[1].cert.DER)
	if err != nil {
		t.Fatal(err)
	}
	if a.SerialNumber.Cmp(b.SerialNumber) == 0 {
		t.Errorf("both certificates have serial %v", a.SerialNumber)
	}
	if f[0].key.PublicKey.Equal(&f[1].key.PublicKey) {
		t.Error("both certificates have the same key")
	}
	if f[0].cert.Thumbprint == f[1].cert.Thumbprint {
		t.Error("both certificates have the same thumbprint")
	}
}

func TestGenerateValidityComesFromTheCaller(t *testing.T) {
	cert, _, err := credential.Generate(uuid.New(), t0, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.NotAfter.Sub(cert.NotBefore); got != 90*24*time.Hour {
		t.Errorf("validity = %v, want 2160h", got)
	}
}

func TestGenerateRejectsNonPositiveValidity(t *testing.T) {
	for _, v := range []time.Duration{0, -time.Hour} {
		if _, key, err := credential.Generate(uuid.New(), t0, v); err == nil || key != nil {
			t.Errorf("Generate(validity %v) = key %v, err %v; want an error and no key", v, key != nil, err)
		}
	}
}

// TestParseCertificateThumbprints checks the thumbprints against what OpenSSL
// printed for testdata/openssl.pem (openssl x509 -noout -fingerprint -sha1,
// -sha256; the portal shows the SHA-1 the same way, without colons).
func TestParseCertificateThumbprints(t *testing.T) {
	for _, file := range []string{"testdata/openssl.pem", "testdata/openssl.cer"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c, err := credential.ParseCertificate(data)
			if err != nil {
				t.Fatal(err)
			}
			if want := "9CA81ED26E0FC1789907A9296A9B009BB4C10C87"; c.Thumbprint != want {
				t.Errorf("thumbprint = %s, want %s", c.Thumbprint, want)
			}
			if want := "1544EF9732B1EE8B9720A341F60B7CDEEC8D0F359DC29582B08912BD60757AA0"; c.ThumbprintSHA256 != want {
				t.Errorf("thumbprint_sha256 = %s, want %s", c.ThumbprintSHA256, want)
			}
			if want := time.Date(2036, 11, 28, 15, 46, 31, 0, time.UTC); !c.NotAfter.Equal(want) {
				t.Errorf("not after = %v, want %v", c.NotAfter, want)
			}
		})
	}
}

func TestCertificatePEMRoundTrips(t *testing.T) {
	g := mustFixtures(t)[0]
	p := g.cert.PEM()
	block, rest := pem.Decode(p)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("PEM() = %q, want one CERTIFICATE block", p)
	}
	if !bytes.Equal(block.Bytes, g.cert.DER) {
		t.Error("PEM block does not hold the DER")
	}
	back, err := credential.ParseCertificate(p)
	if err != nil {
		t.Fatal(err)
	}
	if back.Thumbprint != g.cert.Thumbprint || back.ThumbprintSHA256 != g.cert.ThumbprintSHA256 ||
		!back.NotBefore.Equal(g.cert.NotBefore) || !back.NotAfter.Equal(g.cert.NotAfter) {
		t.Errorf("parsed back %+v, want %+v", back, g.cert)
	}
}

func TestParseCertificateRejects(t *testing.T) {
	g := mustFixtures(t)[0]
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: g.pkcs8})
	for name, data := range map[string][]byte{
		"empty":           nil,
		"garbage":         []byte("not a certificate"),
		"private key PEM": keyPEM,
		"truncated DER":   g.cert.DER[:len(g.cert.DER)/2],
	} {
		t.Run(name, func(t *testing.T) {
			_, err := credential.ParseCertificate(data)
			if err == nil {
				t.Fatal("no error")
			}
			if bytes.Contains([]byte(err.Error()), keyPEM[30:60]) {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
}
