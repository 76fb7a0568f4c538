package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/secret"
)

const testSecret = "0123456789abcdef0123456789abcdef-devtoken"

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestRunPrintsTokenTheVerifierAccepts(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"devtoken", "-account", "acct-7", "-sub", "alice"},
		env(map[string]string{"AUTH_HS256_SECRET": testSecret}), &out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	v, err := auth.NewVerifier(t.Context(), auth.Config{HS256Secret: secret.String(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(t.Context(), "Bearer "+strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.Account != "acct-7" || p.Subject != "alice" || len(p.Scopes) != 0 {
		t.Errorf("principal = %+v, want acct-7, alice and no scope", p)
	}
}

func TestRunGrantsScopes(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"devtoken", "-sub", "worker", "-scope", "connections:token other"},
		env(map[string]string{"AUTH_HS256_SECRET": testSecret}), &out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	v, err := auth.NewVerifier(t.Context(), auth.Config{HS256Secret: secret.String(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(t.Context(), "Bearer "+strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !p.HasScope(auth.ScopeToken) || !p.HasScope("other") || p.Subject != "worker" {
		t.Errorf("principal = %+v, want worker with connections:token and other", p)
	}
}

func TestRunDefaultsAndExpiredToken(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"devtoken", "-ttl", "-1h"}, env(map[string]string{"AUTH_HS256_SECRET": testSecret}), &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	v, err := auth.NewVerifier(t.Context(), auth.Config{HS256Secret: secret.String(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(t.Context(), "Bearer "+strings.TrimSpace(out.String()))
	var ue *auth.UnauthorizedError
	if !errors.As(err, &ue) || ue.Reason != "token expired" {
		t.Fatalf("Verify error = %v, want token expired", err)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no secret", []string{"devtoken"}, nil, "AUTH_HS256_SECRET is not set"},
		{"short secret", []string{"devtoken"}, map[string]string{"AUTH_HS256_SECRET": "short"}, "at least 32 bytes"},
		{"stray argument", []string{"devtoken", "acct"}, map[string]string{"AUTH_HS256_SECRET": testSecret}, "unexpected argument"},
		{"unknown flag", []string{"devtoken", "-nope"}, map[string]string{"AUTH_HS256_SECRET": testSecret}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args, env(tt.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
