package dynamics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/outbound"
)

// Test runs the checks instance_url, tenant_discovery, token, whoami and
// security_role in that order, each only if the ones before it did not fail,
// and never returns an error: every failure is a classified result. It logs
// one line with the outcome, the duration and Microsoft's trace and
// correlation ids, never the secret or the token.
func (c *Client) Test(ctx context.Context, cr Credentials) model.TestResult {
	testedAt := c.opts.Now().UTC()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.opts.Deadline)
	defer cancel()

	r := &run{c: c, cr: cr, x: &exchange{}}
	r.hc = r.x.httpClient(c.transport)
	r.checks = []model.Check{
		{Name: model.CheckInstanceURL, Status: model.CheckSkipped},
		{Name: model.CheckTenantDiscovery, Status: model.CheckSkipped},
		{Name: model.CheckToken, Status: model.CheckSkipped},
		{Name: model.CheckWhoAmI, Status: model.CheckSkipped},
		{Name: model.CheckSecurityRole, Status: model.CheckSkipped},
	}
	steps := []func(context.Context) model.Check{r.instanceURL, r.tenantDiscovery, r.token, r.whoAmI, r.securityRole}
	progress := progressFrom(ctx)
	done := 0
	for i, step := range steps {
		check := step(ctx)
		check.Name = r.checks[i].Name
		r.checks[i] = check
		progress(check)
		done++
		if check.Status == model.CheckFailed {
			break
		}
	}
	for _, skipped := range r.checks[done:] {
		progress(skipped)
	}

	res := model.TestResult{OK: true, TestedAt: testedAt, Checks: r.checks}
	for _, ch := range r.checks {
		if ch.Status == model.CheckFailed {
			d := diagnosis(ch.Code)
			res.OK = false
			res.Error = &model.TestError{Code: d.Code, SetupStep: d.Step(), Message: d.Message, Hint: d.Hint}
			break
		}
	}
	if res.OK {
		roles := r.roles
		if roles == nil {
			roles = []string{}
		}
		res.Identity = &model.Identity{
			TenantID:       r.tenant,
			UserID:         r.who.UserID,
			BusinessUnitID: r.who.BusinessUnitID,
			OrganizationID: r.who.OrganizationID,
			Roles:          roles,
		}
	}
	res.DurationMS = time.Since(start).Milliseconds()
	limitUpstreamText(&res)
	c.logResult(ctx, r, res)
	return res
}

// run is the state of one Test.
type run struct {
	c      *Client
	cr     Credentials
	x      *exchange
	hc     *http.Client
	checks []model.Check

	inst        Instance
	auth        authority
	tenant      string
	accessToken string
	tokenExpiry time.Time
	who         whoAmIResponse
	roles       []string
}

// passed, warned and failed build checks; failed fills in the diagnosis.
func passed(detail string) model.Check {
	return model.Check{Status: model.CheckPassed, Detail: detail}
}

func failed(code, detail string, up *model.Upstream) model.Check {
	return withDiagnosis(model.Check{Status: model.CheckFailed, Detail: detail, Upstream: up}, code)
}

func warned(code, detail string) model.Check {
	return withDiagnosis(model.Check{Status: model.CheckWarning, Detail: detail}, code)
}

func withDiagnosis(ch model.Check, code string) model.Check {
	d := diagnosis(code)
	ch.Code, ch.Message, ch.Hint, ch.SetupStep = d.Code, d.Message, d.Hint, d.Step()
	return ch
}

func (r *run) instanceURL(context.Context) model.Check {
	inst, err := ParseInstanceURL(r.cr.InstanceURL, r.c.opts.AllowLoopback)
	if err != nil {
		detail := err.Error()
		var ie *InstanceURLError
		if errors.As(err, &ie) {
			detail = ie.Message
		}
		return failed(CodeInstanceURLInvalid, detail, nil)
	}
	r.inst = inst
	u, _ := url.Parse(inst.URL)
	r.x.allow(u)
	return passed(fmt.Sprintf("%s (%s cloud)", inst.URL, inst.Cloud))
}

func (r *run) tenantDiscovery(ctx context.Context) model.Check {
	auth, cached := r.c.cache.get(r.inst.URL)
	if !cached {
		var ch model.Check
		auth, ch = r.discover(ctx)
		if ch.Status == model.CheckFailed {
			return ch
		}
		r.c.cache.put(r.inst.URL, auth)
	}
	r.auth = auth
	u, _ := url.Parse(auth.Base)
	r.x.allow(u)

	r.tenant = auth.Tenant
	if want := strings.TrimSpace(r.cr.TenantID); want != "" {
		if !tenantName.MatchString(want) {
			return failed(CodeTenantNotFound, fmt.Sprintf("%q is not a tenant id", want), nil)
		}
		r.tenant = want
		if !strings.EqualFold(want, auth.Tenant) {
			return warned(CodeTenantMismatch, fmt.Sprintf(
				"The instance belongs to tenant %s, but the connection names tenant %s; the test used %s.",
				auth.Tenant, want, want))
		}
	}
	detail := "tenant " + r.tenant
	if cached {
		detail += " (discovered earlier)"
	}
	return passed(detail)
}

