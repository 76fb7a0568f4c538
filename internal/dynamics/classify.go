package dynamics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/outbound"
)

// This file turns what went wrong in a request into a diagnosis code: a
// transport failure, an Entra ID error answer, or a Dataverse error answer,
// each with the table of Microsoft's codes it branches on.

// transportFailure classifies a request that got no usable answer.
// discovery is true for the first request to the instance, where the
// failure says something about the instance URL itself.
func (r *run) transportFailure(ctx context.Context, err error, discovery bool) model.Check {
	var refused *outbound.RefusedError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &refused):
		return failed(CodeDestinationNotAllowed, refused.Reason+".", nil)
	case r.x.sawOverflow() || errors.Is(err, outbound.ErrBodyTooLarge):
		return failed(CodeResponseTooLarge, "The answer was over 1 MiB; dynconn stopped reading it.", nil)
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		detail := fmt.Sprintf("No answer within %s.", r.c.opts.StepTimeout)
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) && r.c.opts.Deadline < r.c.opts.StepTimeout {
			detail = fmt.Sprintf("No answer within the test's %s deadline.", r.c.opts.Deadline)
		}
		if discovery {
			return failed(CodeInstanceUnreachable, detail, nil)
		}
		return failed(CodeMicrosoftTimeout, detail, nil)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		if discovery {
			return failed(CodeInstanceNotFound, dnsErr.Name+" does not exist (DNS).", nil)
		}
		return failed(CodeMicrosoftUnreachable, dnsErr.Name+" does not exist (DNS).", nil)
	case discovery:
		return failed(CodeInstanceUnreachable, shorten(err.Error()), nil)
	default:
		return failed(CodeMicrosoftUnreachable, shorten(err.Error()), nil)
	}
}

// entraError is Entra ID's OAuth error body (microsoft-facts.md §2.1).
type entraError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
}

// entraCodes maps AADSTS numbers to diagnosis codes. Microsoft warns that
// error_description changes; the numbers are what we branch on.
var entraCodes = map[int]string{
	7000215: CodeClientSecretInvalid,
	7000222: CodeClientSecretExpired,
	7000218: CodeClientSecretMissing,
	700027:  CodeCertificateNotUploaded,
	700016:  CodeAppNotFound,
	7000229: CodeAppServicePrincipalMissing,
	7000112: CodeAppDisabled,
	90002:   CodeTenantNotFound,
	900023:  CodeTenantNotFound,
	90038:   CodeTenantInOtherCloud,
	500011:  CodeDynamicsNotInTenant,
	70011:   CodeScopeRejected,
	1002012: CodeScopeRejected,
	53003:   CodeConditionalAccessBlocked,
	90055:   CodeThrottled,
}

// entraFailure classifies the token endpoint's error answer.
func (r *run) entraFailure(re *oauth2.RetrieveError) model.Check {
	up := &model.Upstream{}
	if re.Response != nil {
		up.HTTPStatus = re.Response.StatusCode
		up.RetryAfter = retryAfter(re.Response.Header.Get("Retry-After"), r.c.opts.Now())
	}
	var body entraError
	parsed := json.Unmarshal(re.Body, &body) == nil && body.Error != ""
	if parsed {
		up.Error = body.Error
		up.ErrorCodes = body.ErrorCodes
		up.TraceID = body.TraceID
		up.CorrelationID = body.CorrelationID
		msg, _, _ := strings.Cut(body.ErrorDescription, "\r\n")
		up.Message = shorten(msg)
	}
	code := ""
	for _, n := range body.ErrorCodes {
		if c, ok := entraCodes[n]; ok {
			code = c
			break
		}
	}
	if code == "" {
		switch {
		case up.HTTPStatus == http.StatusTooManyRequests:
			code = CodeThrottled
		case up.HTTPStatus >= 500 || body.Error == "temporarily_unavailable":
			code = CodeMicrosoftUnavailable
		default:
			code = CodeUnexpectedResponse
		}
	}
	detail := ""
	switch {
	case code == CodeClientSecretInvalid && model.IsGUID(string(r.cr.ClientSecret)):
		detail = "The secret you entered has the form of a Secret ID (a GUID); a secret's Value is not a GUID."
	case code == CodeCertificateNotUploaded && r.cr.Certificate != nil:
		detail = "The app registration has no certificate with thumbprint " + r.cr.Certificate.Thumbprint + "."
	case !parsed:
		detail = fmt.Sprintf("The token endpoint answered HTTP %d without Microsoft's error details.", up.HTTPStatus)
	}
	return failed(code, detail, up)
}

// dataverseError is the Web API's error body (microsoft-facts.md §5.1).
type dataverseError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// dataverseCodes maps Dataverse's hex error codes (lower case) to diagnoses.
var dataverseCodes = map[string]string{
	"0x80072560": CodeApplicationUserMissing,  // UserNotMemberOfOrg
	"0x80040225": CodeApplicationUserDisabled, // unManagedidsusernotenabled
	"0x8004a112": CodeApplicationUserDisabled, // SystemUserDisabled
	"0x80040220": CodePrivilegeMissing,        // PrivilegeDenied
	"0x80042f09": CodeSecurityRoleMissing,     // UserNotAssignedRoles
	"0x8004a113": CodeAdminMode,               // UserDoesNotHaveAdminOnlyModePermissions
	"0x8004a104": CodeEnvironmentDisabled,     // OrganizationDisabled
	"0x80095ffc": CodeDataverseAPIBlocked,     // app id restricted from the Dataverse API
	"0x80072322": CodeThrottled,               // ThrottlingBurstRequestLimitExceededError
	"0x80072321": CodeThrottled,               // ThrottlingTimeExceededError
	"0x80072326": CodeThrottled,               // ThrottlingConcurrencyLimitExceededError
	"0x8005f103": CodeThrottled,               // Throttling
	"0x80044302": CodeTokenRejected,           // RequestIsNotAuthenticated
	"0x8005f101": CodeTokenRejected,           // AccessTokenExpired
}

// dataverseFailure classifies a Dataverse error answer.
func (r *run) dataverseFailure(resp *http.Response, body []byte) model.Check {
	up := &model.Upstream{HTTPStatus: resp.StatusCode,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), r.c.opts.Now())}
	var de dataverseError
	parsed := json.Unmarshal(body, &de) == nil && (de.Error.Code != "" || de.Error.Message != "")
	if parsed {
		up.Code = de.Error.Code
		up.Message = shorten(de.Error.Message)
	}
	code, ok := dataverseCodes[strings.ToLower(de.Error.Code)]
	if !ok {
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			code = CodeThrottled
		case resp.StatusCode >= 500:
			code = CodeMicrosoftUnavailable
		case resp.StatusCode == http.StatusUnauthorized:
			code = CodeTokenRejected
		case resp.StatusCode == http.StatusBadRequest && strings.Contains(de.Error.Message, " is disabled."):
			code = CodeApplicationUserDisabled
		default:
			code = CodeUnexpectedResponse
		}
	}
	detail := ""
	if !parsed {
		detail = fmt.Sprintf("Dynamics 365 answered HTTP %d without an error code.", resp.StatusCode)
	}
	return failed(code, detail, up)
}

// retryAfter reads a Retry-After header (seconds or an HTTP date) as seconds.
func retryAfter(v string, now time.Time) int {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return n
	}
	if t, err := http.ParseTime(v); err == nil {
		if s := int(t.Sub(now).Seconds() + 0.999); s > 0 {
			return s
		}
	}
	return 0
}
