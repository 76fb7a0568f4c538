package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/dynconn/dynconn/internal/model"
)

// Endpoints, as Count names them.
const (
	endpointProbe  = "probe"
	endpointToken  = "token"
	endpointWhoAmI = "whoami"
	endpointUser   = "user"
)

// domainRe is a directory's DNS name, the other form of a tenant in a token URL.
var domainRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)

// authorityBase is the sign-in base the challenge names for this request.
func (h *Handler) authorityBase(q request) string {
	if h.opts.AuthorityURL != "" {
		return strings.TrimSuffix(h.opts.AuthorityURL, "/")
	}
	return q.base
}

// instanceURL is the resource a token for this request must be for.
func (h *Handler) instanceURL(q request) string {
	if h.opts.InstanceURL != "" {
		return strings.TrimSuffix(h.opts.InstanceURL, "/")
	}
	return q.base
}

// challenge is the WWW-Authenticate value Dataverse sends (E11).
func (h *Handler) challenge(q request) string {
	return "Bearer authorization_uri=" + h.authorityBase(q) + "/" + h.opts.TenantID +
		"/oauth2/authorize, resource_id=" + h.instanceURL(q) + "/"
}

// serveProbe answers GET /api/data/v9.2/: the 401 challenge to anyone
// without a token (E11), the service document to a valid token.
func (h *Handler) serveProbe(w http.ResponseWriter, r *http.Request, q request) {
	if q.scenario.at == endpointProbe {
		q.scenario.respond(h, w, r, q)
		return
	}
	if _, ok := h.authorize(w, r, q); !ok {
		return
	}
	writeDataverseJSON(w, http.StatusOK, map[string]any{
		"@odata.context": h.instanceURL(q) + "/api/data/v9.2/$metadata",
		"value": []map[string]string{
			{"name": "systemusers", "kind": "EntitySet", "url": "systemusers"},
			{"name": "roles", "kind": "EntitySet", "url": "roles"},
		},
	})
}

// authorize checks the bearer token of a Dataverse request. Without one it
// answers with the challenge; with one it did not issue for this instance,
// with 401 RequestIsNotAuthenticated.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, q request) (string, bool) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		setRaw(w, "WWW-Authenticate", h.challenge(q))
		w.WriteHeader(http.StatusUnauthorized)
		return "", false
	}
	res, ok := h.tokenResource(tok)
	if !ok || res != h.instanceURL(q) {
		setRaw(w, "WWW-Authenticate", h.challenge(q)+`, error="invalid_token"`)
		writeDataverseError(w, http.StatusUnauthorized, "0x80044302", "Request is not authenticated.")
		return "", false
	}
	return tok, true
}

