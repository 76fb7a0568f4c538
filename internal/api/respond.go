package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/store"
)

// apiFunc is an HTTP handler that reports failure by returning an error
// instead of writing an error response itself.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts fn to http.Handler: a returned error becomes its problem
// response (problemFor).
func handle(logger *slog.Logger, fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeProblem(w, r, logger, err)
		}
	})
}

// marshal returns v as a JSON response body, newline included: the exact
// bytes encode writes, which an idempotent create keeps for its replays.
func marshal(v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return append(body, '\n'), nil
}

// encode writes v as JSON with the given status. It marshals before writing
// headers so an encoding failure can still become a clean 500.
func encode(w http.ResponseWriter, status int, v any) error {
	body, err := marshal(v)
	if err != nil {
		return err
	}
	return writeBody(w, status, body)
}

// writeBody writes a body that marshal made, with the given status.
func writeBody(w http.ResponseWriter, status int, body []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// listResponse is the envelope of every list (contract): a page of items
// and the cursor of the next page, null on the last.
type listResponse[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func newListResponse[T any](items []T, next string) listResponse[T] {
	if items == nil {
		items = []T{}
	}
	r := listResponse[T]{Items: items}
	if next != "" {
		r.NextCursor = &next
	}
	return r
}

// historyFunc reads a page of one of a connection's histories, as
// store.Store.AuditTrail and TestResults do.
type historyFunc[T any] func(ctx context.Context, account string, id uuid.UUID, p store.Page) ([]T, string, error)

// handleConnectionHistory answers a page of one of the histories of the
// connection in the path: list reads it, item makes each entry's response.
func handleConnectionHistory[T, R any](logger *slog.Logger, list historyFunc[T], item func(T) R) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		p, err := parsePage(r)
		if err != nil {
			return err
		}
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		entries, next, err := list(r.Context(), principalFrom(r.Context()).Account, id, p)
		if err != nil {
			return err
		}
		items := make([]R, len(entries))
		for i, e := range entries {
			items[i] = item(e)
		}
		return encode(w, http.StatusOK, newListResponse(items, next))
	})
}
