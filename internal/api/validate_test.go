package api

import "testing"

func TestDefaultName(t *testing.T) {
	for in, want := range map[string]string{
		"https://contoso.crm.dynamics.com":      "contoso",
		"https://contoso.api.crm4.dynamics.com": "contoso",
		"http://127.0.0.1:8443":                 "127.0.0.1:8443",
		"http://[::1]:8443":                     "[::1]:8443",
	} {
		if got := defaultName(in); got != want {
			t.Errorf("defaultName(%q) = %q, want %q", in, got, want)
		}
	}
}
