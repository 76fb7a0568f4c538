package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/dynconn/dynconn/internal/store"
)

// eventResponse is an event in the contract's shape, the same object that
// webhooks deliver.
type eventResponse struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func toEventResponse(e store.Event) eventResponse {
	return eventResponse{ID: e.PublicID, Type: e.Type, Timestamp: e.CreatedAt, Data: e.Data}
}

// handleEventList answers a page of the caller's account's events, oldest
// first, after the cursor `after`, of the types in `type` (repeated or
// comma-separated).
func handleEventList(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		p, err := parsePage(r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		var types []string
		for _, v := range q["type"] {
			for t := range strings.SplitSeq(v, ",") {
				if !slices.Contains(store.EventTypes, t) {
					return &validationError{fields: []fieldError{{Field: "type", Code: "out_of_range",
						Message: "type must be one of " + strings.Join(store.EventTypes, ", ") + "."}}}
				}
				types = append(types, t)
			}
		}
		events, next, err := st.ListEvents(r.Context(), principalFrom(r.Context()).Account,
			store.EventQuery{After: q.Get("after"), Types: types, Limit: p.Limit})
		if err != nil {
			return err
		}
		items := make([]eventResponse, len(events))
		for i, e := range events {
			items[i] = toEventResponse(e)
		}
		return encode(w, http.StatusOK, newListResponse(items, next))
	})
}
