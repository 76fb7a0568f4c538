package model

import (
	"strings"
	"testing"
	"time"
)

func TestSecretState(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	day := 24 * time.Hour
	tests := []struct {
		name             string
		expires, expired *time.Time
		want             SecretState
	}{
		{"no expiry given", nil, nil, SecretUnknown},
		{"far away", at(31 * day), nil, SecretValid},
		{"exactly 30 days away", at(30 * day), nil, SecretExpiring},
		{"tomorrow", at(day), nil, SecretExpiring},
		{"now", at(0), nil, SecretExpired},
		{"past", at(-day), nil, SecretExpired},
		{"Microsoft said expired, date far away", at(90 * day), at(-time.Hour), SecretExpired},
		{"Microsoft said expired, no date", nil, at(-time.Hour), SecretExpired},
	}
	for _, tt := range tests {
		c := Connection{SecretExpiresAt: tt.expires, SecretExpiredAt: tt.expired}
		if got := c.SecretState(now); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestParseGUID(t *testing.T) {
	const id = "3f2b5c1e-8d4a-4c6b-9e2f-1a2b3c4d5e6f"
	for in, want := range map[string]string{
		id:                              id,
		strings.ToUpper(id):             id,
		"{" + id + "}":                  id,
		" \n" + id + "\t":               id,
		"":                              "",
		"{" + id:                        "",
		"(" + id + ")":                  "",
		"urn:uuid:" + id:                "",
		strings.ReplaceAll(id, "-", ""): "",
		id[:35] + "g":                   "",
		id[:8] + "+" + id[9:]:           "",
		"-" + id[1:]:                    "",
		id + "0":                        "",
	} {
		got, ok := ParseGUID(in)
		if got != want || ok != (want != "") {
			t.Errorf("ParseGUID(%q) = %q, %t; want %q", in, got, ok, want)
		}
	}
}

func TestCertificateState(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tt := range []struct {
		notAfter time.Duration
		want     SecretState
	}{
		{31 * day, SecretValid}, {30 * day, SecretExpiring}, {day, SecretExpiring}, {0, SecretExpired}, {-day, SecretExpired},
	} {
		c := Connection{CredentialType: CredentialCertificate, Certificate: &Certificate{NotAfter: now.Add(tt.notAfter)}}
		if got := c.Certificate.State(now); got != tt.want {
			t.Errorf("not after now%+v: %s, want %s", tt.notAfter, got, tt.want)
		}
		if got := c.CredentialExpiresAt(); got == nil || !got.Equal(now.Add(tt.notAfter)) {
			t.Errorf("CredentialExpiresAt = %v", got)
		}
	}
	expires := now.Add(day)
	if got := (Connection{SecretExpiresAt: &expires}).CredentialExpiresAt(); got != &expires {
		t.Error("a secret connection's credential does not expire with its secret")
	}
}

func TestCredentialFingerprint(t *testing.T) {
	tenant := "11111111-1111-1111-1111-111111111111"
	base := Connection{InstanceURL: "https://a.crm.dynamics.com", ClientID: "c", CredentialType: CredentialClientSecret,
		Secret: SealedSecret{Ciphertext: []byte("ct"), WrappedDEK: []byte("dek"), KEKID: "k1"}, Name: "a", Version: 3}
	same := base
	same.Name, same.Version, same.Status = "renamed", 9, StatusConnected
	same.Secret.WrappedDEK, same.Secret.KEKID = []byte("rewrapped"), "k2" // key rotation
	if base.CredentialFingerprint() != same.CredentialFingerprint() {
		t.Error("the fingerprint changed with the name, version, status or key rotation")
	}
	for name, change := range map[string]func(*Connection){
		"instance":    func(c *Connection) { c.InstanceURL = "https://b.crm.dynamics.com" },
		"client":      func(c *Connection) { c.ClientID = "d" },
		"tenant":      func(c *Connection) { c.TenantID = &tenant },
		"secret":      func(c *Connection) { c.Secret.Ciphertext = []byte("new") },
		"certificate": func(c *Connection) { c.Certificate = &Certificate{ThumbprintSHA256: "AB"} },
	} {
		c := base
		change(&c)
		if c.CredentialFingerprint() == base.CredentialFingerprint() {
			t.Errorf("a new %s keeps the fingerprint", name)
		}
	}
}
