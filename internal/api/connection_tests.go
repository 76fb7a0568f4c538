package api

import (
	"context"
	"encoding/json"
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
func (tr *testRunner) testStored(ctx context.Context, st *store.Store, id uuid.UUID, c model.Connection, s secret.String, a store.Audit) (json.RawMessage, error) {
	key := fmt.Sprintf("%s/%s/%d", c.Account, c.ID, c.Version)
	v, err, _ := tr.flights.Do(key, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		res := tr.test(ctx, credentialsOf(c, s))
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
		s, err := open(r.Context(), keys, c)
		if err != nil {
			return err
		}
		body, err := tr.testStored(r.Context(), st, id, c, s, auditOf(r))
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
func handleCredentialsTest(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, tr *testRunner, opts Options) http.Handler {
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
			if c, err = st.Connection(r.Context(), p.Account, id); err != nil {
				return err
			}
		}
		if err := tr.checkRate(p.Account); err != nil {
			return err
		}
		var s secret.String
		if f.ClientSecret != nil {
			s = *f.ClientSecret
		} else if s, err = open(r.Context(), keys, c); err != nil {
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
		return encode(w, http.StatusOK, tr.test(r.Context(), credentialsOf(c, s)))
	})
}
