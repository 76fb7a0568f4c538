package api

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
)

const (
	maxNameLength   = 200
	maxSecretLength = 1024
	// maxExpiryYears bounds how far ahead a secret's expiry may be. Azure
	// offers at most two years in its portal; the bound only has to keep out
	// dates that are typing mistakes or that JSON cannot carry (after 9999).
	maxExpiryYears = 10
)

// connectionFields holds the connection fields of a create, update or test
// request, parsed into their types. A nil pointer means the field was absent.
type connectionFields struct {
	Name            *string
	Instance        *dynamics.Instance
	ClientID        *string
	TenantID        *string // "" when the request set it to null
	ClientSecret    *secret.String
	SecretExpiresAt *time.Time
	// ClearSecretExpiry reports whether client_secret_expires_at was set to null.
	ClearSecretExpiry bool
}

// tenant returns the tenant id to store: nil when the request leaves it out
// or clears it (null or ""), and then a test discovers the tenant.
func (f connectionFields) tenant() *string {
	if f.TenantID == nil || *f.TenantID == "" {
		return nil
	}
	return f.TenantID
}

// parseConnectionFields reads every connection field present in o, recording
// one error per invalid field. now is used to refuse an expiry in the past.
func parseConnectionFields(o *object, allowLoopback bool, now time.Time) connectionFields {
	var f connectionFields
	if s, ok := o.str("name"); ok {
		s = strings.TrimSpace(s)
		switch {
		case utf8.RuneCountInString(s) > maxNameLength:
			o.add("name", "too_long", "Use a name of at most 200 characters.")
		case strings.ContainsFunc(s, unicode.IsControl): // NUL cannot even be stored
			o.add("name", "control_character", "Use a name on one line, without tabs or other control characters.")
		default:
			f.Name = &s
		}
	}
	if o.has("instance_url") {
		s, ok := o.str("instance_url")
		if ok || o.isNull("instance_url") {
			inst, err := dynamics.ParseInstanceURL(s, allowLoopback)
			var ue *dynamics.InstanceURLError
			switch {
			case errors.As(err, &ue):
				o.add("instance_url", ue.Code, ue.Message)
			case err != nil:
				o.add("instance_url", "invalid_url", "This is not a valid instance URL.")
			default:
				f.Instance = &inst
			}
		}
	}
	if o.has("client_id") {
		s, ok := o.str("client_id")
		if ok || o.isNull("client_id") {
			if id, ok := model.ParseGUID(s); ok {
				f.ClientID = &id
			} else if strings.TrimSpace(s) == "" {
				o.add("client_id", "required", "Enter the Application (client) ID from the app registration's Overview page in Azure.")
			} else {
				o.add("client_id", "not_guid", "The Client ID is a GUID like 3f2b5c1e-8d4a-4c6b-9e2f-1a2b3c4d5e6f. Copy the Application (client) ID from the app registration's Overview page in Azure.")
			}
		}
	}
	if o.has("tenant_id") {
		if o.isNull("tenant_id") {
			empty := ""
			f.TenantID = &empty
			o.seen["tenant_id"] = true
		} else if s, ok := o.str("tenant_id"); ok {
			if strings.TrimSpace(s) == "" {
				empty := ""
				f.TenantID = &empty
			} else if id, ok := model.ParseGUID(s); ok {
				f.TenantID = &id
			} else {
				o.add("tenant_id", "not_guid", "The Tenant ID is a GUID: copy the Directory (tenant) ID from the app registration's Overview page in Azure, or leave it empty and dynconn finds it.")
			}
		}
	}
	if o.has("client_secret") {
		s, ok := o.str("client_secret")
		if ok || o.isNull("client_secret") {
			clientID := ""
			if f.ClientID != nil {
				clientID = *f.ClientID
			}
			if sec, ok := checkSecret(o, s, clientID); ok {
				f.ClientSecret = &sec
			}
		}
	}
	if o.isNull("client_secret_expires_at") {
		o.seen["client_secret_expires_at"] = true
		f.ClearSecretExpiry = true
	} else if t, ok := o.timestamp("client_secret_expires_at"); ok {
		switch {
		case !t.After(now):
			o.add("client_secret_expires_at", "in_past", "This date has passed, so the secret has expired. Create a new client secret under Certificates & secrets and paste its Value.")
		case t.After(now.AddDate(maxExpiryYears, 0, 0)):
			o.add("client_secret_expires_at", "out_of_range", "Enter the expiry that Azure shows next to the secret under Certificates & secrets: it is at most a few years away, never more than 10.")
		default:
			t = t.UTC()
			f.SecretExpiresAt = &t
		}
	}
	return f
}

