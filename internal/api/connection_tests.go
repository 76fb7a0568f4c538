package api

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/store"
)

// handleConnectionTest runs a manual test of a stored connection through the
// checker, which shares one run among concurrent tests of the connection on
// every replica and records it.
func handleConnectionTest(logger *slog.Logger, chk *checker.Checker) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		body, err := chk.TestConnection(r.Context(), principalFrom(r.Context()).Account, id, auditOf(r))
		if err != nil {
			return err
		}
		return encode(w, http.StatusOK, body)
	})
}

// handleConnectionTestList answers a page of a connection's test history,
// newest first, each entry the model.TestResult JSON as stored.
func handleConnectionTestList(logger *slog.Logger, st *store.Store) http.Handler {
	return handleConnectionHistory(logger, st.TestResults, func(b []byte) json.RawMessage { return b })
}

// handleCredentialsTest tests credentials from the body and stores nothing.
// With a connection_id and no client_secret it uses the stored secret, so the
// modal can test an edit without asking for the secret again.
func handleCredentialsTest(logger *slog.Logger, chk *checker.Checker, keys *crypto.Keyring, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		o, err := decodeObject(w, r)
		if err != nil {
			return err
		}
		connID, hasConn := o.str("connection_id")
		o.reject("name", "client_secret_expires_at") // a test has no use for them
		f := parseConnectionFields(o, opts.AllowLoopback, opts.Now())
		if !hasConn {
			requireCreateFields(o)
		}
		if err := o.finish(); err != nil {
			return err
		}
		p := principalFrom(r.Context())
		var c model.Connection
		if hasConn {
			id, err := parseConnectionID(connID)
			if err != nil {
				return err
			}
			if c, err = chk.ConnectionForTest(r.Context(), p.Account, id); err != nil {
				return err
			}
		} else if err := chk.TakeToken(r.Context(), p.Account); err != nil {
			return err
		}
		var s secret.String
		if f.ClientSecret != nil {
			s = *f.ClientSecret
		} else if s, err = checker.Open(r.Context(), keys, c); err != nil {
			return err
		}
		if f.Instance != nil {
			c.InstanceURL = f.Instance.URL
		}
		if f.ClientID != nil {
			c.ClientID = *f.ClientID
		}
		if f.TenantID != nil {
			c.TenantID = f.tenant()
		}
		// No sharing here: the body's credentials are this caller's alone.
		return encode(w, http.StatusOK, chk.Run(r.Context(), checker.CredentialsOf(c, s), model.TriggerManual))
	})
}
