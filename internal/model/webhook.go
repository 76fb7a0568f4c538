package model

import (
	"slices"
	"time"
)

// Why a webhook endpoint is disabled. Persisted: do not rename.
const (
	// DisabledByAPI: the account set "disabled": true.
	DisabledByAPI = "api"
	// DisabledGone: the endpoint answered 410 Gone to a delivery.
	DisabledGone = "gone"
)

// MaxWebhooksPerAccount bounds an account's endpoints: each event costs one
// delivery (and its retries) per endpoint.
const MaxWebhooksPerAccount = 10

// Webhook is a customer's webhook endpoint. The signing secret is held only
// in sealed form; see package crypto.
type Webhook struct {
	ID      string
	Account string
	URL     string
	// EventTypes are the event types delivered to it; nil means every type,
	// including types added later.
	EventTypes  []string
	Description string
	// DisabledReason is "" while enabled, else DisabledByAPI or DisabledGone.
	DisabledReason string
	Secret         SealedSecret
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Disabled reports whether deliveries to w are paused.
func (w Webhook) Disabled() bool { return w.DisabledReason != "" }

// Wants reports whether w subscribes to events of type t.
func (w Webhook) Wants(t string) bool { return w.EventTypes == nil || slices.Contains(w.EventTypes, t) }
