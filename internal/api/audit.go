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

// eventResponse is one audit event (contract).
type eventResponse struct {
	ID           string          `json:"id"`
	ConnectionID string          `json:"connection_id"`
	Actor        string          `json:"actor"`
	Action       string          `json:"action"`
	RequestID    string          `json:"request_id"`
	CreatedAt    time.Time       `json:"created_at"`
	Details      json.RawMessage `json:"details"`
}

func handleConnectionEvents(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		p, err := parsePage(r)
		if err != nil {
			return err
		}
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		events, next, err := st.Events(r.Context(), principalFrom(r.Context()).Account, id, p)
		if err != nil {
			return err
		}
		items := make([]eventResponse, len(events))
		for i, e := range events {
			items[i] = eventResponse{ID: strconv.FormatInt(e.ID, 10), ConnectionID: e.ConnectionID, Actor: e.Actor,
				Action: e.Action, RequestID: e.RequestID, CreatedAt: e.CreatedAt, Details: e.Details}
		}
		return encode(w, http.StatusOK, newListResponse(items, next))
	})
}
