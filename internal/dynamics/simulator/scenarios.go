package simulator

import (
	"net/http"
	"strings"
)

// ScenarioOK is the scenario in which everything works.
const ScenarioOK = "ok"

// Scenario describes one way the simulator can answer, and what dynconn is
// expected to make of it.
type Scenario struct {
	// Name selects it: Options.Scenario, SetScenario, Handler.Scenario or
	// Server.InstanceURL.
	Name string
	// HTTPStatus is the status of the answer that makes the difference (0
	// when there is none: success, or no answer at all).
	HTTPStatus int
	// MicrosoftCode is Microsoft's error code in that answer: "AADSTSnnnn"
	// from Entra, or Dataverse's hex code; "" when the answer has none.
	MicrosoftCode string
	// Code is the diagnosis code dynconn should report ("" when all passes).
	Code string
	// Check is the check that reports Code.
	Check string
	// Status is that check's status: "failed", "warning" or "passed".
	Status string
	// Summary says what the simulator does, for people.
	Summary string
}

// scenario is a table row: where the scenario steps in, and how it answers.
type scenario struct {
	Scenario
	at      string // endpoint it replaces: endpointProbe, endpointToken, ...
	respond func(h *Handler, w http.ResponseWriter, r *http.Request, q request)
}

// tenantOf is the tenant in a token request's path.
func tenantOf(q request) string {
	return strings.TrimSuffix(strings.TrimPrefix(q.path, "/"), "/oauth2/v2.0/token")
}

// entra returns a responder that sends one Entra error.
func entra(status int, errName string, code int, message func(h *Handler, q request) string, withURI bool) func(*Handler, http.ResponseWriter, *http.Request, request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
		h.entraError(w, r, status, errName, code, message(h, q), withURI)
	}
}

// dataverse returns a responder that sends one Dataverse error.
func dataverse(status int, code, message string) func(*Handler, http.ResponseWriter, *http.Request, request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
		writeDataverseError(w, status, code, message)
	}
}

// fixed returns a message that does not depend on the request.
func fixed(s string) func(*Handler, request) string {
	return func(*Handler, request) string { return s }
}

// hang never answers; slow answers normally after Options.SlowDelay.
func hang(h *Handler, w http.ResponseWriter, r *http.Request, q request) { h.hang(r.Context()) }

// oversized sends a 200 with a 10 MiB JSON body.
func oversized(contentType string) func(*Handler, http.ResponseWriter, *http.Request, request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusOK)
		chunk := []byte(strings.Repeat(" ", 64<<10))
		if _, err := w.Write([]byte(`{"padding":"`)); err != nil {
			return
		}
		for i := 0; i < 160; i++ { // 160 × 64 KiB = 10 MiB
			if _, err := w.Write(chunk); err != nil {
				return // the client stopped reading
			}
		}
		_, _ = w.Write([]byte(`"}`))
	}
}

// challengeWith sends the 401 challenge naming authorization_uri au.
func challengeWith(au func(h *Handler, q request) string) func(*Handler, http.ResponseWriter, *http.Request, request) {
	return func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
		setRaw(w, "WWW-Authenticate", "Bearer authorization_uri="+au(h, q)+", resource_id="+h.instanceURL(q)+"/")
		w.WriteHeader(http.StatusUnauthorized)
	}
}

