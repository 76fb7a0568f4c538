// Package model holds the plain domain types that the store, the API and the
// Dynamics client share. It imports only the standard library.
package model

import (
	"encoding/json"
	"time"
)

// Cloud is the Microsoft cloud an instance lives in. The values are stored in
// the database and are part of the API contract: do not rename them.
type Cloud string

// The clouds dynconn knows. Do not reorder or rename: persisted.
const (
	CloudPublic  Cloud = "public"
	CloudGCC     Cloud = "gcc"
	CloudGCCHigh Cloud = "gcc_high"
	CloudDoD     Cloud = "dod"
	CloudChina   Cloud = "china"
)

// Status is a connection's state as of its latest test. Persisted and contract.
type Status string

// Connection statuses.
const (
	StatusUntested  Status = "untested"
	StatusConnected Status = "connected"
	StatusFailing   Status = "failing"
)

// CheckStatus is the outcome of one check of a connection test (contract).
type CheckStatus string

// Check outcomes.
const (
	CheckPassed  CheckStatus = "passed"
	CheckFailed  CheckStatus = "failed"
	CheckWarning CheckStatus = "warning"
	CheckSkipped CheckStatus = "skipped"
)

// Check names, in the order a test runs them (contract).
const (
	CheckInstanceURL     = "instance_url"
	CheckTenantDiscovery = "tenant_discovery"
	CheckToken           = "token"
	CheckWhoAmI          = "whoami"
	CheckSecurityRole    = "security_role"
)

// Upstream is what Microsoft answered when a check failed: the parts of its
// error response that help support staff, never a token or a secret.
type Upstream struct {
	HTTPStatus    int    `json:"http_status,omitempty"`
	Error         string `json:"error,omitempty"`
	ErrorCodes    []int  `json:"error_codes,omitempty"`
	Code          string `json:"code,omitempty"` // Dataverse's hex error code, e.g. 0x80072560
	Message       string `json:"message,omitempty"`
	TraceID       string `json:"trace_id,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	RetryAfter    int    `json:"retry_after_seconds,omitempty"`
}

// Check is one step of a connection test (contract shape).
type Check struct {
	Name      string      `json:"name"`
	Status    CheckStatus `json:"status"`
	Detail    string      `json:"detail,omitempty"`
	Code      string      `json:"code,omitempty"`
	Message   string      `json:"message,omitempty"`
	Hint      string      `json:"hint,omitempty"`
	SetupStep *string     `json:"setup_step,omitempty"`
	Upstream  *Upstream   `json:"upstream,omitempty"`
}

// TestError summarises why a test failed (contract shape). SetupStep is null
// when the customer did nothing wrong (throttling, outages).
type TestError struct {
	Code      string  `json:"code"`
	SetupStep *string `json:"setup_step"`
	Message   string  `json:"message"`
	Hint      string  `json:"hint"`
}

// Identity is who the credentials act as in Dataverse, on success.
type Identity struct {
	TenantID       string   `json:"tenant_id"`
	UserID         string   `json:"user_id"`
	BusinessUnitID string   `json:"business_unit_id"`
	OrganizationID string   `json:"organization_id"`
	Roles          []string `json:"roles"`
}

// TestResult is the outcome of a connection test (contract shape). Both test
// endpoints return it with HTTP 200 whatever the outcome.
type TestResult struct {
	OK         bool       `json:"ok"`
	TestedAt   time.Time  `json:"tested_at"`
	DurationMS int64      `json:"duration_ms"`
	Checks     []Check    `json:"checks"`
	Error      *TestError `json:"error"`
	Identity   *Identity  `json:"identity"`
	// Trigger says who asked for the test; results stored before triggers
	// were recorded have none.
	Trigger Trigger `json:"trigger,omitempty"`
}

// Transient reports whether r failed for a reason that is not the
// customer's (throttling, an outage, a timeout: no setup step), so that a
// later try may pass unchanged.
func (r TestResult) Transient() bool { return r.Error != nil && r.Error.SetupStep == nil }

// Trigger says what started a test, or what changed a connection's status
// (contract).
type Trigger string

// Triggers.
const (
	// TriggerManual is a test someone asked for through the API.
	TriggerManual Trigger = "manual"
	// TriggerScheduled is a re-check the service ran on its own.
	TriggerScheduled Trigger = "scheduled"
	// TriggerUpdate is an edit of a connection's credentials, which makes a
	// tested connection untested again.
	TriggerUpdate Trigger = "update"
)

// Connection is a stored Dynamics 365 connection. The secret is held only in
// sealed form; see package crypto.
type Connection struct {
	ID          string
	Account     string
	Name        string
	InstanceURL string // normalised: https://host
	Cloud       Cloud
	ClientID    string  // canonical lower-case GUID
	TenantID    *string // canonical lower-case GUID, or nil to discover it

	Secret          SealedSecret
	SecretUpdatedAt time.Time
	// SecretExpiresAt is when the customer said the secret expires, if they did.
	SecretExpiresAt *time.Time
	// SecretExpiredAt is when a test found that Microsoft considers the secret
	// expired; a new secret clears it.
	SecretExpiredAt *time.Time

	Status Status
	// StatusSince is when Status took its value; nil for connections whose
	// status predates its tracking.
	StatusSince *time.Time
	LastTest    json.RawMessage // a TestResult as JSON, or nil
	// LastCheckedAt is when a test result was last recorded, by any trigger.
	LastCheckedAt *time.Time
	// NextCheckAt is when the scheduler re-tests it next; nil until it is
	// first scheduled, and while re-checks are off.
	NextCheckAt *time.Time
	// Version grows by one with every change; the API's ETag is made from it.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SecretState says whether a connection's secret needs attention.
type SecretState string

// Secret states (contract).
const (
	SecretValid    SecretState = "valid"
	SecretExpiring SecretState = "expiring"
	SecretExpired  SecretState = "expired"
	SecretUnknown  SecretState = "unknown"
)

// ExpiringWithin is how long before its expiry a secret counts as expiring.
const ExpiringWithin = 30 * 24 * time.Hour

// SecretState returns the state of c's secret at now: expired once Microsoft
// said so or its expiry has passed, expiring within ExpiringWithin of it,
// unknown when nobody told us when it expires. The store's secret_state filter
// applies the same rule in SQL.
func (c Connection) SecretState(now time.Time) SecretState {
	switch {
	case c.SecretExpiredAt != nil:
		return SecretExpired
	case c.SecretExpiresAt == nil:
		return SecretUnknown
	case !c.SecretExpiresAt.After(now):
		return SecretExpired
	case !c.SecretExpiresAt.After(now.Add(ExpiringWithin)):
		return SecretExpiring
	default:
		return SecretValid
	}
}

// SealedSecret is an envelope-encrypted secret as stored: the ciphertext, the
// data key wrapped by a key-encryption key, and that key's id.
type SealedSecret struct {
	Ciphertext []byte
	WrappedDEK []byte
	KEKID      string
}