// checkSecret applies the rules that catch the usual paste mistakes. The
// value itself never appears in a message.
func checkSecret(o *object, raw, clientID string) (secret.String, bool) {
	// Pasting often adds a newline or spaces; a real secret never has them at its ends.
	s := strings.TrimSpace(raw)
	id, isGUID := model.ParseGUID(s)
	switch {
	case s == "":
		o.add("client_secret", "required", "Paste the client secret's Value from Certificates & secrets in the app registration.")
	case utf8.RuneCountInString(s) > maxSecretLength:
		o.add("client_secret", "too_long", "This is longer than any client secret. Paste only the secret's Value.")
	case isGUID && id == clientID:
		o.add("client_secret", "secret_is_client_id", "This is the Client ID again. Paste the client secret's Value from Certificates & secrets instead.")
	case isGUID:
		o.add("client_secret", "secret_is_guid", "This looks like the Secret ID. Under Certificates & secrets, copy the Value shown next to it instead (Azure shows the Value only once, right after you create the secret; if it is hidden, create a new secret).")
	default:
		return secret.String(s), true
	}
	return "", false
}

// requireCreateFields records the fields a create (or a test without a stored
// connection) must have.
func requireCreateFields(o *object) {
	requireTarget(o)
	if !o.has("client_secret") {
		o.add("client_secret", "required", "Paste the client secret's Value from Certificates & secrets in the app registration.")
	}
}

// requireTarget records the fields that say what to sign in to.
func requireTarget(o *object) {
	if !o.has("instance_url") {
		o.add("instance_url", "required", "Enter your Dynamics 365 instance URL, for example https://yourorg.crm.dynamics.com.")
	}
	if !o.has("client_id") {
		o.add("client_id", "required", "Enter the Application (client) ID from the app registration's Overview page in Azure.")
	}
}

// parseCredentialType reads a create's credential_type (default
// client_secret) and requires the fields of that type: a client secret, or
// for a certificate none, since dynconn makes the certificate.
func parseCredentialType(o *object) model.CredentialType {
	t := model.CredentialClientSecret
	if s, ok := o.str("credential_type"); ok {
		t = model.CredentialType(s)
	}
	switch t {
	case model.CredentialClientSecret:
		requireCreateFields(o)
	case model.CredentialCertificate:
		requireTarget(o)
		rejectSecretFields(o)
	default:
		o.add("credential_type", "out_of_range", "credential_type must be client_secret or certificate.")
	}
	return t
}

// rejectSecretFields records the client secret fields as conflicts: a
// certificate connection has no client secret.
func rejectSecretFields(o *object) {
	for _, f := range []string{"client_secret", "client_secret_expires_at"} {
		if o.has(f) {
			o.add(f, "credential_conflict", "A certificate connection has no client secret: leave "+f+
				" out. dynconn makes the certificate; upload it to the app registration under Certificates & secrets > Certificates.")
		}
	}
}

// testCredentialNext is the credential value of a test with the pending
// next certificate.
const testCredentialNext = "next_certificate"

// parseTestCredential reads a test's credential field and reports whether
// it asks for the connection's next certificate, which needs a connection
// and no client secret beside it.
func parseTestCredential(o *object, hasConnection, hasSecret bool) bool {
	s, ok := o.str("credential")
	switch {
	case !ok:
		return false
	case s != testCredentialNext:
		o.add("credential", "out_of_range", `credential must be "next_certificate" (or left out to test the connection's own credential).`)
	case !hasConnection:
		o.add("credential", "credential_conflict", "Testing the next certificate needs the connection_id of its connection.")
	case hasSecret:
		o.add("client_secret", "credential_conflict", "A test of the next certificate signs in with the certificate: leave client_secret out.")
	default:
		return true
	}
	return false
}

// defaultName names a connection after its environment (the first label of
// the host: "contoso" for https://contoso.crm.dynamics.com) when no name was
// given. A simulator address keeps its whole host, with the port.
func defaultName(instanceURL string) string {
	u, err := url.Parse(instanceURL)
	if err != nil {
		return instanceURL
	}
	if net.ParseIP(u.Hostname()) != nil { // the local simulator
		return u.Host
	}
	org, _, _ := strings.Cut(u.Hostname(), ".")
	return org
}
