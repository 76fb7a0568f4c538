package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

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

// accountLimiter is a token bucket per account. Tests call Microsoft on the
// customer's behalf, so a runaway client must not get their app throttled.
type accountLimiter struct {
	mu      sync.Mutex
	every   time.Duration
	burst   int
	now     func() time.Time
	buckets map[string]*rate.Limiter
}

func newAccountLimiter(every time.Duration, burst int, now func() time.Time) *accountLimiter {
	return &accountLimiter{every: every, burst: burst, now: now, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token for account, or says how long until one is free.
func (l *accountLimiter) allow(account string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim, ok := l.buckets[account]
	if !ok {
		if len(l.buckets) > 10000 { // forget full buckets: they are the same as new ones
			for k, b := range l.buckets {
				if b.TokensAt(now) >= float64(l.burst) {
					delete(l.buckets, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.buckets[account] = lim
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
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
func (tr *testRunner) testStored(ctx context.Context, st *store.Store, c model.Connection, s secret.String, a store.Audit) (json.RawMessage, error) {
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
		if err := st.RecordTestResult(ctx, c.Account, c.ID, a, rec); err != nil {
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

func credentialsOf(c model.Connection, s secret.String) dynamics.Credentials {
	cr := dynamics.Credentials{InstanceURL: c.InstanceURL, ClientID: c.ClientID, ClientSecret: s}
	if c.TenantID != nil {
		cr.TenantID = *c.TenantID
	}
	return cr
}

func handleConnectionTest(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, tr *testRunner) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		p := principalFrom(r.Context())
		c, err := st.Connection(r.Context(), p.Account, chi.URLParam(r, "id"))
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
		body, err := tr.testStored(r.Context(), st, c, s, auditOf(r))
		if err != nil {
			return err
		}
		return encode(w, http.StatusOK, body)
	})
}

func handleConnectionTestList(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		pg, err := parsePage(r)
		if err != nil {
			return err
		}
		results, next, err := st.TestResults(r.Context(), principalFrom(r.Context()).Account, chi.URLParam(r, "id"), pg)
		if err != nil {
			return err
		}
		items := make([]json.RawMessage, len(results))
		for i, b := range results {
			items[i] = json.RawMessage(b)
		}
		return encode(w, http.StatusOK, newListResponse(items, next))
	})
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
			if c, err = st.Connection(r.Context(), p.Account, connID); err != nil {
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
			c.TenantID = nil
			if *f.TenantID != "" {
				c.TenantID = f.TenantID
			}
		}
		// No sharing here: the body's credentials are this caller's alone.
		return encode(w, http.StatusOK, tr.test(r.Context(), credentialsOf(c, s)))
	})
}
