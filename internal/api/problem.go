package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// Problem type URIs (RFC 9457 "type"). Each is listed in openapi.yaml; clients
// may branch on them, so they are stable.
const (
	typeBase          = "https://dynconn.dev/problems/"
	typeMalformed     = typeBase + "malformed-json"
	typeUnauthorized  = typeBase + "unauthorized"
	typeNotFound      = typeBase + "not-found"
	typeConflict      = typeBase + "conflict"
	typeTooLarge      = typeBase + "body-too-large"
	typeMediaType     = typeBase + "unsupported-media-type"
	typeValidation    = typeBase + "validation"
	typeNotReady      = typeBase + "not-ready"
	typeRateLimited   = typeBase + "rate-limited"
	typeMethod        = typeBase + "method-not-allowed"
	typeTimeout       = typeBase + "timeout"
	typeInternal      = typeBase + "internal"
	typeInvalidCursor = typeBase + "invalid-cursor"
	typePrecondition  = typeBase + "precondition-failed"
	typeInFlight      = typeBase + "idempotency-in-flight"
	typeKeyReused     = typeBase + "idempotency-key-reused"
	typeUnavailable   = typeBase + "unavailable"
	typeWebhookLimit  = typeBase + "webhook-limit"
	typeWebhookOff    = typeBase + "webhook-disabled"

	typeCertificateUntested = typeBase + "next-certificate-untested"
	typeForbidden           = typeBase + "forbidden"
	typeMicrosoftRefused    = typeBase + "microsoft-refused"
	typeMicrosoftThrottled  = typeBase + "microsoft-throttled"
)

// problem is an RFC 9457 problem details object (contract shape).
type problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []fieldError `json:"errors,omitempty"`
	// ExistingID names the connection a 409 collided with.
	ExistingID string `json:"existing_id,omitempty"`
	// RequestID lets support find the log lines of this request.
	RequestID string `json:"request_id,omitempty"`
	// Checks lists the readiness checks on a 503 from /readyz.
	Checks []readinessCheck `json:"checks,omitempty"`
	// Diagnosis says why Microsoft gave no token, on a 502 or 503 from the
	// token endpoint.
	Diagnosis *model.TestError `json:"diagnosis,omitempty"`

	// retryAfter, in seconds, becomes a Retry-After header.
	retryAfter int
}

// problemError is an error that already knows its problem response. Handlers
// return it for failures that are the client's, such as a malformed body.
type problemError struct{ p problem }

func (e *problemError) Error() string { return e.p.Title + " " + e.p.Detail }

func newProblem(status int, typ, title, detail string) *problemError {
	return &problemError{problem{Type: typ, Title: title, Status: status, Detail: detail}}
}

// fieldError is one entry of a validation problem's "errors" member (contract).
type fieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// validationError carries every invalid field of a request at once, so the
// modal can show a message under each.
type validationError struct{ fields []fieldError }

func (e *validationError) Error() string { return "invalid fields" }

// unavailableRetryAfter is the Retry-After, in seconds, of a 503 for want of
// the database: about how long a restart or failover of PostgreSQL takes.
const unavailableRetryAfter = 2

