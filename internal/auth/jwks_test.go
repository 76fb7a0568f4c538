package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

// jwksAudience is the audience of the JWKS tests' tokens (AUTH_AUDIENCE).
const jwksAudience = "dynconn"

// keyServer is a JWKS endpoint whose key set a test can change.
type keyServer struct {
	*httptest.Server
	mu       sync.Mutex
	keys     []jwkset.JWKMarshal
	requests atomic.Int64
	fail     atomic.Bool
}

func newKeyServer(t *testing.T, keys ...testKey) *keyServer {
	t.Helper()
	ks := &keyServer{}
	ks.set(t, keys...)
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.requests.Add(1)
		if ks.fail.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		ks.mu.Lock()
		body, err := json.Marshal(jwkset.JWKSMarshal{Keys: ks.keys})
		ks.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(ks.Close)
	return ks
}

// set replaces the served key set with the public halves of keys.
func (ks *keyServer) set(t *testing.T, keys ...testKey) {
	t.Helper()
	var ms []jwkset.JWKMarshal
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: jwkset.ALG(k.method.Alg()), USE: k.use},
		})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, jwk.Marshal())
	}
	ks.mu.Lock()
	ks.keys = ms
	ks.mu.Unlock()
}

// testKey is a signing key with its kid.
type testKey struct {
	kid    string
	method jwt.SigningMethod
	signer crypto.Signer
	use    jwkset.USE
}

func (k testKey) public() crypto.PublicKey { return k.signer.Public() }

// sign returns a token with valid claims signed by k.
func (k testKey) sign(t *testing.T, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, claims(jwt.MapClaims{"aud": jwksAudience}))
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rsaKey(t *testing.T, kid string) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, method: jwt.SigningMethodRS256, signer: k, use: jwkset.UseSig}
}

func ecKey(t *testing.T, kid string) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// No "use": many identity providers leave it out.
	return testKey{kid: kid, method: jwt.SigningMethodES256, signer: k}
}

func newJWKSVerifier(t *testing.T, ctx context.Context, url string, opts jwksOptions) *Verifier {
	t.Helper()
	v, err := newVerifier(ctx, Config{JWKSURL: url, Audience: jwksAudience}, opts)
	if err != nil {
		t.Fatalf("newVerifier: %v", err)
	}
	return v
}

func mustVerify(t *testing.T, v *Verifier, token string) {
	t.Helper()
	got, err := v.Verify(t.Context(), "Bearer "+token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if want := (Principal{Account: "acct-1", Subject: "user-1"}); !cmp.Equal(got, want) {
		t.Fatalf("principal = %+v, want %+v", got, want)
	}
}

func TestVerifyJWKS(t *testing.T) {
	t.Parallel()
	rsa1, ec1 := rsaKey(t, "rsa-1"), ecKey(t, "ec-1")
	stranger := rsaKey(t, "stranger")
	encKey := rsaKey(t, "enc-1")
	encKey.use = jwkset.UseEnc
	ks := newKeyServer(t, rsa1, ec1, encKey)
	v := newJWKSVerifier(t, t.Context(), ks.URL, defaultJWKSOptions)

	t.Run("RS256 accepted", func(t *testing.T) { mustVerify(t, v, rsa1.sign(t, "rsa-1")) })
	t.Run("ES256 accepted", func(t *testing.T) { mustVerify(t, v, ec1.sign(t, "ec-1")) })

	refused := []struct {
		name, token, reason string
	}{
		{"unknown kid", stranger.sign(t, "stranger"), "unknown signing key"},
		{"known kid signed by another key", stranger.sign(t, "rsa-1"), "invalid token signature"},
		{"RS256 token naming an EC key", rsa1.sign(t, "ec-1"), "unknown signing key"},
		{"key marked for encryption", encKey.sign(t, "enc-1"), "unknown signing key"},
		{"HS256 with a JWKS", signHS(t, testSecret, claims(nil)), "signing algorithm not allowed"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), "Bearer "+tt.token)
			wantRefused(t, err, tt.token, tt.reason)
		})
	}
}

func TestJWKSRotatedKeyPickedUp(t *testing.T) {
	t.Parallel()
	old, next := rsaKey(t, "old"), ecKey(t, "next")
	ks := newKeyServer(t, old)
	// The periodic refresh is out of the way: only the unknown kid refreshes.
	opts := defaultJWKSOptions
	opts.refreshInterval = time.Hour
	v := newJWKSVerifier(t, t.Context(), ks.URL, opts)
	mustVerify(t, v, old.sign(t, "old"))

	ks.set(t, next) // the provider rotates and revokes the old key
	mustVerify(t, v, next.sign(t, "next"))

	// The refresh that found "next" also dropped "old".
	tok := old.sign(t, "old")
	_, err := v.Verify(t.Context(), "Bearer "+tok)
	wantRefused(t, err, tok, "unknown signing key")
}

func TestJWKSPeriodicRefreshDropsRevokedKey(t *testing.T) {
	t.Parallel()
	k := rsaKey(t, "k")
	ks := newKeyServer(t, k)
	opts := defaultJWKSOptions
	opts.refreshInterval = 20 * time.Millisecond
	v := newJWKSVerifier(t, t.Context(), ks.URL, opts)
	tok := k.sign(t, "k")
	mustVerify(t, v, tok)

	ks.set(t) // revoked: the set is now empty
	// Poll: the refresh happens on its own schedule.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Verify(t.Context(), "Bearer "+tok)
		if err != nil {
			wantRefused(t, err, tok, "unknown signing key")
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked key still accepted after 10s of 20ms refreshes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWKSUnavailableAtStart(t *testing.T) {
	t.Parallel()
	ks := newKeyServer(t)
	ks.fail.Store(true)
	_, err := NewVerifier(t.Context(), Config{JWKSURL: ks.URL, Audience: jwksAudience})
	if err == nil {
		t.Fatal("NewVerifier succeeded with a failing JWKS endpoint")
	}
}

func TestJWKSRefreshStopsWithContext(t *testing.T) {
	// Not parallel: goleak looks at every goroutine in the process.
	ignore := goleak.IgnoreCurrent()
	k := rsaKey(t, "k")
	ks := newKeyServer(t, k)
	ctx, cancel := context.WithCancel(t.Context())
	opts := defaultJWKSOptions
	opts.refreshInterval = 10 * time.Millisecond
	v := newJWKSVerifier(t, ctx, ks.URL, opts)
	mustVerify(t, v, k.sign(t, "k"))
	// Let the refresh goroutine run at least once more.
	for start := ks.requests.Load(); ks.requests.Load() == start; {
		time.Sleep(time.Millisecond)
	}

	cancel()
	ks.Close()
	goleak.VerifyNone(t, ignore)
}
