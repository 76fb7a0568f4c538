package webhook

import (
	"encoding/json"
	"time"
)

// Event is an event in the contract's shape (design.md, "Scheduled re-checks
// and events"): the body of every delivery, and an item of GET /events.
// Timestamp is when the change happened, not when the attempt is made, so
// every attempt sends the same bytes.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}
