// Package api is dynconn's HTTP interface: the chi router, handlers,
// authentication and RFC 9457 problem responses. It is the only package that
// combines the others (seal with crypto, save with store, test with dynamics).
package api

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/dynconn/dynconn"
	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// Options tunes the server. The zero value is production's.
type Options struct {
	// AllowLoopback accepts http://127.0.0.1:PORT instance URLs, for a local
	// simulator (DYNAMICS_ALLOW_LOOPBACK). Development and tests only.
	AllowLoopback bool
	// Now is the clock; tests set it. Default time.Now.
	Now func() time.Time
	// RequestTimeout bounds each request. Default 30s (a test may take 25s).
	RequestTimeout time.Duration
	// Metrics records requests; nil records nothing.
	Metrics *Metrics
	// CORSAllowedOrigins are the exact origins whose pages may call the API
	// from a browser (CORS_ALLOWED_ORIGINS, see ParseOrigins); none by default.
	CORSAllowedOrigins []string
	// RequestHashKey keys the hashes of idempotent creates' bodies
	// (LoadRequestHashKey). Required.
	RequestHashKey []byte
	// CertificateValidity is how long the certificates dynconn makes are
	// valid (CERTIFICATE_VALIDITY). Default credential.DefaultValidity.
	CertificateValidity time.Duration
	// WebhookAllowLoopback accepts http(s)://127.0.0.1:PORT webhook URLs, for
	// a local receiver (WEBHOOK_ALLOW_LOOPBACK). Development and tests only.
	WebhookAllowLoopback bool
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.CertificateValidity == 0 {
		o.CertificateValidity = credential.DefaultValidity
	}
}

// NewServer returns the HTTP handler of the whole API. Connection tests run
// through chk; workers' tokens come from tok (*dynamics.Client).
func NewServer(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, verifier *auth.Verifier, chk *checker.Checker, tok tokener, opts Options) http.Handler {
	opts.defaults()
	if len(opts.RequestHashKey) != requestHashKeySize {
		panic("api: Options.RequestHashKey must be the key LoadRequestHashKey returns")
	}
	r := chi.NewRouter()
	r.Use(requestID, accessLog(logger, opts.Metrics), recoverer(logger), noStore, allowOrigins(opts.CORSAllowedOrigins))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, logger, newProblem(http.StatusNotFound, typeNotFound, "Not found.", "No such endpoint: see /openapi.yaml."))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, logger, newProblem(http.StatusMethodNotAllowed, typeMethod, "Method not allowed.", "See /openapi.yaml for the methods of this endpoint."))
	})
	addRoutes(r, logger, st, keys, verifier, chk, newTokenCache(tok, opts.Now), opts)
	return r
}

// addRoutes lists the whole API surface in one place.
func addRoutes(r chi.Router, logger *slog.Logger, st *store.Store, keys *crypto.Keyring, verifier *auth.Verifier, chk *checker.Checker,
	tc *tokenCache, opts Options) {
	r.Method(http.MethodGet, "/healthz", handleHealthz())
	r.Method(http.MethodGet, "/readyz", handleReadyz(logger, st, keys))
	r.Method(http.MethodGet, "/openapi.yaml", handleOpenAPI())
	r.Method(http.MethodGet, "/modal/", handleModal(logger))
	r.Method(http.MethodGet, "/modal/{file}", handleModal(logger))
	r.Group(func(r chi.Router) {
		r.Use(deadline(opts.RequestTimeout), authenticate(logger, verifier))
		r.Method(http.MethodPost, "/connections", handleConnectionCreate(logger, st, keys, opts))
		r.Method(http.MethodGet, "/connections", handleConnectionList(logger, st, opts))
		r.Method(http.MethodGet, "/connections/{id}", handleConnectionGet(logger, st, opts))
		r.Method(http.MethodPatch, "/connections/{id}", handleConnectionUpdate(logger, st, keys, opts))
		r.Method(http.MethodDelete, "/connections/{id}", handleConnectionDelete(logger, st))
		r.Method(http.MethodPost, "/connections/{id}/test", handleConnectionTest(logger, chk))
		r.Method(http.MethodGet, "/connections/{id}/tests", handleConnectionTestList(logger, st))
		r.Method(http.MethodGet, "/connections/{id}/events", handleConnectionEvents(logger, st))
		r.Method(http.MethodPost, "/connection-tests", handleCredentialsTest(logger, st, chk, keys, opts))
		r.Method(http.MethodGet, "/connections/{id}/certificate", handleCertificateGet(logger, st, model.SlotCurrent))
		r.Method(http.MethodPost, "/connections/{id}/certificate/next", handleNextCertificateCreate(logger, st, keys, opts))
		r.Method(http.MethodGet, "/connections/{id}/certificate/next", handleCertificateGet(logger, st, model.SlotNext))
		r.Method(http.MethodPost, "/connections/{id}/certificate/next/activate", handleNextCertificateActivate(logger, st, keys, opts))
		r.Method(http.MethodPost, "/connections/{id}/token", handleConnectionToken(logger, st, keys, tc, opts.Metrics))
		r.Method(http.MethodGet, "/events", handleEventList(logger, st))
		r.Method(http.MethodPost, "/webhooks", handleWebhookCreate(logger, st, keys, opts))
		r.Method(http.MethodGet, "/webhooks", handleWebhookList(logger, st))
		r.Method(http.MethodGet, "/webhooks/{id}", handleWebhookGet(logger, st))
		r.Method(http.MethodPatch, "/webhooks/{id}", handleWebhookUpdate(logger, st, opts))
		r.Method(http.MethodDelete, "/webhooks/{id}", handleWebhookDelete(logger, st))
		r.Method(http.MethodPost, "/webhooks/{id}/ping", handleWebhookPing(logger, st))
		r.Method(http.MethodGet, "/webhooks/{id}/deliveries", handleWebhookDeliveries(logger, st))
	})
}

func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(dynconn.OpenAPI)
	})
}
