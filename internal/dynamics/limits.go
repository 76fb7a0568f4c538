package dynamics

import (
	"unicode/utf8"

	"github.com/dynconn/dynconn/internal/model"
)

// Bounds on the text that Microsoft's answers put into a test result, which
// is logged, stored with the connection and in its history, and returned. A
// misbehaving endpoint, or one that only claims to be Microsoft, must not make
// any of them large.
const (
	maxText       = 500 // messages and details, in bytes
	maxToken      = 64  // error names, codes and ids (a GUID is 36 characters)
	maxErrorCodes = 10  // AADSTS numbers (Entra sends one or two)
	maxRoles      = 100 // security roles of the application user
	maxRoleName   = 100 // Dataverse's own limit on a role's name
)

// limitUpstreamText cuts what came from Microsoft in res to the bounds above.
func limitUpstreamText(res *model.TestResult) {
	for i := range res.Checks {
		ch := &res.Checks[i]
		ch.Detail = cut(ch.Detail, maxText)
		up := ch.Upstream
		if up == nil {
			continue
		}
		up.Error = cut(up.Error, maxToken)
		up.Code = cut(up.Code, maxToken)
		up.TraceID = cut(up.TraceID, maxToken)
		up.CorrelationID = cut(up.CorrelationID, maxToken)
		up.Message = cut(up.Message, maxText)
		if len(up.ErrorCodes) > maxErrorCodes {
			up.ErrorCodes = up.ErrorCodes[:maxErrorCodes]
		}
	}
	if res.Identity != nil {
		roles := res.Identity.Roles
		if len(roles) > maxRoles {
			roles = roles[:maxRoles]
		}
		for i, r := range roles {
			roles[i] = cut(r, maxRoleName)
		}
		res.Identity.Roles = roles
	}
}

// shorten keeps upstream text to a size that fits a log line and a response.
func shorten(s string) string { return cut(s, maxText) }

// cut returns s if it has at most max bytes, else its longest prefix of whole
// characters that fits max bytes with an ellipsis after it.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max - len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
