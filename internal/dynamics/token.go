package dynamics

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
)

// Token is an access token for a connection's Dataverse instance, for the
// product's workers.
type Token struct {
	AccessToken secret.String
	// ExpiresAt is when Microsoft said the token expires.
	ExpiresAt time.Time
	// Resource is the instance URL the token is for.
	Resource string
}

// TokenError is why Token got no token: the check that failed, with its
// diagnosis and what Microsoft answered.
type TokenError struct {
	Check model.Check
}

// Error implements error. It names the diagnosis code, never a credential.
func (e *TokenError) Error() string { return "no token: " + e.Check.Code }

// Diagnosis is the failure as the API reports it.
func (e *TokenError) Diagnosis() model.TestError {
	return model.TestError{Code: e.Check.Code, SetupStep: e.Check.SetupStep, Message: e.Check.Message, Hint: e.Check.Hint}
}

// RetryAfter is the wait in seconds Microsoft asked for, or 0.
func (e *TokenError) RetryAfter() int {
	if e.Check.Upstream == nil {
		return 0
	}
	return e.Check.Upstream.RetryAfter
}

// Token gets an access token for cr's instance as a test's first three
// checks do (instance URL, tenant discovery, token: the same rules, the same
// diagnoses), and returns it, or a *TokenError from the check that failed. It
// logs one line with the outcome, never the token or the credential.
func (c *Client) Token(ctx context.Context, cr Credentials) (Token, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.opts.Deadline)
	defer cancel()
	r := &run{c: c, cr: cr, x: &exchange{}}
	r.hc = r.x.httpClient(c.transport)
	steps := []struct {
		name string
		run  func(context.Context) model.Check
	}{{model.CheckInstanceURL, r.instanceURL}, {model.CheckTenantDiscovery, r.tenantDiscovery}, {model.CheckToken, r.token}}
	var failure *model.Check
	for _, step := range steps {
		if ch := step.run(ctx); ch.Status == model.CheckFailed {
			ch.Name = step.name
			failure = &ch
			break
		}
	}
	if failure == nil && r.tokenExpiry.IsZero() {
		ch := failed(CodeUnexpectedResponse, "The token endpoint answered without expires_in.", &model.Upstream{HTTPStatus: http.StatusOK})
		failure = &ch
	}
	outcome := "ok"
	if failure != nil {
		outcome = failure.Code
	}
	c.logger.LogAttrs(ctx, slog.LevelInfo, "dynamics token",
		slog.String("outcome", outcome),
		slog.Int64("duration_ms", time.Since(start).Milliseconds()),
		slog.String("instance", r.inst.URL),
		slog.String("client_id", strings.TrimSpace(cr.ClientID)),
		slog.String("tenant_id", r.tenant))
	if failure != nil {
		return Token{}, &TokenError{Check: *failure}
	}
	return Token{AccessToken: secret.String(r.accessToken), ExpiresAt: r.tokenExpiry.UTC(), Resource: r.inst.URL}, nil
}