// serveToken is the Entra v2.0 token endpoint for the client-credentials
// grant. It validates the request the way Entra does, then lets the scenario
// fail it, then checks the credentials.
func (h *Handler) serveToken(w http.ResponseWriter, r *http.Request, q request) {
	tenant := strings.TrimSuffix(strings.TrimPrefix(q.path, "/"), "/oauth2/v2.0/token")
	if r.Method != http.MethodPost {
		h.entraError(w, r, http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts POST requests. Received a "+r.Method+" request.", true)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		h.entraError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.", true)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		h.entraError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.", true)
		return
	}
	form := r.PostForm
	h.record(form)
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	assertion := form.Has("client_assertion") || form.Has("client_assertion_type")
	if u, p, ok := r.BasicAuth(); ok { // RFC 6749 §2.3.1, which Entra also accepts
		clientID, secret = u, p
	}
	switch {
	case !model.IsGUID(tenant) && !domainRe.MatchString(tenant):
		h.entraError(w, r, http.StatusBadRequest, "invalid_request", 900023,
			"Specified tenant identifier '"+tenant+"' is neither a valid DNS name, nor a valid external domain.", true)
		return
	case form.Get("grant_type") == "":
		h.entraError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.", true)
		return
	case form.Get("grant_type") != "client_credentials":
		h.entraError(w, r, http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '"+form.Get("grant_type")+"'.", true)
		return
	case clientID == "":
		h.entraError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'client_id'.", true)
		return
	case form.Get("scope") == "":
		h.entraError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'scope'.", true)
		return
	}
	scope := form.Get("scope")
	resource, hasDefault := strings.CutSuffix(scope, "/.default")
	switch {
	case strings.ContainsAny(scope, " ") || !strings.HasPrefix(scope, "https://") && !strings.HasPrefix(scope, "http://"):
		h.entraError(w, r, http.StatusBadRequest, "invalid_scope", 70011,
			"The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope "+scope+" is not valid.", true)
		return
	case !hasDefault:
		h.entraError(w, r, http.StatusBadRequest, "invalid_scope", 1002012,
			"The provided value for scope "+scope+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", false)
		return
	}

	if q.scenario.at == endpointToken {
		q.scenario.respond(h, w, r, q)
		return
	}

	switch {
	case !strings.EqualFold(tenant, h.opts.TenantID):
		h.entraError(w, r, http.StatusBadRequest, "invalid_request", 90002,
			"Tenant '"+tenant+"' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", true)
	case !strings.EqualFold(clientID, h.opts.ClientID):
		h.entraError(w, r, http.StatusBadRequest, "unauthorized_client", 700016,
			"Application with identifier '"+clientID+"' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", true)
	case assertion:
		if h.checkAssertion(w, r, q, tenant, clientID) {
			h.tokenFor(w, r, q, resource)
		}
	case secret == "":
		h.entraError(w, r, http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", true)
	case secret != h.opts.ClientSecret:
		h.entraError(w, r, http.StatusUnauthorized, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+h.opts.ClientID+"'.", true)
	default:
		h.tokenFor(w, r, q, resource)
	}
}

// tokenFor issues a token to a client whose credential was accepted, if
// resource is this instance's (E7 otherwise).
func (h *Handler) tokenFor(w http.ResponseWriter, r *http.Request, q request, resource string) {
	if resource != h.instanceURL(q) {
		h.entraError(w, r, http.StatusBadRequest, "invalid_resource", 500011,
			"The resource principal named "+resource+" was not found in the tenant named Contoso. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", true)
		return
	}
	h.tokenOK(w, resource)
}

// tokenOK sends a token for resource (E1).
func (h *Handler) tokenOK(w http.ResponseWriter, resource string) {
	tok := h.issueToken(resource)
	setEntraHeaders(w)
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":%q}`, tok)
}

// serveWhoAmI answers the WhoAmI function (E12).
func (h *Handler) serveWhoAmI(w http.ResponseWriter, r *http.Request, q request) {
	if _, ok := h.authorize(w, r, q); !ok {
		return
	}
	if q.scenario.at == endpointWhoAmI {
		q.scenario.respond(h, w, r, q)
		return
	}
	h.whoAmIOK(w, q)
}

func (h *Handler) whoAmIOK(w http.ResponseWriter, q request) {
	writeDataverseJSON(w, http.StatusOK, struct {
		Context        string `json:"@odata.context"`
		BusinessUnitID string `json:"BusinessUnitId"`
		UserID         string `json:"UserId"`
		OrganizationID string `json:"OrganizationId"`
	}{h.instanceURL(q) + "/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", BusinessUnitID, UserID, OrganizationID})
}

// userPath matches systemusers({id}).
var userPath = regexp.MustCompile(`^/api/data/v9\.2/systemusers\(([^)]*)\)$`)

// serveUser answers the application user's row with its roles (E19, E20).
func (h *Handler) serveUser(w http.ResponseWriter, r *http.Request, q request) {
	if _, ok := h.authorize(w, r, q); !ok {
		return
	}
	m := userPath.FindStringSubmatch(q.path)
	if m == nil || !model.IsGUID(m[1]) {
		writeDataverseError(w, http.StatusBadRequest, "0x80060888", "Bad Request - Error in query syntax.")
		return
	}
	if !strings.EqualFold(m[1], UserID) {
		writeDataverseError(w, http.StatusNotFound, "0x80040217", "Entity 'systemuser' With Id = "+m[1]+" Does Not Exist")
		return
	}
	if q.scenario.at == endpointUser {
		q.scenario.respond(h, w, r, q)
		return
	}
	h.userOK(w, r, q, h.opts.Roles, false)
}

// userOK writes the user row, expanding systemuserroles_association when asked.
func (h *Handler) userOK(w http.ResponseWriter, r *http.Request, q request, roles []string, disabled bool) {
	expand := strings.Contains(r.URL.Query().Get("$expand"), "systemuserroles_association")
	type role struct {
		ETag   string `json:"@odata.etag"`
		Name   string `json:"name"`
		RoleID string `json:"roleid"`
	}
	body := struct {
		Context    string  `json:"@odata.context"`
		ETag       string  `json:"@odata.etag"`
		FullName   string  `json:"fullname"`
		IsDisabled bool    `json:"isdisabled"`
		UserID     string  `json:"systemuserid"`
		Roles      *[]role `json:"systemuserroles_association,omitempty"`
	}{
		Context:    h.instanceURL(q) + "/api/data/v9.2/$metadata#systemusers(fullname,isdisabled,systemuserroles_association(name,roleid))/$entity",
		ETag:       `W/"1234567"`,
		FullName:   h.opts.UserFullName,
		IsDisabled: disabled,
		UserID:     UserID,
	}
	if expand {
		rs := make([]role, 0, len(roles))
		for i, name := range roles {
			id := RoleID
			if i > 0 {
				id = fmt.Sprintf("88888888-8888-8888-8888-%012d", i)
			}
			rs = append(rs, role{ETag: `W/"2345678"`, Name: name, RoleID: id})
		}
		body.Roles = &rs
	}
	writeDataverseJSON(w, http.StatusOK, body)
}

// setRaw sets a header with Microsoft's spelling: net/http would write
// "Www-Authenticate" and "Odata-Version". Header names are case-insensitive,
// but a simulator should look like the real thing on the wire.
func setRaw(w http.ResponseWriter, key, value string) {
	w.Header().Del(key)
	w.Header()[key] = []string{value}
}

// setEntraHeaders sets the headers Entra sends on token answers (E1).
func setEntraHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "-1")
}

// entraError writes an Entra error (E2–E10): the AADSTS line, then Trace ID,
// Correlation ID and Timestamp separated by \r\n, and the same ids as fields.
func (h *Handler) entraError(w http.ResponseWriter, r *http.Request, status int, errName string, code int, message string, withURI bool) {
	trace := newGUID()
	corr, ok := model.ParseGUID(r.Header.Get("client-request-id"))
	if !ok {
		corr = newGUID()
	}
	ts := h.opts.Now().UTC().Format("2006-01-02 15:04:05Z")
	body := struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorCodes       []int  `json:"error_codes"`
		Timestamp        string `json:"timestamp"`
		TraceID          string `json:"trace_id"`
		CorrelationID    string `json:"correlation_id"`
		ErrorURI         string `json:"error_uri,omitempty"`
	}{
		Error:            errName,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", code, message, trace, corr, ts),
		ErrorCodes:       []int{code},
		Timestamp:        ts,
		TraceID:          trace,
		CorrelationID:    corr,
	}
	if withURI {
		body.ErrorURI = fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", code)
	}
	h.mu.Lock()
	h.lastTrace = [2]string{trace, corr}
	h.mu.Unlock()
	setEntraHeaders(w)
	setRaw(w, "x-ms-request-id", trace)
	w.WriteHeader(status)
	_ = writeJSONBody(w, body)
}

// writeDataverseJSON writes a Web API answer with its OData headers.
func writeDataverseJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	setRaw(w, "OData-Version", "4.0")
	w.WriteHeader(status)
	_ = writeJSONBody(w, v)
}

// writeDataverseError writes {"error":{"code","message"}} (E13–E18).
func writeDataverseError(w http.ResponseWriter, status int, code, message string) {
	type inner struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeDataverseJSON(w, status, struct {
		Error inner `json:"error"`
	}{inner{code, message}})
}

// writeJSONBody writes v as one JSON line, without escaping <, > and & the
// way Microsoft does not either.
func writeJSONBody(w http.ResponseWriter, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	_, err := w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return err
}

// newGUID returns a random version-4 GUID.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
