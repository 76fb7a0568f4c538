package credential_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"golang.org/x/oauth2"

	"github.com/dynconn/dynconn/internal/credential"
)

const (
	tokenURL = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token"
	clientID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

func mustSigner(t testing.TB, g generated) *credential.Signer {
	t.Helper()
	s, err := credential.NewSigner(g.cert.DER, g.pkcs8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Destroy)
	return s
}

// decodeSegment reads one base64url JSON segment of a JWT, without any JWT library.
func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("segment %q: %v", seg, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("segment %s: %v", raw, err)
	}
	return m
}

func TestAssertionHeaderAndClaims(t *testing.T) {
	g := mustFixtures(t)[0]
	a, err := mustSigner(t, g).Assertion(tokenURL, clientID, t0)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		t.Fatalf("assertion has %d segments, want 3", len(parts))
	}

	sum := sha256.Sum256(g.cert.DER)
	wantHeader := map[string]any{
		"alg":      "PS256",
		"typ":      "JWT",
		"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:]),
	}
	if diff := cmp.Diff(wantHeader, decodeSegment(t, parts[0])); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}

	claims := decodeSegment(t, parts[1])
	jti, _ := claims["jti"].(string)
	if _, err := uuid.Parse(jti); err != nil {
		t.Errorf("jti %q is not a GUID: %v", jti, err)
	}
	delete(claims, "jti")
	now := float64(t0.Unix())
	wantClaims := map[string]any{
		"aud": []any{tokenURL},
		"iss": clientID,
		"sub": clientID,
		"nbf": now,
		"iat": now,
		"exp": now + 600,
	}
	if diff := cmp.Diff(wantClaims, claims); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
}

func TestAssertionsHaveDistinctIDs(t *testing.T) {
	s := mustSigner(t, mustFixtures(t)[0])
	seen := map[string]bool{}
	for range 3 {
		a, err := s.Assertion(tokenURL, clientID, t0)
		if err != nil {
			t.Fatal(err)
		}
		jti := decodeSegment(t, strings.Split(a, ".")[1])["jti"].(string)
		if seen[jti] {
			t.Fatalf("jti %s repeated", jti)
		}
		seen[jti] = true
	}
}

func TestAssertionVerifiesWithTheCertificate(t *testing.T) {
	g := mustFixtures(t)[0]
	a, err := mustSigner(t, g).Assertion(tokenURL, clientID, t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := credential.Verify(a, [][]byte{g.cert.DER}, tokenURL, clientID, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.Thumbprint != g.cert.Thumbprint {
		t.Errorf("verified with %s, want %s", got.Thumbprint, g.cert.Thumbprint)
	}
}

func TestNewSigner(t *testing.T) {
	f := mustFixtures(t)
	t.Run("PEM certificate is accepted", func(t *testing.T) {
		s, err := credential.NewSigner(f[0].cert.PEM(), f[0].pkcs8)
		if err != nil {
			t.Fatal(err)
		}
		s.Destroy()
	})
	t.Run("key of another certificate is ErrKeyMismatch", func(t *testing.T) {
		_, err := credential.NewSigner(f[0].cert.DER, f[1].pkcs8)
		if !errors.Is(err, credential.ErrKeyMismatch) {
			t.Fatalf("err = %v, want ErrKeyMismatch", err)
		}
	})
	t.Run("damaged key is an error that does not quote it", func(t *testing.T) {
		damaged := bytes.Clone(f[0].pkcs8)
		damaged[len(damaged)/2] ^= 0xff
		_, err := credential.NewSigner(f[0].cert.DER, damaged)
		if err == nil {
			t.Fatal("no error")
		}
		if msg := err.Error(); strings.Contains(msg, fmt.Sprintf("%x", damaged[40:56])) || strings.Contains(msg, f[0].key.D.String()[:20]) {
			t.Errorf("error quotes the key: %v", err)
		}
	})
	t.Run("not a certificate", func(t *testing.T) {
		if _, err := credential.NewSigner([]byte("junk"), f[0].pkcs8); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestSignerNeverPrintsTheKey(t *testing.T) {
	g := mustFixtures(t)[0]
	s := mustSigner(t, g)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("signer", "signer", s)
	printed := fmt.Sprintf("%v %+v %#v %s", s, s, s, s) + logs.String()

	secrets := map[string]string{
		"D in decimal": g.key.D.String(),
		"D in hex":     g.key.D.Text(16),
		"P in decimal": g.key.Primes[0].String(),
	}
	for name, v := range secrets {
		if strings.Contains(printed, v[:16]) {
			t.Errorf("printed output holds %s: %s", name, printed)
		}
	}
	if !strings.Contains(printed, "[redacted]") {
		t.Errorf("printed %q, want [redacted]", printed)
	}
}

func TestSignerDestroy(t *testing.T) {
	s, err := credential.NewSigner(mustFixtures(t)[0].cert.DER, mustFixtures(t)[0].pkcs8)
	if err != nil {
		t.Fatal(err)
	}
	s.Destroy()
	s.Destroy() // twice is fine
	if _, err := s.Assertion(tokenURL, clientID, t0); !errors.Is(err, credential.ErrDestroyed) {
		t.Fatalf("Assertion after Destroy: err = %v, want ErrDestroyed", err)
	}
}

// TestClientCredentialsSendsAssertionNotSecret runs a real x/oauth2 token
// request against a recording token endpoint and checks what went on the wire.
func TestClientCredentialsSendsAssertionNotSecret(t *testing.T) {
	g := mustFixtures(t)[0]
	var (
		mu       sync.Mutex
		form     url.Values
		authz    string
		requests int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		form, authz, requests = r.PostForm, r.Header.Get("Authorization"), requests+1
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"at-1"}`)
	}))
	defer srv.Close()

	assertion, err := mustSigner(t, g).Assertion(srv.URL, clientID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	scope := "https://contoso.crm.dynamics.com/.default"
	cfg := credential.ClientCredentials(srv.URL, clientID, []string{scope}, assertion)
	tok, err := cfg.Token(context.WithValue(t.Context(), oauth2.HTTPClient, srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "at-1" {
		t.Errorf("access token = %q, want at-1", tok.AccessToken)
	}

	mu.Lock()
	defer mu.Unlock()
	if requests != 1 {
		t.Errorf("%d token requests, want 1", requests)
	}
	want := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"scope":                 {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	if diff := cmp.Diff(want, form); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	if authz != "" {
		t.Errorf("Authorization header %q sent, want none", authz)
	}
	// What the endpoint received verifies as Entra would check it.
	if _, err := credential.Verify(form.Get("client_assertion"), [][]byte{g.cert.DER}, srv.URL, clientID, time.Now()); err != nil {
		t.Errorf("received assertion does not verify: %v", err)
	}
}