// problemFor maps an error that a handler for ctx returned to its problem.
// Anything it does not recognise is a 500 with a fixed title: the error
// itself may hold details that are not the client's business and goes only
// to the log.
func problemFor(ctx context.Context, err error) problem {
	var pe *problemError
	var ve *validationError
	var conflict *store.ConflictError
	var tooBig *http.MaxBytesError
	var limited *store.RateLimitedError
	switch {
	case errors.As(err, &pe):
		return pe.p
	case errors.As(err, &ve):
		return problem{Type: typeValidation, Title: "Some fields are not valid.", Status: http.StatusUnprocessableEntity,
			Detail: "Correct the fields listed in errors and try again.", Errors: ve.fields}
	case errors.As(err, &tooBig):
		return problem{Type: typeTooLarge, Title: "Request body is larger than 64 KiB.", Status: http.StatusRequestEntityTooLarge}
	case errors.Is(err, auth.ErrUnauthorized):
		return problem{Type: typeUnauthorized, Title: "Authentication required.", Status: http.StatusUnauthorized, Detail: authDetail(err)}
	case errors.Is(err, store.ErrNotFound):
		return problem{Type: typeNotFound, Title: "Connection not found.", Status: http.StatusNotFound}
	case errors.Is(err, store.ErrWebhookNotFound):
		return problem{Type: typeNotFound, Title: "Webhook not found.", Status: http.StatusNotFound}
	case errors.Is(err, store.ErrWebhookLimit):
		return problem{Type: typeWebhookLimit, Title: fmt.Sprintf("An account can have at most %d webhook endpoints.", model.MaxWebhooksPerAccount),
			Status: http.StatusConflict, Detail: "Delete an endpoint you no longer use, or subscribe an existing one to more event types."}
	case errors.Is(err, store.ErrWebhookDisabled):
		return problem{Type: typeWebhookOff, Title: "The webhook is disabled.", Status: http.StatusConflict,
			Detail: `Nothing is sent to a disabled endpoint. Enable it with PATCH {"disabled": false}, then ping it.`}
	case errors.As(err, &conflict):
		return problem{Type: typeConflict, Title: "A connection for this instance and client ID already exists.", Status: http.StatusConflict,
			Detail: "Test or update the existing connection " + conflict.ExistingID + " instead of creating another.", ExistingID: conflict.ExistingID}
	case errors.Is(err, store.ErrIdempotencyInFlight):
		return problem{Type: typeInFlight, Title: "A request with this Idempotency-Key is still in progress.", Status: http.StatusConflict,
			Detail: "Wait for the first request to finish, then retry: you will get its response.", retryAfter: 1}
	case errors.Is(err, store.ErrIdempotencyMismatch):
		return problem{Type: typeKeyReused, Title: "This Idempotency-Key was used with a different request.", Status: http.StatusUnprocessableEntity,
			Detail: "Use a new Idempotency-Key for a new request; reuse a key only to retry the very same request."}
	case errors.Is(err, store.ErrInvalidCursor):
		return problem{Type: typeInvalidCursor, Title: "The cursor is not valid.", Status: http.StatusBadRequest,
			Detail: "Pass the next_cursor of a previous page unchanged, or leave cursor out to start from the first page."}
	case store.Unavailable(ctx, err):
		return problem{Type: typeUnavailable, Title: "The service is unavailable for a moment.", Status: http.StatusServiceUnavailable,
			Detail: "Its database cannot be reached right now. Try again in a few seconds.", retryAfter: unavailableRetryAfter}
	case errors.As(err, &limited):
		secs := int(math.Ceil(limited.RetryAfter.Seconds()))
		return problem{Type: typeRateLimited, Title: "Too many connection tests.", Status: http.StatusTooManyRequests,
			Detail: fmt.Sprintf("This account may run a few tests a minute. Try again in %d seconds.", secs), retryAfter: max(secs, 1)}
	case errors.Is(err, context.DeadlineExceeded):
		return problem{Type: typeTimeout, Title: "The request took too long.", Status: http.StatusServiceUnavailable, Detail: "Try again in a moment.", retryAfter: 1}
	default:
		return problem{Type: typeInternal, Title: "Internal Server Error", Status: http.StatusInternalServerError,
			Detail: "Something went wrong on our side. Quote the request id when you contact support."}
	}
}

// authDetail is the safe reason the auth package gives (it never contains the token).
func authDetail(err error) string {
	var ue *auth.UnauthorizedError
	if errors.As(err, &ue) {
		return ue.Reason
	}
	return "Send a valid bearer token in the Authorization header."
}

// writeProblem writes err as an application/problem+json response. Only
// internal errors (500) are logged at error level, with the full error: a
// 503 says the database or a deadline failed, which the store logs once per
// outage rather than once per request.
func writeProblem(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	p := problemFor(r.Context(), err)
	p.RequestID = requestIDFrom(r.Context())
	if p.Status == http.StatusInternalServerError {
		logger.ErrorContext(r.Context(), "request failed", "request_id", p.RequestID, "err", err)
	} else {
		logger.DebugContext(r.Context(), "request refused", "request_id", p.RequestID, "status", p.Status, "type", p.Type)
	}
	body, mErr := json.Marshal(p)
	if mErr != nil { // cannot happen with these field types; keep a valid body anyway
		body = []byte(`{"type":"` + typeInternal + `","title":"Internal Server Error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="dynconn"`)
	}
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}
