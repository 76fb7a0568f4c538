package main

import (
	"maps"
	"strings"
	"testing"
	"time"
)

// TestConfigAuthRules checks that loadConfig applies auth's own rules, so a
// JWKS URL that the verifier would refuse is reported with the other
// configuration errors instead of after migrations have run.
func TestConfigAuthRules(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // "" for no error
	}{
		{"hs256", map[string]string{"AUTH_HS256_SECRET": strings.Repeat("s", 32)}, ""},
		{"https jwks", map[string]string{"AUTH_JWKS_URL": "https://idp.example/jwks", "AUTH_AUDIENCE": "dynconn"}, ""},
		{"http jwks on loopback", map[string]string{"AUTH_JWKS_URL": "http://127.0.0.1:9000/jwks", "AUTH_AUDIENCE": "dynconn"}, ""},
		{"jwks without audience", map[string]string{"AUTH_JWKS_URL": "https://idp.example/jwks"}, "AUTH_AUDIENCE: required with AUTH_JWKS_URL"},
		{"http jwks elsewhere", map[string]string{"AUTH_JWKS_URL": "http://idp.example/jwks"}, "AUTH_JWKS_URL: must be an https URL"},
		{"neither", nil, "AUTH_JWKS_URL and AUTH_HS256_SECRET: set one of them"},
		{"both", map[string]string{"AUTH_JWKS_URL": "https://idp.example/jwks", "AUTH_HS256_SECRET": strings.Repeat("s", 32)},
			"AUTH_JWKS_URL and AUTH_HS256_SECRET: set only one of them"},
		{"short secret", map[string]string{"AUTH_HS256_SECRET": "short"}, "AUTH_HS256_SECRET: must be at least 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// LISTEN_ADDR is wrong too: its error must come with auth's.
			env := map[string]string{"DATABASE_URL": "postgres://localhost/dynconn", "LISTEN_ADDR": "nope"}
			maps.Copy(env, tt.env)
			_, err := loadConfig(func(k string) string { return env[k] })
			if err == nil || !strings.Contains(err.Error(), "LISTEN_ADDR") {
				t.Fatalf("loadConfig = %v, want the LISTEN_ADDR error", err)
			}
			got := strings.Contains(err.Error(), "AUTH_")
			if tt.want == "" && got || tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadConfig error:\n%v\nwant auth error %q", err, tt.want)
			}
		})
	}
}

func TestConfigCertificateValidity(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://localhost/dynconn", "AUTH_HS256_SECRET": strings.Repeat("s", 32)}
	for value, want := range map[string]time.Duration{"": 8760 * time.Hour, "720h": 720 * time.Hour, "17520h": 17520 * time.Hour,
		"30m": 30 * time.Minute, "1y": 0, "0s": 0, "-24h": 0, "50000h": 0} {
		env := maps.Clone(base)
		env["CERTIFICATE_VALIDITY"] = value
		cfg, err := loadConfig(func(k string) string { return env[k] })
		switch {
		case want == 0 && (err == nil || !strings.Contains(err.Error(), "CERTIFICATE_VALIDITY")):
			t.Errorf("%q: error %v, want one naming CERTIFICATE_VALIDITY", value, err)
		case want != 0 && (err != nil || cfg.CertificateValidity != want):
			t.Errorf("%q: %v, %v; want %v", value, cfg.CertificateValidity, err, want)
		}
	}
}

// TestRecheckConfig: RECHECK_INTERVAL is any Go duration (24h by default, 0
// turns re-checks off, seconds are accepted for tests and demos);
// RECHECK_WORKERS a positive number (10 by default).
func TestRecheckConfig(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://localhost/dynconn", "AUTH_HS256_SECRET": strings.Repeat("s", 32)}
	tests := []struct {
		interval, workers string
		want              time.Duration
		wantWorkers       int
		wantErr           string
	}{
		{"", "", 24 * time.Hour, 10, ""},
		{"0", "3", 0, 3, ""},
		{"3s", "", 3 * time.Second, 10, ""},
		{"90m", "", 90 * time.Minute, 10, ""},
		{"-1h", "", 0, 0, "RECHECK_INTERVAL"},
		{"daily", "", 0, 0, "RECHECK_INTERVAL"},
		{"", "-2", 0, 0, "RECHECK_WORKERS"},
	}
	for _, tt := range tests {
		env := maps.Clone(base)
		env["RECHECK_INTERVAL"], env["RECHECK_WORKERS"] = tt.interval, tt.workers
		cfg, err := loadConfig(func(k string) string { return env[k] })
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q/%q: error %v, want one naming %s", tt.interval, tt.workers, err, tt.wantErr)
			}
		case err != nil || cfg.RecheckInterval != tt.want || cfg.RecheckWorkers != tt.wantWorkers:
			t.Errorf("%q/%q: %v, %d, %v; want %v, %d", tt.interval, tt.workers, cfg.RecheckInterval, cfg.RecheckWorkers, err, tt.want, tt.wantWorkers)
		}
	}
}
