package dynamics

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dynconn/dynconn/internal/model"
)

func TestParseInstanceURL(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		loopback bool
		want     Instance
		wantCode string
	}{
		{"plain", "https://contoso.crm.dynamics.com", false,
			Instance{URL: "https://contoso.crm.dynamics.com", Host: "contoso.crm.dynamics.com", Cloud: model.CloudPublic}, ""},
		{"whitespace, no scheme, upper case, path and query",
			"  Contoso.CRM4.Dynamics.com/main.aspx?appid=1234&pagetype=dashboard \n", false,
			Instance{URL: "https://contoso.crm4.dynamics.com", Host: "contoso.crm4.dynamics.com", Cloud: model.CloudPublic}, ""},
		{"trailing dot and slash", "https://contoso.crm.dynamics.com./", false,
			Instance{URL: "https://contoso.crm.dynamics.com", Host: "contoso.crm.dynamics.com", Cloud: model.CloudPublic}, ""},
		{"web api path", "https://contoso.api.crm.dynamics.com/api/data/v9.2/", false,
			Instance{URL: "https://contoso.api.crm.dynamics.com", Host: "contoso.api.crm.dynamics.com", Cloud: model.CloudPublic}, ""},
		{"gcc", "https://agency.crm9.dynamics.com", false,
			Instance{URL: "https://agency.crm9.dynamics.com", Host: "agency.crm9.dynamics.com", Cloud: model.CloudGCC}, ""},
		{"gcc high", "https://agency.crm.microsoftdynamics.us", false,
			Instance{URL: "https://agency.crm.microsoftdynamics.us", Host: "agency.crm.microsoftdynamics.us", Cloud: model.CloudGCCHigh}, ""},
		{"dod", "https://agency.crm.appsplatform.us", false,
			Instance{URL: "https://agency.crm.appsplatform.us", Host: "agency.crm.appsplatform.us", Cloud: model.CloudDoD}, ""},
		{"china", "https://contoso.crm.dynamics.cn", false,
			Instance{URL: "https://contoso.crm.dynamics.cn", Host: "contoso.crm.dynamics.cn", Cloud: model.CloudChina}, ""},

		{"empty", "   ", false, Instance{}, "required"},
		{"http", "http://contoso.crm.dynamics.com", false, Instance{}, "not_https"},
		{"ftp", "ftp://contoso.crm.dynamics.com", false, Instance{}, "not_https"},
		{"user info", "https://user:pw@contoso.crm.dynamics.com", false, Instance{}, "has_userinfo"},
		{"port", "https://contoso.crm.dynamics.com:8443", false, Instance{}, "has_port"},
		{"ipv4", "https://10.0.0.1", false, Instance{}, "ip_address"},
		{"ipv6", "https://[fd00:ec2::254]", false, Instance{}, "ip_address"},
		{"other domain", "https://contoso.example.com", false, Instance{}, "not_dynamics_host"},
		{"suffix trick", "https://crm.dynamics.com.evil.example", false, Instance{}, "not_dynamics_host"},
		{"unknown region", "https://contoso.crm10.dynamics.com", false, Instance{}, "not_dynamics_host"},
		{"nested org", "https://a.b.crm.dynamics.com", false, Instance{}, "not_dynamics_host"},
		{"germany closed", "https://contoso.crm.microsoftdynamics.de", false, Instance{}, "unsupported_cloud"},
		{"garbage", "https://%zz", false, Instance{}, "invalid_url"},

		{"loopback refused when off", "http://127.0.0.1:8443", false, Instance{}, "not_https"},
		{"loopback https refused when off", "https://127.0.0.1:8443", false, Instance{}, "has_port"},
		{"loopback", "http://127.0.0.1:8443/main.aspx", true,
			Instance{URL: "http://127.0.0.1:8443", Host: "127.0.0.1:8443", Cloud: model.CloudPublic, Loopback: true}, ""},
		{"loopback ipv6", "http://[::1]:8443", true,
			Instance{URL: "http://[::1]:8443", Host: "[::1]:8443", Cloud: model.CloudPublic, Loopback: true}, ""},
		{"loopback path dropped", "http://127.0.0.1:8443/api/data/v9.2/", true,
			Instance{URL: "http://127.0.0.1:8443", Host: "127.0.0.1:8443", Cloud: model.CloudPublic, Loopback: true}, ""},
		{"loopback needs a port", "http://127.0.0.1", true, Instance{}, "not_https"},
		{"loopback needs a port other than 0", "http://127.0.0.1:0", true, Instance{}, "not_https"},
		{"loopback port out of range", "http://127.0.0.1:65536", true, Instance{}, "not_https"},
		{"IPv4-mapped loopback becomes IPv4", "http://[::ffff:127.0.0.1]:8443", true,
			Instance{URL: "http://127.0.0.1:8443", Host: "127.0.0.1:8443", Cloud: model.CloudPublic, Loopback: true}, ""},
		{"zone of loopback dropped", "http://[::1%25lo]:8443", true,
			Instance{URL: "http://[::1]:8443", Host: "[::1]:8443", Cloud: model.CloudPublic, Loopback: true}, ""},
		{"loopback port in one form", "http://127.0.0.1:08443", true,
			Instance{URL: "http://127.0.0.1:8443", Host: "127.0.0.1:8443", Cloud: model.CloudPublic, Loopback: true}, ""},
		{"private is not loopback", "http://10.0.0.1:8443", true, Instance{}, "not_https"},
		{"localhost name is not a literal", "http://localhost:8443", true, Instance{}, "not_https"},
		{"real hosts still work in loopback mode", "contoso.crm.dynamics.com", true,
			Instance{URL: "https://contoso.crm.dynamics.com", Host: "contoso.crm.dynamics.com", Cloud: model.CloudPublic}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInstanceURL(tt.raw, tt.loopback)
			if tt.wantCode != "" {
				var ie *InstanceURLError
				if !errors.As(err, &ie) || ie.Code != tt.wantCode || ie.Message == "" {
					t.Fatalf("ParseInstanceURL(%q) error = %v, want code %s", tt.raw, err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseInstanceURL(%q): %v", tt.raw, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseInstanceURL(%q) (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestAuthorityHosts(t *testing.T) {
	for _, c := range []model.Cloud{model.CloudPublic, model.CloudGCC, model.CloudGCCHigh, model.CloudDoD, model.CloudChina} {
		if len(authorityHosts[c]) == 0 {
			t.Errorf("cloud %s has no authority host", c)
		}
	}
}
