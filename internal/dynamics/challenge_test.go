package dynamics

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dynconn/dynconn/internal/model"
)

// TestParseChallenge follows ServiceClient's AuthResolverTests: "bearer" in
// any case followed by whitespace, keys in any case, both keys required.
func TestParseChallenge(t *testing.T) {
	const au = "https://login.microsoftonline.com/11111111-1111-1111-1111-111111111111/oauth2/authorize"
	const res = "https://contoso.crm.dynamics.com/"
	tests := []struct {
		name   string
		values []string
		want   challenge
		ok     bool
	}{
		{"dataverse", []string{"Bearer authorization_uri=" + au + ", resource_id=" + res}, challenge{au, res}, true},
		{"odd case", []string{"BeArEr AUTHORIZATION_URI=" + au + ", reSoUrCe_ID=" + res}, challenge{au, res}, true},
		{"quoted", []string{`Bearer authorization_uri="` + au + `", resource_id="` + res + `"`}, challenge{au, res}, true},
		{"second value", []string{`Negotiate`, "Bearer authorization_uri=" + au + ",resource_id=" + res}, challenge{au, res}, true},
		{"no resource_id", []string{"Bearer authorization_uri=" + au}, challenge{}, false},
		{"no authorization_uri", []string{"Bearer resource_id=" + res}, challenge{}, false},
		{"bearer alone", []string{"Bearer"}, challenge{}, false},
		{"bearer and space", []string{"Bearer "}, challenge{}, false},
		{"no space after bearer", []string{"BearerXXX authorization_uri=" + au + ", resource_id=" + res}, challenge{}, false},
		{"basic", []string{`Basic realm="x"`}, challenge{}, false},
		{"none", nil, challenge{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseChallenge(tt.values)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAuthority(t *testing.T) {
	const tenant = "11111111-1111-1111-1111-111111111111"
	public := Instance{URL: "https://contoso.crm.dynamics.com", Host: "contoso.crm.dynamics.com", Cloud: model.CloudPublic}
	gccHigh := Instance{URL: "https://agency.crm.microsoftdynamics.us", Host: "agency.crm.microsoftdynamics.us", Cloud: model.CloudGCCHigh}
	china := Instance{URL: "https://contoso.crm.dynamics.cn", Host: "contoso.crm.dynamics.cn", Cloud: model.CloudChina}
	tests := []struct {
		name     string
		inst     Instance
		uri      string
		loopback bool
		want     authority // zero: refused
	}{
		{"public", public, "https://login.microsoftonline.com/" + tenant + "/oauth2/authorize", false,
			authority{"https://login.microsoftonline.com", tenant}},
		{"older host", public, "https://login.windows.net/" + tenant + "/oauth2/authorize", false,
			authority{"https://login.windows.net", tenant}},
		{"explicit 443 and upper case", public, "https://LOGIN.microsoftonline.com:443/" + tenant + "/oauth2/authorize/", false,
			authority{"https://login.microsoftonline.com", tenant}},
		{"common becomes organizations", public, "https://login.microsoftonline.com/common/oauth2/authorize", false,
			authority{"https://login.microsoftonline.com", "organizations"}},
		{"gcc high", gccHigh, "https://login.microsoftonline.us/" + tenant + "/oauth2/authorize", false,
			authority{"https://login.microsoftonline.us", tenant}},
		{"china", china, "https://login.partner.microsoftonline.cn/" + tenant + "/oauth2/authorize", false,
			authority{"https://login.partner.microsoftonline.cn", tenant}},
		{"loopback allowed when on", public, "http://127.0.0.1:8443/" + tenant + "/oauth2/authorize", true,
			authority{"http://127.0.0.1:8443", tenant}},

		{"other cloud", public, "https://login.microsoftonline.us/" + tenant + "/oauth2/authorize", false, authority{}},
		{"public host for gcc high", gccHigh, "https://login.microsoftonline.com/" + tenant + "/oauth2/authorize", false, authority{}},
		{"look-alike host", public, "https://login.microsoftonline.com.evil.example/" + tenant + "/oauth2/authorize", false, authority{}},
		{"http", public, "http://login.microsoftonline.com/" + tenant + "/oauth2/authorize", false, authority{}},
		{"other port", public, "https://login.microsoftonline.com:8443/" + tenant + "/oauth2/authorize", false, authority{}},
		{"user info", public, "https://x@login.microsoftonline.com/" + tenant + "/oauth2/authorize", false, authority{}},
		{"query", public, "https://login.microsoftonline.com/" + tenant + "/oauth2/authorize?x=1", false, authority{}},
		{"path prefix on a real host", public, "https://login.microsoftonline.com/x/" + tenant + "/oauth2/authorize", false, authority{}},
		{"not authorize", public, "https://login.microsoftonline.com/" + tenant + "/oauth2/token", false, authority{}},
		{"tenant with dots only", public, "https://login.microsoftonline.com/../oauth2/authorize", false, authority{}},
		{"loopback when off", public, "http://127.0.0.1:8443/" + tenant + "/oauth2/authorize", false, authority{}},
		{"IPv4-mapped loopback becomes IPv4", public, "http://[::ffff:127.0.0.1]:8443/" + tenant + "/oauth2/authorize", true,
			authority{"http://127.0.0.1:8443", tenant}},
		{"zone of loopback dropped", public, "http://[::1%25lo]:8443/" + tenant + "/oauth2/authorize", true,
			authority{"http://[::1]:8443", tenant}},
		{"loopback port 0", public, "http://127.0.0.1:0/" + tenant + "/oauth2/authorize", true, authority{}},
		{"loopback https when off", public, "https://127.0.0.1/" + tenant + "/oauth2/authorize", false, authority{}},
		{"private when on", public, "http://10.0.0.1:8443/" + tenant + "/oauth2/authorize", true, authority{}},
		{"metadata when on", public, "http://169.254.169.254:80/" + tenant + "/oauth2/authorize", true, authority{}},
		{"loopback odd prefix", public, "http://127.0.0.1:8443/admin/x/" + tenant + "/oauth2/authorize", true, authority{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAuthority(tt.inst, tt.uri, tt.loopback)
			if tt.want == (authority{}) {
				var ae *authorityError
				if !errors.As(err, &ae) {
					t.Fatalf("parseAuthority(%q) = %+v, %v; want refused", tt.uri, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseAuthority(%q): %v", tt.uri, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
