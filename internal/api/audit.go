package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/dynconn/dynconn/internal/store"
)

// auditOf says who makes a change in this request.
func auditOf(r *http.Request) store.Audit {
	return store.Audit{Actor: principalFrom(r.Context()).Subject, RequestID: requestIDFrom(r.Context())}
}

// auditEventResponse is one audit event (contract).
type auditEventResponse struct {
	ID           string          `json:"id"`
	ConnectionID string          `json:"connection_id"`
	Actor        string          `json:"actor"`
	Action       string          `json:"action"`
	RequestID    string          `json:"request_id"`
	CreatedAt    time.Time       `json:"created_at"`
	Details      json.RawMessage `json:"details"`
}

// handleConnectionEvents answers a page of a connection's audit trail,
// newest first.
func handleConnectionEvents(logger *slog.Logger, st *store.Store) http.Handler {
	return handleConnectionHistory(logger, st.AuditTrail, func(e store.AuditEvent) auditEventResponse {
		return auditEventResponse{ID: strconv.FormatInt(e.ID, 10), ConnectionID: e.ConnectionID, Actor: e.Actor,
			Action: e.Action, RequestID: e.RequestID, CreatedAt: e.CreatedAt, Details: e.Details}
	})
}
