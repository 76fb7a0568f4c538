package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/store"
)

// tester runs a connection test; *dynamics.Client is the one implementation.
type tester interface {
	Test(ctx context.Context, cr dynamics.Credentials) model.TestResult
}

// testRunner runs connection tests: one at a time per connection in this
// process, and within each account's rate limit.
type testRunner struct {
	dyn     tester
	metrics *Metrics
	flights singleflight.Group
	limits  *accountLimiter
}

// checkRate returns a 429 problem when account has used up its tests.
func (tr *testRunner) checkRate(account string) error {
	ok, wait := tr.limits.allow(account)
	if ok {
		return nil
	}
	secs := int(math.Ceil(wait.Seconds()))
	p := newProblem(http.StatusTooManyRequests, typeRateLimited, "Too many connection tests.",
		fmt.Sprintf("This account may run a few tests a minute. Try again in %d seconds.", secs))
	p.p.retryAfter = secs
	return p
}

// testStored tests a stored connection and records the result, once even
// when several requests ask at the same time: they share the run and its
// record (one history entry, one audit event, by the first caller). The run
// is detached from the first caller's cancellation so the others still get
// an answer; the dynamics client bounds it with its own deadline. The key
// holds the connection's version, so a request that comes after an edit
// never gets the result of the credentials before it.
func (tr *testRunner) testStored(ctx context.Context, st *store.Store, id uuid.UUID, c model.Connection, cr dynamics.Credentials, a store.Audit) (json.RawMessage, error) {
	key := fmt.Sprintf("%s/%s/%d", c.Account, c.ID, c.Version)
	v, err, _ := tr.flights.Do(key, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		res := tr.test(ctx, cr)
		body, err := json.Marshal(res)
		if err != nil {
			return nil, fmt.Errorf("encode test result: %w", err)
		}
		rec := store.TestRecord{Status: model.StatusConnected, Result: body, TestedVersion: c.Version}
		if res.Error != nil {
			rec.Status, rec.Code = model.StatusFailing, res.Error.Code
			rec.SecretExpired = res.Error.Code == dynamics.CodeClientSecretExpired
		}
		if err := st.RecordTestResult(ctx, c.Account, id, a, rec); err != nil {
			return nil, err
		}
		return json.RawMessage(body), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(json.RawMessage), nil
}

// test runs one test and counts it.
func (tr *testRunner) test(ctx context.Context, cr dynamics.Credentials) model.TestResult {
	res := tr.dyn.Test(ctx, cr)
	outcome := "ok"
	if res.Error != nil {
		outcome = res.Error.Code
	}
	tr.metrics.observeTest(outcome, float64(res.DurationMS)/1000)
	return res
}

func handleConnectionTest(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, tr *testRunner) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		p := principalFrom(r.Context())
		c, err := st.Connection(r.Context(), p.Account, id)
		if err != nil {
			return err
		}
		if err := tr.checkRate(p.Account); err != nil {
			return err
		}
		cr, err := credentialsOf(r.Context(), keys, c, model.SlotCurrent)
		if err != nil {
			return err
		}
		defer cr.Clear()
		body, err := tr.testStored(r.Context(), st, id, c, cr, auditOf(r))
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
func handleCredentialsTest(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, tr *testRunner, opts Options) http.Handler {
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
			if c, err = st.Connection(r.Context(), p.Account, id); err != nil {
				return err
			}
			if next && c.NextCertificate == nil {
				return errNoNextCertificate
			}
		}
		if err := tr.checkRate(p.Account); err != nil {
			return err
		}
		slot := model.SlotCurrent
		if next {
			slot = model.SlotNext
		}
		var cr dynamics.Credentials
		if f.ClientSecret != nil {
			cr.ClientSecret = secret.Bytes(f.ClientSecret.Reveal())
		} else if cr, err = credentialsOf(r.Context(), keys, c, slot); err != nil {
			return err
		}
		defer cr.Clear()
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
		res := tr.test(r.Context(), cr)
		if next && res.OK {
			err := st.RecordNextCertificatePass(r.Context(), p.Account, uuid.MustParse(c.ID), c.NextCertificate.ThumbprintSHA256, auditOf(r))
			// ErrNotFound: the certificate was replaced or activated meanwhile,
			// so this pass is not the pending one's.
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return encode(w, http.StatusOK, res)
	})
}
