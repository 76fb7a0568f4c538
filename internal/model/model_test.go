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
