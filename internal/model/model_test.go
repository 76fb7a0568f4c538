package model

import (
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
