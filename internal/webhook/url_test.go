package webhook_test

import (
	"strings"
	"testing"

	"github.com/dynconn/dynconn/internal/webhook"
)

func TestCheckURL(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", webhook.MaxURLLength-len("https://example.com/"))
	tests := []struct {
		url      string
		loopback bool
		want     string // "" accepted, else a word of the message
	}{
		{"https://example.com/webhooks", false, ""},
		{"https://hooks.example.com:443/x?token=1", false, ""},
		{"https://example.com./x", false, ""},
		{"https://52.96.0.10/hook", false, ""},
		{long, false, ""},
		{long + "a", false, "2048"},
		{"http://example.com/webhooks", false, "https"},
		{"http://example.com/webhooks", true, "https"},
		{"ftp://example.com/", false, "https"},
		{"https://example.com:8443/x", false, "443"},
		{"https://user:pass@example.com/x", false, "user name"},
		{"https://user@example.com/x", false, "user name"},
		{"https://127.0.0.1/x", false, "loopback"},
		{"http://127.0.0.1:9000/x", false, "loopback"},
		{"https://[::1]/x", false, "loopback"},
		{"https://localhost/x", false, "loopback"},
		{"https://api.localhost/x", false, "loopback"},
		{"https://10.1.2.3/x", false, "private"},
		{"https://192.168.0.10/x", true, "private"},
		{"https://169.254.169.254/latest/meta-data", false, "link-local"},
		{"https://[fe80::1]/x", false, "link-local"},
		{"https://[::ffff:10.0.0.1]/x", false, "private"},
		{"https://intranet/x", false, "fully qualified"},
		{"example.com/webhooks", false, "absolute"},
		{"https:///path", false, "absolute"},
		{"", false, "absolute"},
		{"http://127.0.0.1:9000/x", true, ""},
		{"https://127.0.0.1:9443/x", true, ""},
		{"http://[::1]:9000/x", true, ""},
		{"http://localhost:9000/x", true, "loopback"},
	}
	for _, tt := range tests {
		err := webhook.CheckURL(tt.url, tt.loopback)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckURL(%.60q, loopback=%v) = %v, want accepted", tt.url, tt.loopback, err)
		case tt.want != "" && err == nil:
			t.Errorf("CheckURL(%.60q, loopback=%v) accepted it, want %q", tt.url, tt.loopback, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("CheckURL(%.60q, loopback=%v) = %v, want a message with %q", tt.url, tt.loopback, err, tt.want)
		}
	}
}
