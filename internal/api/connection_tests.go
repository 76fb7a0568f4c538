package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/store"
)

// handleConnectionTest runs a manual test of a stored connection through the
// checker, which shares one run among concurrent tests of the connection on
// every replica and records it. With Accept: text/event-stream it streams
// each check as it is decided, then the result.
func handleConnectionTest(logger *slog.Logger, chk *checker.Checker) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		account := principalFrom(r.Context()).Account
		run := func(ctx context.Context) (json.RawMessage, error) {
			return chk.TestConnection(ctx, account, id, auditOf(r))
		}
		if wantsEventStream(r) {
			return streamTest(w, r, logger, run)
		}
		body, err := run(r.Context())
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
// With a connection_id and no client_secret it uses the stored credential, so
// the modal can test an edit without asking for the secret again; with
// "credential":"next_certificate" it uses the connection's pending
// certificate, and a pass is recorded on it (its activation needs one).
func handleCredentialsTest(logger *slog.Logger, st *store.Store, chk *checker.Checker, keys *crypto.Keyring, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		o, err := decodeObject(w, r)
		if err != nil {
			return err
		}
		connID, hasConn := o.str("connection_id")
		o.reject("name", "client_secret_expires_at") // a test has no use for them
		f := parseConnectionFields(o, opts.AllowLoopback, opts.Now())
		next := parseTestCredential(o, hasConn, f.ClientSecret != nil)
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
			if next && c.NextCertificate == nil {
				return errNoNextCertificate
			}
		} else if err := chk.TakeToken(r.Context(), p.Account); err != nil {
			return err
		}
		slot := model.SlotCurrent
		if next {
			slot = model.SlotNext
		}
		var cr dynamics.Credentials
		if f.ClientSecret != nil {
			cr.ClientSecret = secret.Bytes(f.ClientSecret.Reveal())
		} else if cr, err = checker.Credentials(r.Context(), keys, c, slot); err != nil {
			return err
		}
		if f.Instance != nil {
			cr.InstanceURL = f.Instance.URL
		} else {
			cr.InstanceURL = c.InstanceURL
		}
		if f.ClientID != nil {
			cr.ClientID = *f.ClientID
		} else {
			cr.ClientID = c.ClientID
		}
		if f.TenantID != nil {
			cr.TenantID = *f.TenantID
		} else if c.TenantID != nil {
			cr.TenantID = *c.TenantID
		}
		// No sharing here: the body's credentials are this caller's alone.
		run := func(ctx context.Context) (json.RawMessage, error) {
			defer cr.Clear()
			res := chk.Run(ctx, cr, model.TriggerManual)
			if next && res.OK {
				err := st.RecordNextCertificatePass(ctx, p.Account, uuid.MustParse(c.ID), c.NextCertificate.ThumbprintSHA256, auditOf(r))
				// ErrNotFound: the certificate was replaced or activated meanwhile,
				// so this pass is not the pending one's.
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
			}
			return json.Marshal(res)
		}
		if wantsEventStream(r) {
			return streamTest(w, r, logger, run)
		}
		body, err := run(r.Context())
		if err != nil {
			return err
		}
		return encode(w, http.StatusOK, json.RawMessage(body))
	})
}
