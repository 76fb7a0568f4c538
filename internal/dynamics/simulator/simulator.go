// Package simulator stands in for Microsoft: one HTTP server that answers as
// both a Dataverse instance (/api/data/v9.2/, WhoAmI, systemusers) and the
// Entra ID token endpoint (/{tenant}/oauth2/v2.0/token), with the status
// codes, headers and bodies documented in shared/docs/microsoft-examples.md.
//
// It checks what it receives (form fields, scope, client id, secret or client
// assertion, the bearer token it issued), so a wrong request gets Microsoft's
// error rather than a pass. Client assertions verify against certificates
// uploaded to the simulated app (certificates.go). A scenario (see Scenarios) makes one endpoint fail the way
// Microsoft does. The scenario is chosen per listener: a Server's URL runs the
// default one (Options.Scenario, SetScenario), and InstanceURL(name) is the
// address of a listener of its own that runs scenario name. The instance URL
// is then a plain http://127.0.0.1:PORT, which dynconn's loopback mode admits
// without knowing that a simulator exists.
package simulator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dynconn/dynconn/internal/credential"
)

// The identities the simulator knows by default (microsoft-examples.md).
const (
	TenantID       = "11111111-1111-1111-1111-111111111111"
	ClientID       = "22222222-2222-2222-2222-222222222222"
	UserID         = "33333333-3333-3333-3333-333333333333"
	BusinessUnitID = "44444444-4444-4444-4444-444444444444"
	OrganizationID = "55555555-5555-5555-5555-555555555555"
	RoleID         = "88888888-8888-8888-8888-888888888888"
	// ClientSecret is the default secret Value; it has the shape of a real
	// one (40 characters with a "~"), and is not a GUID.
	ClientSecret = "Sim8Q~simulatorSecretValue.0123456789abcd"
	// SecretID is what the portal shows as the secret's ID; pasting it is
	// the classic mistake, and the simulator rejects it like Microsoft.
	SecretID = "99999999-0000-4000-8000-000000000001"
)

// Options configures a simulator. Zero fields take the defaults above.
type Options struct {
	// Scenario is the default scenario (see Scenarios); "" means "ok".
	Scenario string
	// TenantID, ClientID and ClientSecret are the credentials that work.
	TenantID, ClientID, ClientSecret string
	// Roles are the application user's role names (default ["API User"]);
	// scenario no_role empties them.
	Roles []string
	// UserFullName is the application user's name (default "Contoso Sync").
	UserFullName string
	// AuthorityURL is the sign-in base the challenge names (default: this
	// server as the request addressed it).
	AuthorityURL string
	// InstanceURL is the resource the token endpoint accepts in the scope
	// (default: this server as the request addressed it).
	// Set it when the instance has a name other than the server's address.
	InstanceURL string
	// RedirectURL is where scenario "redirect" sends the probe (default
	// the cloud metadata address).
	RedirectURL string
	// SlowDelay is how long scenario "slow" waits before answering (default 3s).
	SlowDelay time.Duration
	// TLSHosts, when set, makes New serve https with a certificate for
	// these names (and 127.0.0.1); CertPool trusts it.
	TLSHosts []string
	// Now is the clock for timestamps (default time.Now).
	Now func() time.Time
}

// Handler is the simulator as an http.Handler, for cmd/dynamics-simulator
// and for tests that bring their own server.
type Handler struct {
	opts    Options
	closing chan struct{}
	once    sync.Once

	mu        sync.Mutex
	scenario  *scenario                // of ServeHTTP
	tokens    map[string]string        // access token → resource it is for
	ring      []string                 // tokens in issue order, to bound the map
	counts    map[string]int           // endpoint → requests
	lastTrace [2]string                // trace id, correlation id of the last Entra error
	uploaded  []credential.Certificate // the app's certificates (certificates.go)
	recorded  []url.Values             // the last token requests' forms
}

// maxTokens bounds the tokens remembered, so a long benchmark stays flat.
const maxTokens = 4096

// NewHandler returns a simulator handler. It panics on an unknown scenario.
func NewHandler(opts Options) *Handler {
	if opts.TenantID == "" {
		opts.TenantID = TenantID
	}
	if opts.ClientID == "" {
		opts.ClientID = ClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = ClientSecret
	}
	if opts.Roles == nil {
		opts.Roles = []string{"API User"}
	}
	if opts.UserFullName == "" {
		opts.UserFullName = "Contoso Sync"
	}
	if opts.RedirectURL == "" {
		opts.RedirectURL = "http://169.254.169.254/latest/meta-data/"
	}
	if opts.SlowDelay <= 0 {
		opts.SlowDelay = 3 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{
		opts:    opts,
		closing: make(chan struct{}),
		tokens:  make(map[string]string),
		counts:  make(map[string]int),
	}
	if err := h.SetScenario(opts.Scenario); err != nil {
		panic(err)
	}
	return h
}

// SetScenario changes the scenario that ServeHTTP runs (the default
// scenario; the handlers of Scenario keep theirs). "" means "ok". It returns
// an error for an unknown name.
func (h *Handler) SetScenario(name string) error {
	sc, err := lookupScenario(name)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.scenario = sc
	h.mu.Unlock()
	return nil
}

// Scenario returns a handler that runs scenario name for every request, and
// shares h's credentials, tokens and counts. Serving it on a listener of its
// own gives the scenario its own instance URL (see Server.InstanceURL and
// cmd/dynamics-simulator). It returns an error for an unknown name.
func (h *Handler) Scenario(name string) (http.Handler, error) {
	sc, err := lookupScenario(name)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, sc) }), nil
}