// discover asks the instance who signs for it: an unauthenticated request
// that Dataverse answers with 401 and a Bearer challenge.
func (r *run) discover(ctx context.Context) (authority, model.Check) {
	ctx, cancel := context.WithTimeout(ctx, r.c.opts.StepTimeout)
	defer cancel()
	resp, body, err := r.get(ctx, r.inst.URL+"/api/data/v9.2/", "")
	if err != nil {
		return authority{}, r.transportFailure(ctx, err, true)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return authority{}, r.dataverseFailure(resp, body)
	case resp.StatusCode != http.StatusUnauthorized:
		return authority{}, failed(CodeNotDataverse,
			fmt.Sprintf("%s answered HTTP %d instead of asking for a Microsoft sign-in.", r.inst.URL, resp.StatusCode),
			&model.Upstream{HTTPStatus: resp.StatusCode})
	}
	ch, err := parseChallenge(resp.Header.Values("WWW-Authenticate"))
	if err != nil {
		return authority{}, failed(CodeNotDataverse,
			r.inst.URL+" asked for a sign-in, but not with the Bearer authorization_uri and resource_id that Dynamics 365 sends.",
			&model.Upstream{HTTPStatus: resp.StatusCode})
	}
	auth, err := parseAuthority(r.inst, ch.AuthorizationURI, r.c.opts.AllowLoopback)
	if err != nil {
		return authority{}, failed(CodeAuthorityNotAllowed, err.Error(), &model.Upstream{HTTPStatus: resp.StatusCode})
	}
	return auth, model.Check{Status: model.CheckPassed}
}

func (r *run) token(ctx context.Context) model.Check {
	clientID := strings.TrimSpace(r.cr.ClientID)
	if clientID == "" {
		return failed(CodeAppNotFound, "The Client ID is empty.", nil)
	}
	tokenURL := r.auth.TokenURL(r.tenant)
	scopes := []string{r.inst.URL + "/.default"}
	var cfg *clientcredentials.Config
	if cert := r.cr.Certificate; cert != nil {
		now := r.c.opts.Now()
		if !now.Before(cert.NotAfter) {
			return failed(CodeCertificateExpired, fmt.Sprintf("Certificate %s expired on %s.",
				cert.Thumbprint, cert.NotAfter.UTC().Format(time.DateOnly)), nil)
		}
		assertion, err := cert.Signer.Assertion(tokenURL, clientID, now)
		if err != nil {
			return failed(CodeUnexpectedResponse, "dynconn could not sign the client assertion.", nil) // a destroyed signer: our bug
		}
		cfg = credential.ClientCredentials(tokenURL, clientID, scopes, assertion)
	} else {
		if len(r.cr.ClientSecret) == 0 {
			return failed(CodeClientSecretMissing, "The client secret is empty.", nil)
		}
		cfg = &clientcredentials.Config{
			ClientID:     clientID,
			ClientSecret: string(r.cr.ClientSecret), // x/oauth2 takes a string: a copy we cannot clear
			TokenURL:     tokenURL,
			Scopes:       scopes,
			AuthStyle:    oauth2.AuthStyleInParams,
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.c.opts.StepTimeout)
	defer cancel()
	// Always a fresh token: a cached one would not prove the credential still works.
	r.x.takeStatus()
	tok, err := cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, r.hc))
	status := r.x.takeStatus()
	if err != nil {
		var re *oauth2.RetrieveError
		var refused *outbound.RefusedError
		switch {
		case r.x.sawOverflow() || ctx.Err() != nil || errors.As(err, &refused):
			return r.transportFailure(ctx, err, false)
		case errors.As(err, &re):
			return r.entraFailure(re)
		case status != 0:
			// An answer arrived but oauth2 could not read it (not JSON).
			return failed(CodeUnexpectedResponse, "The token endpoint's answer could not be read: "+shorten(err.Error()),
				&model.Upstream{HTTPStatus: status})
		}
		return r.transportFailure(ctx, err, false)
	}
	if tok.AccessToken == "" || !strings.EqualFold(tok.Type(), "Bearer") {
		return failed(CodeUnexpectedResponse, "The token endpoint answered without a Bearer access token.", &model.Upstream{HTTPStatus: http.StatusOK})
	}
	r.accessToken = tok.AccessToken
	r.tokenExpiry = tok.Expiry
	host := r.auth.Base
	if u, err := url.Parse(r.auth.Base); err == nil {
		host = u.Host
	}
	how := "a client secret"
	if r.cr.Certificate != nil {
		how = "certificate " + r.cr.Certificate.Thumbprint
	}
	return passed(fmt.Sprintf("%s issued a token for tenant %s (signed in with %s)", host, r.tenant, how))
}

// whoAmIResponse is Dataverse's WhoAmIResponse (microsoft-facts.md §4.2).
type whoAmIResponse struct {
	UserID         string `json:"UserId"`
	BusinessUnitID string `json:"BusinessUnitId"`
	OrganizationID string `json:"OrganizationId"`
}

