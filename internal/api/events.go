package api

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/webhook"
)

// toEventResponse is e in the contract's shape: webhook.Event, the very
// object that webhooks deliver.
func toEventResponse(e store.Event) webhook.Event {
	return webhook.Event{ID: e.PublicID, Type: e.Type, Timestamp: e.CreatedAt, Data: e.Data}
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
		items := make([]webhook.Event, len(events))
		for i, e := range events {
			items[i] = toEventResponse(e)
		}
		return encode(w, http.StatusOK, newListResponse(items, next))
	})
}