// lookupScenario returns the scenario called name; "" means "ok".
func lookupScenario(name string) (*scenario, error) {
	if name == "" {
		name = ScenarioOK
	}
	sc, ok := scenarioByName[name]
	if !ok {
		return nil, fmt.Errorf("simulator: unknown scenario %q", name)
	}
	return sc, nil
}

// Count returns how many requests reached an endpoint: "probe" (the
// unauthenticated /api/data/v9.2/), "token", "whoami", "user", or "" for all.
func (h *Handler) Count(endpoint string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if endpoint == "" {
		n := 0
		for _, c := range h.counts {
			n += c
		}
		return n
	}
	return h.counts[endpoint]
}

// LastTrace returns the trace and correlation ids of the last Entra error
// the simulator sent.
func (h *Handler) LastTrace() (traceID, correlationID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastTrace[0], h.lastTrace[1]
}

// Close releases requests that hang or wait (scenarios hang and slow).
func (h *Handler) Close() { h.once.Do(func() { close(h.closing) }) }

// Server is a simulator listening on 127.0.0.1: one listener for the default
// scenario, and one more for each scenario asked for with InstanceURL.
type Server struct {
	*Handler
	// URL is http://127.0.0.1:PORT (https with TLSHosts): the instance URL
	// of the default scenario, and the authority its challenge names.
	URL  string
	tls  *tls.Config // nil: plain http
	pool *x509.CertPool

	mu        sync.Mutex
	servers   []*httptest.Server
	instances map[string]string // scenario → its listener's URL
}

// New starts a simulator on a random port of 127.0.0.1.
func New(opts Options) *Server {
	s := &Server{Handler: NewHandler(opts), instances: make(map[string]string)}
	if len(opts.TLSHosts) > 0 {
		cert, pool, err := selfSigned(opts.TLSHosts)
		if err != nil {
			panic(fmt.Sprintf("simulator: certificate: %v", err))
		}
		s.tls, s.pool = newTLSConfig(cert), pool
	}
	s.URL = s.listen(s.Handler)
	return s
}

// listen serves h on a new random port of 127.0.0.1 and returns its URL.
// The caller holds s.mu, or is New.
func (s *Server) listen(h http.Handler) string {
	srv := httptest.NewUnstartedServer(h)
	if s.tls != nil {
		srv.TLS = s.tls.Clone()
		srv.StartTLS()
	} else {
		srv.Start()
	}
	s.servers = append(s.servers, srv)
	return srv.URL
}

// InstanceURL is the instance URL that runs scenario name on this server:
// the URL of a listener of its own, started on first use. Its challenge
// names the same listener as the authority. It panics on an unknown name.
func (s *Server) InstanceURL(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.instances[name]; ok {
		return u
	}
	h, err := s.Handler.Scenario(name)
	if err != nil {
		panic(err)
	}
	u := s.listen(h)
	s.instances[name] = u
	return u
}

// CertPool trusts the server's certificate (with TLSHosts), else nil.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// Close releases hanging requests and stops every listener.
func (s *Server) Close() {
	s.Handler.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, srv := range s.servers {
		srv.Close()
	}
}

// request is what the router worked out about one request.
type request struct {
	scenario *scenario
	base     string // scheme://host as the client addressed us
	path     string
}

// ServeHTTP answers with the default scenario (see SetScenario).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	sc := h.scenario
	h.mu.Unlock()
	h.serve(w, r, sc)
}

// serve routes one request to its endpoint, under scenario sc.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, sc *scenario) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	q := request{scenario: sc, base: scheme + "://" + r.Host, path: r.URL.Path}

	switch {
	case q.path == "/api/data/v9.2/" || q.path == "/api/data/v9.2":
		h.count(endpointProbe)
		h.serveProbe(w, r, q)
	case q.path == "/api/data/v9.2/WhoAmI" || q.path == "/api/data/v9.2/WhoAmI()":
		h.count(endpointWhoAmI)
		h.serveWhoAmI(w, r, q)
	case strings.HasPrefix(q.path, "/api/data/v9.2/systemusers("):
		h.count(endpointUser)
		h.serveUser(w, r, q)
	case strings.HasSuffix(q.path, "/oauth2/v2.0/token"):
		h.count(endpointToken)
		h.serveToken(w, r, q)
	case strings.HasPrefix(q.path, simPrefix):
		h.serveApps(w, r, q.path)
	case strings.HasPrefix(q.path, "/api/"):
		h.count("other")
		writeDataverseError(w, http.StatusNotFound, "0x80060888", "Resource not found for the segment '"+strings.TrimPrefix(q.path, "/api/data/v9.2/")+"'.")
	default:
		h.count("other")
		http.NotFound(w, r)
	}
}

func (h *Handler) count(endpoint string) {
	h.mu.Lock()
	h.counts[endpoint]++
	h.mu.Unlock()
}

// wait blocks for d, or until the client gives up or the simulator closes.
// It reports whether the full time passed.
func (h *Handler) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-h.closing:
	}
	return false
}

// hang holds the request open without answering until the client gives up
// or the simulator closes.
func (h *Handler) hang(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-h.closing:
	}
}

// issueToken remembers and returns a new opaque access token for resource.
func (h *Handler) issueToken(resource string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	tok := "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(b) + ".simulator"
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ring) >= maxTokens {
		delete(h.tokens, h.ring[0])
		h.ring = h.ring[1:]
	}
	h.ring = append(h.ring, tok)
	h.tokens[tok] = resource
	return tok
}

// tokenResource returns the resource a token was issued for, if it was.
func (h *Handler) tokenResource(tok string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	res, ok := h.tokens[tok]
	return res, ok
}