// scenarios is the one table of scenarios. Texts and codes follow
// microsoft-examples.md (E-numbers); where Microsoft's status code or text is
// UNCONFIRMED there, the choice made here is marked.
var scenarios = []scenario{
	{Scenario: Scenario{ScenarioOK, 0, "", "", "security_role", "passed",
		"Everything works: challenge, token, WhoAmI, and an application user with the API User role."}},
	{Scenario{"slow", 0, "", "", "security_role", "passed",
		"The token endpoint answers correctly, but only after Options.SlowDelay (3s by default)."},
		endpointToken, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			if h.wait(r.Context(), h.opts.SlowDelay) {
				h.tokenOK(w, h.instanceURL(q))
			}
		}},

	// The probe: GET /api/data/v9.2/ without a token.
	{Scenario{"not_dataverse", 200, "", "not_dataverse", "tenant_discovery", "failed",
		"The instance answers 200 with an HTML page instead of a 401 challenge."},
		endpointProbe, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Contoso intranet</title></head><body>Welcome</body></html>"))
		}},
	{Scenario{"challenge_incomplete", 401, "", "not_dataverse", "tenant_discovery", "failed",
		"The 401 challenge has authorization_uri but no resource_id (E11 variant)."},
		endpointProbe, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			setRaw(w, "WWW-Authenticate", "Bearer authorization_uri="+h.authorityBase(q)+"/"+h.opts.TenantID+"/oauth2/authorize")
			w.WriteHeader(http.StatusUnauthorized)
		}},
	{Scenario{"authority_other_cloud", 401, "", "authority_not_allowed", "tenant_discovery", "failed",
		"The challenge names login.microsoftonline.us, the US Government sign-in host, for a public-cloud instance."},
		endpointProbe, challengeWith(func(h *Handler, q request) string {
			return "https://login.microsoftonline.us/" + h.opts.TenantID + "/oauth2/authorize"
		})},
	{Scenario{"authority_private", 401, "", "authority_not_allowed", "tenant_discovery", "failed",
		"The challenge names a private address (https://10.0.0.1) as the sign-in service."},
		endpointProbe, challengeWith(func(h *Handler, q request) string {
			return "https://10.0.0.1/" + h.opts.TenantID + "/oauth2/authorize"
		})},
	{Scenario{"authority_metadata", 401, "", "authority_not_allowed", "tenant_discovery", "failed",
		"The challenge names the cloud metadata address (http://169.254.169.254) as the sign-in service."},
		endpointProbe, challengeWith(func(h *Handler, q request) string {
			return "http://169.254.169.254/" + h.opts.TenantID + "/oauth2/authorize"
		})},
	{Scenario{"redirect", 302, "", "destination_not_allowed", "tenant_discovery", "failed",
		"The instance redirects (302) to another host, Options.RedirectURL (the metadata address by default)."},
		endpointProbe, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			http.Redirect(w, r, h.opts.RedirectURL, http.StatusFound)
		}},
	{Scenario{"instance_hang", 0, "", "instance_unreachable", "tenant_discovery", "failed",
		"The instance accepts the connection and never answers."},
		endpointProbe, hang},
	{Scenario{"instance_unavailable", 503, "", "microsoft_unavailable", "tenant_discovery", "failed",
		"The instance answers 503 Service Unavailable (body UNCONFIRMED: plain text)."},
		endpointProbe, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			w.Header().Set("Retry-After", "30")
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		}},

	// The token endpoint (after the request itself was checked).
	{Scenario{"tenant_not_found", 400, "AADSTS90002", "tenant_not_found", "token", "failed",
		"AADSTS90002, 400 invalid_request: the tenant does not exist (E5)."},
		endpointToken, entra(http.StatusBadRequest, "invalid_request", 90002, func(h *Handler, q request) string {
			return "Tenant '" + tenantOf(q) + "' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
		}, true)},
	{Scenario{"tenant_in_other_cloud", 400, "AADSTS90038", "tenant_in_other_cloud", "token", "failed",
		"AADSTS90038: the tenant lives in a national cloud (status, error and text UNCONFIRMED: 400 invalid_request, doc paraphrase)."},
		endpointToken, entra(http.StatusBadRequest, "invalid_request", 90038, func(h *Handler, q request) string {
			return "The specified tenant '" + tenantOf(q) + "' belongs to the National Cloud 'USGovernment'. Current cloud instance 'Prod' does not federate with 'USGovernment'."
		}, true)},
	{Scenario{"app_not_found", 400, "AADSTS700016", "app_not_found", "token", "failed",
		"AADSTS700016, 400 unauthorized_client: no app with this client id in the tenant (E4)."},
		endpointToken, entra(http.StatusBadRequest, "unauthorized_client", 700016, func(h *Handler, q request) string {
			return "Application with identifier '" + h.opts.ClientID + "' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
		}, true)},
	{Scenario{"app_service_principal_missing", 401, "AADSTS7000229", "app_service_principal_missing", "token", "failed",
		"AADSTS7000229, 401 invalid_client (status UNCONFIRMED): a multi-tenant app without a service principal here (E10)."},
		endpointToken, entra(http.StatusUnauthorized, "invalid_client", 7000229, func(h *Handler, q request) string {
			return "The client application " + h.opts.ClientID + " is missing service principal in the tenant " + h.opts.TenantID + ". See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"
		}, false)},
	{Scenario{"app_disabled", 400, "AADSTS7000112", "app_disabled", "token", "failed",
		"AADSTS7000112, 400 unauthorized_client (status UNCONFIRMED): the app is disabled (E8)."},
		endpointToken, entra(http.StatusBadRequest, "unauthorized_client", 7000112, func(h *Handler, q request) string {
			return "Application '" + h.opts.ClientID + "'(Contoso Sync) is disabled."
		}, true)},
	{Scenario{"secret_invalid", 401, "AADSTS7000215", "client_secret_invalid", "token", "failed",
		"AADSTS7000215, 401 invalid_client: wrong secret, typically the Secret ID pasted instead of the Value (E2)."},
		endpointToken, entra(http.StatusUnauthorized, "invalid_client", 7000215, func(h *Handler, q request) string {
			return "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + h.opts.ClientID + "'."
		}, true)},
	{Scenario{"secret_expired", 401, "AADSTS7000222", "client_secret_expired", "token", "failed",
		"AADSTS7000222, 401 invalid_client: the secret has expired (E3)."},
		endpointToken, entra(http.StatusUnauthorized, "invalid_client", 7000222, func(h *Handler, q request) string {
			return "The provided client secret keys for app '" + h.opts.ClientID + "' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
		}, true)},
	{Scenario{"secret_missing", 401, "AADSTS7000218", "client_secret_missing", "token", "failed",
		"AADSTS7000218, 401 invalid_client (status UNCONFIRMED): no secret in the request."},
		endpointToken, entra(http.StatusUnauthorized, "invalid_client", 7000218,
			fixed("The request body must contain the following parameter: 'client_assertion' or 'client_secret'."), true)},
	{Scenario{"dynamics_not_in_tenant", 400, "AADSTS500011", "dynamics_not_in_tenant", "token", "failed",
		"AADSTS500011, 400 invalid_resource (status UNCONFIRMED): Dynamics 365 is not in the tenant (E7)."},
		endpointToken, entra(http.StatusBadRequest, "invalid_resource", 500011, func(h *Handler, q request) string {
			return "The resource principal named " + h.instanceURL(q) + " was not found in the tenant named Contoso. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
		}, true)},
	{Scenario{"scope_rejected", 400, "AADSTS70011", "scope_rejected", "token", "failed",
		"AADSTS70011, 400 invalid_scope: the scope is not valid (E9a)."},
		endpointToken, entra(http.StatusBadRequest, "invalid_scope", 70011, func(h *Handler, q request) string {
			return "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope " + strings.TrimPrefix(h.instanceURL(q), "https://") + "/.default is not valid."
		}, true)},
	{Scenario{"conditional_access", 400, "AADSTS53003", "conditional_access_blocked", "token", "failed",
		"AADSTS53003: blocked by Conditional Access (status and error UNCONFIRMED: 400 invalid_grant)."},
		endpointToken, entra(http.StatusBadRequest, "invalid_grant", 53003,
			fixed("Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."), true)},
	{Scenario{"entra_throttled", 429, "AADSTS90055", "throttled", "token", "failed",
		"The token endpoint answers 429 with Retry-After: 10 and AADSTS90055 (body UNCONFIRMED)."},
		endpointToken, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			w.Header().Set("Retry-After", "10")
			h.entraError(w, r, http.StatusTooManyRequests, "temporarily_unavailable", 90055,
				"There are too many incoming requests. Please try again later.", true)
		}},
	{Scenario{"entra_unavailable", 503, "AADSTS50000", "microsoft_unavailable", "token", "failed",
		"The token endpoint answers 503 temporarily_unavailable with AADSTS50000 (body UNCONFIRMED)."},
		endpointToken, entra(http.StatusServiceUnavailable, "temporarily_unavailable", 50000,
			fixed("There was an error issuing a token or an issue with our sign-in service."), true)},
	{Scenario{"token_hang", 0, "", "microsoft_timeout", "token", "failed",
		"The token endpoint accepts the request and never answers."},
		endpointToken, hang},
	{Scenario{"token_oversized", 200, "", "response_too_large", "token", "failed",
		"The token endpoint answers 200 with a 10 MiB body."},
		endpointToken, oversized("application/json; charset=utf-8")},
	{Scenario{"token_malformed", 200, "", "unexpected_response", "token", "failed",
		"The token endpoint answers 200 with JSON cut off in the middle."},
		endpointToken, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			setEntraHeaders(w)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_tok`))
		}},

	// WhoAmI (after the bearer token was checked).
	{Scenario{"no_application_user", 403, "0x80072560", "application_user_missing", "whoami", "failed",
		"WhoAmI: 403 0x80072560, the app has no application user in this environment (E13)."},
		endpointWhoAmI, dataverse(http.StatusForbidden, "0x80072560", "The user is not a member of the organization.")},
	{Scenario{"user_disabled", 400, "0x80040225", "application_user_disabled", "whoami", "failed",
		"WhoAmI: 400 0x80040225, the application user is disabled (code UNCONFIRMED, E14)."},
		endpointWhoAmI, dataverse(http.StatusBadRequest, "0x80040225",
			"The user with SystemUserId="+UserID+" in OrganizationContext="+OrganizationID+" is disabled. Disabled users cannot access the system. Consider enabling this user. Also, users are disabled if they don't have a license assigned to them.")},
	{Scenario{"admin_mode", 403, "0x8004a113", "admin_mode", "whoami", "failed",
		"WhoAmI: 403 0x8004a113, the environment is in administration mode (status UNCONFIRMED, E16)."},
		endpointWhoAmI, dataverse(http.StatusForbidden, "0x8004a113",
			"User does not have required privileges (or role membership) to access the org when it is in Admin Only mode.")},
	{Scenario{"environment_disabled", 403, "0x8004a104", "environment_disabled", "whoami", "failed",
		"WhoAmI: 403 0x8004a104, the environment is disabled (status UNCONFIRMED, E17)."},
		endpointWhoAmI, dataverse(http.StatusForbidden, "0x8004a104",
			"The Dynamics 365 organization you are attempting to access is currently disabled.  Please contact your system administrator")},
	{Scenario{"api_blocked", 403, "0x80095ffc", "dataverse_api_blocked", "whoami", "failed",
		"WhoAmI: 403 0x80095ffc, the app id is barred from the Dataverse API (status UNCONFIRMED)."},
		endpointWhoAmI, dataverse(http.StatusForbidden, "0x80095ffc",
			"Access to Dataverse API is restricted for this application Id : '"+ClientID+"'. Please contact your administrator for more information.")},
	{Scenario{"token_rejected", 401, "0x80044302", "token_rejected", "whoami", "failed",
		"WhoAmI: 401 0x80044302, Dataverse does not accept the token (code UNCONFIRMED)."},
		endpointWhoAmI, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			setRaw(w, "WWW-Authenticate", h.challenge(q)+`, error="invalid_token"`)
			writeDataverseError(w, http.StatusUnauthorized, "0x80044302", "Request is not authenticated.")
		}},
	{Scenario{"throttled", 429, "0x80072322", "throttled", "whoami", "failed",
		"WhoAmI: 429 with Retry-After: 27 and 0x80072322, service protection limits (E18)."},
		endpointWhoAmI, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			w.Header().Set("Retry-After", "27")
			writeDataverseError(w, http.StatusTooManyRequests, "0x80072322",
				"Number of requests exceeded the limit of 6000 over time window of 300 seconds.")
		}},
	{Scenario{"unavailable", 503, "", "microsoft_unavailable", "whoami", "failed",
		"WhoAmI: 503 Service Unavailable (body UNCONFIRMED: plain text)."},
		endpointWhoAmI, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		}},
	{Scenario{"unexpected", 400, "0x80040203", "unexpected_response", "whoami", "failed",
		"WhoAmI: 400 with a Dataverse error code dynconn does not know (0x80040203)."},
		endpointWhoAmI, dataverse(http.StatusBadRequest, "0x80040203", "Invalid argument.")},
	{Scenario{"whoami_hang", 0, "", "microsoft_timeout", "whoami", "failed",
		"WhoAmI accepts the request and never answers."},
		endpointWhoAmI, hang},
	{Scenario{"whoami_oversized", 200, "", "response_too_large", "whoami", "failed",
		"WhoAmI answers 200 with a 10 MiB body."},
		endpointWhoAmI, oversized("application/json; odata.metadata=minimal")},
	{Scenario{"whoami_malformed", 200, "", "unexpected_response", "whoami", "failed",
		"WhoAmI answers 200 with a body that is not JSON."},
		endpointWhoAmI, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
			setRaw(w, "OData-Version", "4.0")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`<html>Runtime Error</html>`))
		}},

	// The application user's row and roles.
	{Scenario{"no_role", 200, "", "security_role_missing", "security_role", "warning",
		"The application user exists and is enabled but has no security role (E20 with an empty list)."},
		endpointUser, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			h.userOK(w, r, q, []string{}, false)
		}},
	{Scenario{"user_record_disabled", 200, "", "application_user_disabled", "security_role", "failed",
		"WhoAmI works but the application user's row says isdisabled: true."},
		endpointUser, func(h *Handler, w http.ResponseWriter, r *http.Request, q request) {
			h.userOK(w, r, q, h.opts.Roles, true)
		}},
	{Scenario{"missing_privilege", 403, "0x80040220", "privilege_missing", "security_role", "failed",
		"Reading the application user answers 403 0x80040220, missing prvReadUser (pairing UNCONFIRMED, E15)."},
		endpointUser, dataverse(http.StatusForbidden, "0x80040220",
			"Principal user (Id="+UserID+", type=8, roleCount=1, privilegeCount=12, accessMode=4), is missing prvReadUser privilege (Id=66666666-6666-6666-6666-666666666666) on OTC=8 for entity 'systemuser'. context.Caller="+UserID)},
	{Scenario{"no_role_denied", 403, "0x80042f09", "security_role_missing", "security_role", "failed",
		"Reading the application user answers 403 0x80042f09, the user has no roles (status UNCONFIRMED)."},
		endpointUser, dataverse(http.StatusForbidden, "0x80042f09",
			"The user with id "+UserID+" has not been assigned any roles. They need a role with the prvReadUser privilege.")},
}

var scenarioByName = func() map[string]*scenario {
	m := make(map[string]*scenario, len(scenarios))
	for i := range scenarios {
		s := &scenarios[i]
		if _, dup := m[s.Name]; dup {
			panic("simulator: duplicate scenario " + s.Name)
		}
		m[s.Name] = s
	}
	return m
}()

// Scenarios lists every scenario, in table order.
func Scenarios() []Scenario {
	out := make([]Scenario, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.Scenario
	}
	return out
}
