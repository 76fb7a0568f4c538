package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// Tokens for the product's workers (design.md, "Tokens for the product's
// workers"): a worker asks for an access token for a connection and never
// sees its secret or private key.

// tokener gets an access token with a connection's credentials;
// *dynamics.Client is the one implementation.
type tokener interface {
	Token(ctx context.Context, cr dynamics.Credentials) (dynamics.Token, error)
}

// Token cache policy.
const (
	// tokenRefreshBefore is how long before its expiry a cached token is
	// replaced (contract: 5 minutes), so a worker always gets one it can use
	// for at least that long.
	tokenRefreshBefore = 5 * time.Minute
	// tokenCacheSize bounds the cache (about 2 KiB a token).
	tokenCacheSize = 10000
	// throttledRetryAfter is the Retry-After of a throttled token request
	// when Microsoft sent none: Entra's usual answer is 60 seconds.
	throttledRetryAfter = 60
)

// tokenCache keeps one access token per connection in this process, under
// the fingerprint of the credentials it was issued for: a token of other
// credentials is never handed out. Concurrent misses for one connection share
// one request to Microsoft.
type tokenCache struct {
	dyn     tokener
	now     func() time.Time
	flights singleflight.Group

	mu sync.Mutex
	m  map[string]cachedToken // connection id → its token
}

type cachedToken struct {
	fingerprint string // model.Connection.CredentialFingerprint of the credentials it was issued for
	token       dynamics.Token
}

func newTokenCache(dyn tokener, now func() time.Time) *tokenCache {
	return &tokenCache{dyn: dyn, now: now, m: make(map[string]cachedToken)}
}

// Token sources, as the log and the metric name them.
const (
	sourceCache     = "cache"
	sourceMicrosoft = "microsoft"
)

// token returns a token for c from the cache, or (on a miss, or with fresh)
// from Microsoft with the credentials that open opens, and says which.
// Callers that miss at the same time share one request, detached from the
// first caller's cancellation so that the others still get an answer; the
// dynamics client bounds it with its own deadline.
func (tc *tokenCache) token(ctx context.Context, c model.Connection, fresh bool,
	open func(context.Context) (dynamics.Credentials, error)) (dynamics.Token, string, error) {
	fp := c.CredentialFingerprint()
	if !fresh {
		if tok, ok := tc.get(c.ID, fp); ok {
			return tok, sourceCache, nil
		}
	}
	v, err, _ := tc.flights.Do(c.ID+"/"+fp, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		cr, err := open(ctx)
		if err != nil {
			return nil, err
		}
		defer cr.Clear()
		tok, err := tc.dyn.Token(ctx, cr)
		if err != nil {
			return nil, err
		}
		tc.put(c.ID, fp, tok)
		return tok, nil
	})
	if err != nil {
		return dynamics.Token{}, sourceMicrosoft, err
	}
	return v.(dynamics.Token), sourceMicrosoft, nil
}

// usable reports whether a cached token may still be handed out at now.
func usable(t dynamics.Token, now time.Time) bool {
	return now.Before(t.ExpiresAt.Add(-tokenRefreshBefore))
}

func (tc *tokenCache) get(id, fingerprint string) (dynamics.Token, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	e, ok := tc.m[id]
	if !ok || e.fingerprint != fingerprint || !usable(e.token, tc.now()) {
		return dynamics.Token{}, false
	}
	return e.token, true
}

func (tc *tokenCache) put(id, fingerprint string, t dynamics.Token) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if _, ok := tc.m[id]; !ok && len(tc.m) >= tokenCacheSize {
		now := tc.now()
		for k, e := range tc.m {
			if !usable(e.token, now) {
				delete(tc.m, k)
			}
		}
		for k := range tc.m { // still full: drop any one; it costs a token request
			if len(tc.m) < tokenCacheSize {
				break
			}
			delete(tc.m, k)
		}
	}
	tc.m[id] = cachedToken{fingerprint: fingerprint, token: t}
}

// tokenResponse is the token endpoint's answer (contract).
type tokenResponse struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresAt   time.Time `json:"expires_at"`
	Resource    string    `json:"resource"`
}

var errTokenScope = newProblem(http.StatusForbidden, typeForbidden, "This token may not get access tokens.",
	"POST /connections/{id}/token is for the product's workers: their token grants the scope "+auth.ScopeToken+".")

// handleConnectionToken answers an access token for the connection: for
// callers with the scope connections:token only, from the cache unless
// ?fresh=true. Each issuance, cached or not, is logged with the actor and
// counted; the token itself never is.
func handleConnectionToken(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, tc *tokenCache, m *Metrics) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		p := principalFrom(r.Context())
		if !p.HasScope(auth.ScopeToken) {
			return errTokenScope // before the look-up: says nothing about the id
		}
		fresh, err := parseFresh(r)
		if err != nil {
			return err
		}
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		c, err := st.Connection(r.Context(), p.Account, id)
		if err != nil {
			return err
		}
		tok, source, err := tc.token(r.Context(), c, fresh, func(ctx context.Context) (dynamics.Credentials, error) {
			return checker.Credentials(ctx, keys, c, model.SlotCurrent)
		})
		attrs := []slog.Attr{slog.String("request_id", requestIDFrom(r.Context())), slog.String("account", p.Account),
			slog.String("actor", p.Subject), slog.String("connection_id", c.ID), slog.String("source", source)}
		var te *dynamics.TokenError
		switch {
		case errors.As(err, &te):
			m.observeToken(source, te.Check.Code)
			logger.LogAttrs(r.Context(), slog.LevelInfo, "connection token refused", append(attrs, slog.String("code", te.Check.Code))...)
			return tokenProblem(te)
		case err != nil:
			return err
		}
		m.observeToken(source, "issued")
		logger.LogAttrs(r.Context(), slog.LevelInfo, "connection token issued", append(attrs, slog.Time("expires_at", tok.ExpiresAt))...)
		w.Header().Set("Cache-Control", "no-store")
		return encode(w, http.StatusOK, tokenResponse{AccessToken: tok.AccessToken.Reveal(), TokenType: "Bearer",
			ExpiresAt: tok.ExpiresAt, Resource: tok.Resource})
	})
}

// parseFresh reads ?fresh=, a boolean.
func parseFresh(r *http.Request) (bool, error) {
	s := r.URL.Query().Get("fresh")
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, &validationError{fields: []fieldError{{Field: "fresh", Code: "invalid_type", Message: "fresh must be true or false."}}}
	}
	return b, nil
}

// tokenProblem is Microsoft's refusal as the worker gets it: 503 with
// Retry-After when Microsoft throttles, else 502; the diagnosis says why and,
// with a setup step, what the customer must fix.
func tokenProblem(te *dynamics.TokenError) error {
	d := te.Diagnosis()
	p := newProblem(http.StatusBadGateway, typeMicrosoftRefused, "Microsoft gave no token for this connection.", d.Message)
	if d.Code == dynamics.CodeThrottled {
		p = newProblem(http.StatusServiceUnavailable, typeMicrosoftThrottled, "Microsoft is throttling this application.", d.Message)
		p.p.retryAfter = te.RetryAfter()
		if p.p.retryAfter <= 0 {
			p.p.retryAfter = throttledRetryAfter
		}
	}
	p.p.Diagnosis = &d
	return p
}
