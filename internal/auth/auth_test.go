package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/dynconn/dynconn/internal/secret"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

func newHSVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	cfg.HS256Secret = testSecret
	v, err := NewVerifier(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func signHS(t *testing.T, key string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claims returns valid claims with the given changes; a nil value deletes
// the claim.
func claims(changes jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"account_id": "acct-1",
		"sub":        "user-1",
		"iat":        now.Unix(),
		"exp":        now.Add(time.Hour).Unix(),
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// wantRefused checks that err is an unauthorized error with the reason, and
// that the token does not appear in it.
func wantRefused(t *testing.T, err error, token, reason string) {
	t.Helper()
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("error = %v, want ErrUnauthorized", err)
	}
	var ue *UnauthorizedError
	if !errors.As(err, &ue) {
		t.Fatalf("error %T is not *UnauthorizedError", err)
	}
	if ue.Reason != reason {
		t.Errorf("reason = %q, want %q", ue.Reason, reason)
	}
	if token != "" && strings.Contains(err.Error(), token) {
		t.Errorf("error %q contains the token", err)
	}
}

func TestVerifyHS256(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(nil)).SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs384, err := jwt.NewWithClaims(jwt.SigningMethodHS384, claims(nil)).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	valid, err := NewToken([]byte(testSecret), "acct-1", "user-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := NewToken([]byte(testSecret), "acct-1", "user-1", -5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	scoped, err := NewToken([]byte(testSecret), "acct-1", "user-1", time.Hour, ScopeToken, "other")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		cfg    Config
		header string
		want   Principal
		reason string // empty: accepted
	}{
		{name: "token from NewToken is accepted", header: "Bearer " + valid, want: Principal{Account: "acct-1", Subject: "user-1"}},
		{name: "NewToken's scopes", header: "Bearer " + scoped,
			want: Principal{Account: "acct-1", Subject: "user-1", Scopes: []string{ScopeToken, "other"}}},
		{name: "scp as a string", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"scp": "a  connections:token"})),
			want: Principal{Account: "acct-1", Subject: "user-1", Scopes: []string{"a", ScopeToken}}},
		{name: "scp as an array", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"scp": []string{"a", ScopeToken}})),
			want: Principal{Account: "acct-1", Subject: "user-1", Scopes: []string{"a", ScopeToken}}},
		{name: "scope wins over scp", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"scope": "a", "scp": ScopeToken})),
			want: Principal{Account: "acct-1", Subject: "user-1", Scopes: []string{"a"}}},
		{name: "scheme is case-insensitive", header: "bearer  " + valid, want: Principal{Account: "acct-1", Subject: "user-1"}},
		{name: "expired within leeway is accepted",
			header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()})),
			want:   Principal{Account: "acct-1", Subject: "user-1"}},
		{name: "custom account claim", cfg: Config{AccountClaim: "org"},
			header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"org": "org-9"})),
			want:   Principal{Account: "org-9", Subject: "user-1"}},
		{name: "issuer and audience match", cfg: Config{Issuer: "https://idp.example", Audience: "dynconn"},
			header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"iss": "https://idp.example", "aud": []string{"other", "dynconn"}})),
			want:   Principal{Account: "acct-1", Subject: "user-1"}},

		{name: "no header", header: "", reason: "missing bearer token"},
		{name: "empty bearer", header: "Bearer ", reason: "missing bearer token"},
		{name: "basic scheme", header: "Basic dXNlcjpwYXNz", reason: "authorization header must use the Bearer scheme"},
		{name: "token without scheme", header: valid, reason: "authorization header must use the Bearer scheme"},
		{name: "huge token", header: "Bearer " + strings.Repeat("a", maxTokenLen+1), reason: "token too long"},
		{name: "malformed", header: "Bearer not.a.jwt", reason: "malformed token"},
		{name: "expired", header: "Bearer " + expired, reason: "token expired"},
		{name: "wrong secret", header: "Bearer " + signHS(t, testSecret+"x", claims(nil)), reason: "invalid token signature"},
		{name: "alg none", header: "Bearer " + none, reason: "signing algorithm not allowed"},
		{name: "alg HS384", header: "Bearer " + hs384, reason: "signing algorithm not allowed"},
		{name: "alg RS256", header: "Bearer " + rs256, reason: "signing algorithm not allowed"},
		{name: "missing exp", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"exp": nil})), reason: "missing exp claim"},
		{name: "not valid yet",
			header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"nbf": now.Add(10 * time.Minute).Unix()})),
			reason: "token not valid yet"},
		{name: "issued in the future",
			header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"iat": now.Add(10 * time.Minute).Unix()})),
			reason: "token issued in the future"},
		{name: "missing account", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"account_id": nil})), reason: "missing account_id claim"},
		{name: "empty account", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"account_id": ""})), reason: "missing account_id claim"},
		{name: "numeric account", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"account_id": 42})), reason: "missing account_id claim"},
		{name: "long account",
			header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"account_id": strings.Repeat("a", maxIdentityLen+1)})),
			reason: "account_id claim too long"},
		{name: "NUL in account", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"account_id": "acct\x00-1"})),
			reason: "account_id claim has control characters"},
		{name: "line break in account", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"account_id": "acct-1\n"})),
			reason: "account_id claim has control characters"},
		{name: "NUL in sub", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"sub": "user\x00"})),
			reason: "sub claim has control characters"},
		{name: "long sub", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"sub": strings.Repeat("u", maxIdentityLen+1)})),
			reason: "sub claim too long"},
		{name: "custom account claim missing", cfg: Config{AccountClaim: "org"}, header: "Bearer " + valid, reason: "missing org claim"},
		{name: "missing sub", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"sub": nil})), reason: "missing sub claim"},
		{name: "empty sub", header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"sub": ""})), reason: "missing sub claim"},
		{name: "wrong issuer", cfg: Config{Issuer: "https://idp.example"},
			header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"iss": "https://evil.example"})),
			reason: "wrong token issuer"},
		{name: "issuer required when configured", cfg: Config{Issuer: "https://idp.example"}, header: "Bearer " + valid, reason: "missing iss claim"},
		{name: "wrong audience", cfg: Config{Audience: "dynconn"},
			header: "Bearer " + signHS(t, testSecret, claims(jwt.MapClaims{"aud": "other"})),
			reason: "wrong token audience"},
		{name: "audience required when configured", cfg: Config{Audience: "dynconn"}, header: "Bearer " + valid, reason: "missing aud claim"},
		{name: "issuer and audience both missing", cfg: Config{Issuer: "https://idp.example", Audience: "dynconn"},
			header: "Bearer " + valid, reason: "missing iss claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newHSVerifier(t, tt.cfg)
			got, err := v.Verify(t.Context(), tt.header)
			if tt.reason != "" {
				token := strings.TrimSpace(strings.TrimPrefix(tt.header, "Bearer "))
				wantRefused(t, err, token, tt.reason)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !cmp.Equal(got, tt.want) {
				t.Errorf("principal = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNewVerifierConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"neither", Config{}, "AUTH_JWKS_URL and AUTH_HS256_SECRET: set one of them"},
		{"both", Config{JWKSURL: "https://idp.example/jwks", HS256Secret: testSecret}, "AUTH_JWKS_URL and AUTH_HS256_SECRET: set only one"},
		{"short secret", Config{HS256Secret: secret.String(strings.Repeat("x", MinHS256SecretLen-1))}, "AUTH_HS256_SECRET: must be at least 32 bytes"},
		{"http jwks off loopback", Config{JWKSURL: "http://idp.example/jwks", Audience: "dynconn"}, "AUTH_JWKS_URL: must be an https URL"},
		{"jwks not a url", Config{JWKSURL: "idp.example/jwks", Audience: "dynconn"}, "AUTH_JWKS_URL: must be an https URL"},
		{"jwks ftp", Config{JWKSURL: "ftp://127.0.0.1/jwks", Audience: "dynconn"}, "AUTH_JWKS_URL: must be an https URL"},
		{"jwks without audience", Config{JWKSURL: "https://idp.example/jwks", Issuer: "https://idp.example"}, "AUTH_AUDIENCE: required with AUTH_JWKS_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if errs := tt.cfg.Validate(); len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) {
				t.Errorf("Validate() = %v, want one error containing %q", errs, tt.want)
			}
			_, err := NewVerifier(t.Context(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

func TestValidateAcceptsGoodConfigs(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{HS256Secret: testSecret},
		{JWKSURL: "https://idp.example/.well-known/jwks.json", Audience: "dynconn"},
		{JWKSURL: "http://127.0.0.1:8080/jwks", Audience: "dynconn"},
		{JWKSURL: "http://localhost:8080/jwks", Audience: "dynconn"},
		{JWKSURL: "http://[::1]:8080/jwks", Audience: "dynconn"},
	} {
		if errs := cfg.Validate(); len(errs) != 0 {
			t.Errorf("Validate(%q) = %v, want none", cfg.JWKSURL, errs)
		}
	}
}

func TestNewTokenRefusesBadInput(t *testing.T) {
	t.Parallel()
	for name, call := range map[string]func() (string, error){
		"short secret":  func() (string, error) { return NewToken([]byte("short"), "a", "s", time.Hour) },
		"empty account": func() (string, error) { return NewToken([]byte(testSecret), "", "s", time.Hour) },
		"empty subject": func() (string, error) { return NewToken([]byte(testSecret), "a", "", time.Hour) },
		"zero ttl":      func() (string, error) { return NewToken([]byte(testSecret), "a", "s", 0) },
	} {
		if tok, err := call(); err == nil {
			t.Errorf("%s: NewToken = %q, want an error", name, tok)
		}
	}
}