func (r *run) whoAmI(ctx context.Context) model.Check {
	ctx, cancel := context.WithTimeout(ctx, r.c.opts.StepTimeout)
	defer cancel()
	resp, body, err := r.get(ctx, r.inst.URL+"/api/data/v9.2/WhoAmI", r.accessToken)
	if err != nil {
		return r.transportFailure(ctx, err, false)
	}
	if resp.StatusCode != http.StatusOK {
		return r.dataverseFailure(resp, body)
	}
	var who whoAmIResponse
	if err := json.Unmarshal(body, &who); err != nil || !model.IsGUID(who.UserID) || !model.IsGUID(who.BusinessUnitID) || !model.IsGUID(who.OrganizationID) {
		return failed(CodeUnexpectedResponse, "WhoAmI answered HTTP 200 without the user, business unit and organization ids.",
			&model.Upstream{HTTPStatus: resp.StatusCode})
	}
	r.who = who
	return passed("signed in as application user " + who.UserID)
}

// systemUser is the application user's row with its directly assigned roles.
type systemUser struct {
	FullName   string `json:"fullname"`
	IsDisabled *bool  `json:"isdisabled"`
	Roles      *[]struct {
		Name   string `json:"name"`
		RoleID string `json:"roleid"`
	} `json:"systemuserroles_association"`
}

func (r *run) securityRole(ctx context.Context) model.Check {
	ctx, cancel := context.WithTimeout(ctx, r.c.opts.StepTimeout)
	defer cancel()
	u := r.inst.URL + "/api/data/v9.2/systemusers(" + strings.ToLower(r.who.UserID) + ")" +
		"?$select=fullname,isdisabled&$expand=systemuserroles_association($select=name,roleid)"
	resp, body, err := r.get(ctx, u, r.accessToken)
	if err != nil {
		return r.transportFailure(ctx, err, false)
	}
	if resp.StatusCode != http.StatusOK {
		return r.dataverseFailure(resp, body)
	}
	var user systemUser
	if err := json.Unmarshal(body, &user); err != nil || user.IsDisabled == nil || user.Roles == nil {
		return failed(CodeUnexpectedResponse, "The application user's record came back without isdisabled or its roles.",
			&model.Upstream{HTTPStatus: resp.StatusCode})
	}
	name := user.FullName
	if name == "" {
		name = "The application user"
	}
	if *user.IsDisabled {
		return failed(CodeApplicationUserDisabled, name+" is disabled.", nil)
	}
	roles := make([]string, 0, len(*user.Roles))
	for _, role := range *user.Roles {
		roles = append(roles, role.Name)
	}
	r.roles = roles
	if len(roles) == 0 {
		return warned(CodeSecurityRoleMissing,
			name+" has no security role of its own (roles it gets through a team are not counted).")
	}
	return passed(name + ": " + strings.Join(roles, ", "))
}

// get sends a GET with the OData headers, and a bearer token when given, and
// returns the response with its body read (at most maxBody) and closed.
func (r *run) get(ctx context.Context, rawURL, token string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-MaxVersion", "4.0")
	req.Header.Set("OData-Version", "4.0")
	req.Header.Set("If-None-Match", "null")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", req.URL.Path, err)
	}
	return resp, body, nil
}

// logResult writes the one log line per test. It names Microsoft's trace and
// correlation ids so support can find the request in Microsoft's logs.
func (c *Client) logResult(ctx context.Context, r *run, res model.TestResult) {
	outcome := "ok"
	if res.Error != nil {
		outcome = res.Error.Code
	}
	attrs := []slog.Attr{
		slog.String("outcome", outcome),
		slog.Int64("duration_ms", res.DurationMS),
		slog.String("instance", r.inst.URL),
		slog.String("client_id", strings.TrimSpace(r.cr.ClientID)),
		slog.String("tenant_id", r.tenant),
	}
	var warnings []string
	for _, ch := range res.Checks {
		if ch.Status == model.CheckWarning {
			warnings = append(warnings, ch.Code)
		}
		if ch.Upstream == nil {
			continue
		}
		up := ch.Upstream
		attrs = append(attrs, slog.String("check", ch.Name), slog.Int("http_status", up.HTTPStatus))
		if up.Error != "" {
			attrs = append(attrs, slog.String("ms_error", up.Error), slog.Any("ms_error_codes", up.ErrorCodes))
		}
		if up.Code != "" {
			attrs = append(attrs, slog.String("ms_code", up.Code))
		}
		if up.TraceID != "" || up.CorrelationID != "" {
			attrs = append(attrs, slog.String("trace_id", up.TraceID), slog.String("correlation_id", up.CorrelationID))
		}
		if up.RetryAfter > 0 {
			attrs = append(attrs, slog.Int("retry_after_seconds", up.RetryAfter))
		}
	}
	if len(warnings) > 0 {
		attrs = append(attrs, slog.Any("warnings", warnings))
	}
	c.logger.LogAttrs(ctx, slog.LevelInfo, "dynamics connection test", attrs...)
}
