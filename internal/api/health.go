package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/store"
)

// readinessTimeout bounds /readyz: a probe every second must never pile up.
const readinessTimeout = time.Second

// readinessCheck is one line of the /readyz body.
type readinessCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // "ok" or "failing"
	Detail string `json:"detail,omitempty"`
}

type readinessResponse struct {
	Status string           `json:"status"`
	Checks []readinessCheck `json:"checks"`
}

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = encode(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReadyz answers 200 only when Postgres answers, the schema (ours and
// River's) is at the version this binary was built with, and every KEK that stored rows name is
// loaded; otherwise 503 naming each failing check.
func handleReadyz(logger *slog.Logger, st *store.Store, keys *crypto.Keyring) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readinessTimeout)
		defer cancel()
		checks := readinessChecks(ctx, st, keys)
		for _, c := range checks {
			if c.Status != "ok" {
				p := newProblem(http.StatusServiceUnavailable, typeNotReady, "Not ready.", "One or more readiness checks failed: see checks.")
				p.p.Checks = checks
				writeProblem(w, r, logger, p)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		_ = encode(w, http.StatusOK, readinessResponse{Status: "ready", Checks: checks})
	})
}

func readinessChecks(ctx context.Context, st *store.Store, keys *crypto.Keyring) []readinessCheck {
	db := readinessCheck{Name: "database", Status: "ok"}
	schema := readinessCheck{Name: "migrations", Status: "ok"}
	kc := readinessCheck{Name: "encryption_keys", Status: "ok"}
	if err := st.Ping(ctx); err != nil {
		db.Status, db.Detail = "failing", "PostgreSQL did not answer within 1s."
		schema.Status, schema.Detail = "failing", "Unknown: the database did not answer."
		kc.Status, kc.Detail = "failing", "Unknown: the database did not answer."
		return []readinessCheck{db, schema, kc}
	}
	switch v, dirty, err := st.DatabaseSchemaVersion(ctx); {
	case err != nil:
		schema.Status, schema.Detail = "failing", "Could not read the schema version."
	case dirty:
		schema.Status, schema.Detail = "failing", fmt.Sprintf("Migration %d failed half-way (dirty): fix it by hand, then run `server migrate force`.", v)
	case v != store.SchemaVersion:
		schema.Status, schema.Detail = "failing", fmt.Sprintf("The database is at schema version %d; this binary needs %d.", v, store.SchemaVersion)
	}
	if schema.Status == "ok" {
		switch v, err := st.DatabaseRiverVersion(ctx); {
		case err != nil:
			schema.Status, schema.Detail = "failing", "Could not read the job queue's schema version."
		case v < store.RiverSchemaVersion:
			schema.Status, schema.Detail = "failing", fmt.Sprintf("The job queue (River) schema is at version %d; this binary needs %d: run `server migrate up`.", v, store.RiverSchemaVersion)
		}
	}
	missing, err := st.MissingKEKs(ctx, keys.Has)
	switch {
	case err != nil:
		kc.Status, kc.Detail = "failing", "Could not list the key ids in use."
	case len(missing) > 0:
		kc.Status = "failing"
		kc.Detail = "Stored secrets use encryption keys that are not loaded: " + strings.Join(missing, ", ") + ". Add them to ENCRYPTION_KEYS."
	}
	return []readinessCheck{db, schema, kc}
}
