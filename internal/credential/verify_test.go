package credential_test

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dynconn/dynconn/internal/credential"
)

// claims are good claims for tokenURL and clientID at t0.
func claims() jwt.MapClaims {
	return jwt.MapClaims{
		"aud": tokenURL,
		"iss": clientID,
		"sub": clientID,
		"jti": "0f6c4ad3-5b5e-4f43-9b8e-6d0a2f1c3e11",
		"nbf": t0.Unix(),
		"iat": t0.Unix(),
		"exp": t0.Add(10 * time.Minute).Unix(),
	}
}

func x5tS256(der []byte) string {
	s := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// sign builds a JWT the way a client other than ours might.
func sign(t *testing.T, method jwt.SigningMethod, header map[string]any, c jwt.MapClaims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	f := mustFixtures(t)
	own, other := f[0], f[1]
	uploaded := [][]byte{other.cert.DER, own.cert.DER}
	good := map[string]any{"x5t#S256": x5tS256(own.cert.DER)}
	with := func(k string, v any) jwt.MapClaims { c := claims(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := claims(); delete(c, k); return c }

	ours, err := mustSigner(t, own).Assertion(tokenURL, clientID, t0)
	if err != nil {
		t.Fatal(err)
	}
	sha1Sum := sha1.Sum(own.cert.DER)

	tests := []struct {
		name      string
		assertion string
		uploaded  [][]byte
		now       time.Time
		want      error // nil: verifies
	}{
		{name: "our assertion verifies", assertion: ours},
		{name: "PEM upload works", assertion: ours, uploaded: [][]byte{own.cert.PEM()}},
		{name: "legacy RS256 with x5t verifies",
			assertion: sign(t, jwt.SigningMethodRS256, map[string]any{"x5t": base64.RawURLEncoding.EncodeToString(sha1Sum[:])}, claims(), own.key)},
		{name: "one second before exp verifies", assertion: ours, now: t0.Add(10*time.Minute - time.Second)},

		{name: "certificate not uploaded", assertion: ours, uploaded: [][]byte{other.cert.DER}, want: credential.ErrKeyNotFound},
		{name: "nothing uploaded", assertion: ours, uploaded: [][]byte{}, want: credential.ErrKeyNotFound},
		{name: "thumbprint in standard base64 is an unknown key",
			assertion: sign(t, jwt.SigningMethodPS256, map[string]any{"x5t#S256": base64.StdEncoding.EncodeToString(sha1Sum[:]) + "+/"}, claims(), own.key),
			want:      credential.ErrKeyNotFound},
		{name: "uploaded certificate has expired", assertion: ours, now: own.cert.NotAfter, want: credential.ErrCertificateExpired},

		{name: "signed by another key under our thumbprint",
			assertion: sign(t, jwt.SigningMethodPS256, good, claims(), other.key), want: credential.ErrSignature},
		{name: "claims altered after signing", assertion: tamper(t, ours), want: credential.ErrSignature},

		{name: "expired assertion", assertion: ours, now: t0.Add(10 * time.Minute), want: credential.ErrTimeRange},
		{name: "before nbf", assertion: ours, now: t0.Add(-time.Second), want: credential.ErrTimeRange},

		{name: "wrong audience", assertion: sign(t, jwt.SigningMethodPS256, good, with("aud", "https://login.microsoftonline.com/other/oauth2/v2.0/token"), own.key), want: credential.ErrClaims},
		{name: "wrong issuer", assertion: sign(t, jwt.SigningMethodPS256, good, with("iss", "someone-else"), own.key), want: credential.ErrClaims},
		{name: "wrong subject", assertion: sign(t, jwt.SigningMethodPS256, good, with("sub", "someone-else"), own.key), want: credential.ErrClaims},
		{name: "no jti", assertion: sign(t, jwt.SigningMethodPS256, good, without("jti"), own.key), want: credential.ErrClaims},
		{name: "no iat", assertion: sign(t, jwt.SigningMethodPS256, good, without("iat"), own.key), want: credential.ErrClaims},
		{name: "no exp", assertion: sign(t, jwt.SigningMethodPS256, good, without("exp"), own.key), want: credential.ErrClaims},
		{name: "no nbf", assertion: sign(t, jwt.SigningMethodPS256, good, without("nbf"), own.key), want: credential.ErrClaims},
		{name: "iat in the future", assertion: sign(t, jwt.SigningMethodPS256, good, with("iat", t0.Add(time.Minute).Unix()), own.key), want: credential.ErrClaims},

		{name: "no thumbprint header", assertion: sign(t, jwt.SigningMethodPS256, nil, claims(), own.key), want: credential.ErrMalformed},
		{name: "HS256", assertion: sign(t, jwt.SigningMethodHS256, good, claims(), []byte("a shared secret of 32 bytes....")), want: credential.ErrMalformed},
		{name: "alg none", assertion: sign(t, jwt.SigningMethodNone, good, claims(), jwt.UnsafeAllowNoneSignatureType), want: credential.ErrMalformed},
		{name: "not a JWT", assertion: "not.a.jwt", want: credential.ErrMalformed},
		{name: "empty", assertion: "", want: credential.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, now := uploaded, t0.Add(time.Second)
			if tt.uploaded != nil {
				up = tt.uploaded
			}
			if !tt.now.IsZero() {
				now = tt.now
			}
			got, err := credential.Verify(tt.assertion, up, tokenURL, clientID, now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				if got.Thumbprint != own.cert.Thumbprint {
					t.Errorf("signer thumbprint = %s, want %s", got.Thumbprint, own.cert.Thumbprint)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, other := range []error{credential.ErrMalformed, credential.ErrKeyNotFound, credential.ErrCertificateExpired,
				credential.ErrSignature, credential.ErrTimeRange, credential.ErrClaims} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("err = %v is also %v", err, other)
				}
			}
			if got.DER != nil {
				t.Errorf("returned a certificate with the error")
			}
		})
	}
}

func TestVerifyKeyNotFoundNamesTheThumbprint(t *testing.T) {
	f := mustFixtures(t)
	a, err := mustSigner(t, f[0]).Assertion(tokenURL, clientID, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = credential.Verify(a, [][]byte{f[1].cert.DER}, tokenURL, clientID, t0)
	var nf *credential.KeyNotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want a *KeyNotFoundError", err)
	}
	if nf.Thumbprint != f[0].cert.ThumbprintSHA256 {
		t.Errorf("thumbprint = %s, want %s", nf.Thumbprint, f[0].cert.ThumbprintSHA256)
	}
	if strings.Contains(err.Error(), a) {
		t.Error("error quotes the assertion")
	}
}

func TestVerifyReportsAnUploadThatDoesNotParse(t *testing.T) {
	f := mustFixtures(t)
	a, err := mustSigner(t, f[0]).Assertion(tokenURL, clientID, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = credential.Verify(a, [][]byte{[]byte("junk"), f[0].cert.DER}, tokenURL, clientID, t0)
	if err == nil || errors.Is(err, credential.ErrKeyNotFound) {
		t.Fatalf("err = %v, want a parse error", err)
	}
}

// tamper changes the assertion's subject and keeps the old signature.
func tamper(t *testing.T, assertion string) string {
	t.Helper()
	parts := strings.Split(assertion, ".")
	c := decodeSegment(t, parts[1])
	c["sub"] = "someone-else"
	// Only the payload segment is taken from this token: the signature stays the one made over the old payload.
	tok := jwt.NewWithClaims(jwt.SigningMethodPS256, jwt.MapClaims(c))
	unsigned, err := tok.SigningString()
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + strings.Split(unsigned, ".")[1] + "." + parts[2]
}
