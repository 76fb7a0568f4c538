package webhook_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dynconn/dynconn/internal/webhook"
)

func TestCheckURL(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", webhook.MaxURLLength-len("https://example.com/"))
	tests := []struct {
		url      string
		loopback bool
		want     string // "" accepted, else the code
	}{
		{"https://example.com/webhooks", false, ""},
		{"https://hooks.example.com:443/x?token=1", false, ""},
		{"https://example.com./x", false, ""},
		{"https://52.96.0.10/hook", false, ""},
		{long, false, ""},
		{long + "a", false, "too_long"},
		{"http://example.com/webhooks", false, "not_https"},
		{"http://example.com/webhooks", true, "not_https"},
		{"ftp://example.com/", false, "not_https"},
		{"https://example.com:8443/x", false, "has_port"},
		{"https://user:pass@example.com/x", false, "has_userinfo"},
		{"https://user@example.com/x", false, "has_userinfo"},
		{"https://127.0.0.1/x", false, "not_public"},
		{"http://127.0.0.1:9000/x", false, "not_public"},
		{"https://[::1]/x", false, "not_public"},
		{"https://localhost/x", false, "not_public"},
		{"https://api.localhost/x", false, "not_public"},
		{"https://10.1.2.3/x", false, "not_public"},
		{"https://192.168.0.10/x", true, "not_public"},
		{"https://169.254.169.254/latest/meta-data", false, "not_public"},
		{"https://[fe80::1]/x", false, "not_public"},
		{"https://[::ffff:10.0.0.1]/x", false, "not_public"},
		{"https://intranet/x", false, "not_public"},
		{"example.com/webhooks", false, "invalid_url"},
		{"https:///path", false, "invalid_url"},
		{"", false, "invalid_url"},
		{"http://127.0.0.1:9000/x", true, ""},
		{"https://127.0.0.1:9443/x", true, ""},
		{"http://[::1]:9000/x", true, ""},
		{"http://localhost:9000/x", true, "not_public"},
	}
	for _, tt := range tests {
		err := webhook.CheckURL(tt.url, tt.loopback)
		var ue *webhook.URLError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckURL(%.60q, loopback=%v) = %v, want accepted", tt.url, tt.loopback, err)
		case tt.want != "" && err == nil:
			t.Errorf("CheckURL(%.60q, loopback=%v) accepted it, want %s", tt.url, tt.loopback, tt.want)
		case tt.want != "" && (!errors.As(err, &ue) || ue.Code != tt.want || ue.Message == ""):
			t.Errorf("CheckURL(%.60q, loopback=%v) = %#v, want code %s", tt.url, tt.loopback, err, tt.want)
		}
	}
}
