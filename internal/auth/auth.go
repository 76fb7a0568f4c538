// Package auth verifies the bearer JWTs that callers of the API present, and
// turns a valid one into the account the caller acts for and the actor (sub).
//
// Tokens are checked with keys from a JWKS endpoint (RS256, ES256) or, for
// development and tests, with a shared HS256 secret. Exactly one of the two is
// configured, so a token can never choose its own verification scheme.
package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// DefaultAccountClaim is the claim that names the caller's account when
// Config.AccountClaim is empty (contract: AUTH_ACCOUNT_CLAIM's default).
const DefaultAccountClaim = "account_id"

// MinHS256SecretLen is the shortest HS256 secret accepted, in bytes: shorter
// shared secrets can be brute-forced from a single token.
const MinHS256SecretLen = 32

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 30 * time.Second

// maxTokenLen bounds the work done on a header before any signature check.
const maxTokenLen = 8 << 10

// maxIdentityLen bounds the account id and the subject taken from a token
// (OpenID Connect allows a sub of at most 255 ASCII characters).
const maxIdentityLen = 256

// ErrUnauthorized is matched (errors.Is) by every error Verify returns.
var ErrUnauthorized = errors.New("unauthorized")

// UnauthorizedError is the error Verify returns. Reason is short, contains
// nothing from the token and is safe to show a client (for example as a 401
// problem's detail). The underlying library error is kept for errors.Is and
// logs, but is not part of Error().
type UnauthorizedError struct {
	Reason string
	cause  error
}

// Error returns "unauthorized: " and the reason.
func (e *UnauthorizedError) Error() string { return "unauthorized: " + e.Reason }

// Is reports whether target is ErrUnauthorized.
func (e *UnauthorizedError) Is(target error) bool { return target == ErrUnauthorized }

// Unwrap returns the underlying cause, if any.
func (e *UnauthorizedError) Unwrap() error { return e.cause }

func unauthorized(reason string, cause error) error {
	return &UnauthorizedError{Reason: reason, cause: cause}
}

// Principal is who a verified token speaks for.
type Principal struct {
	// Account scopes every query: the caller can only see its own account's
	// connections.
	Account string
	// Subject is the actor (the sub claim), for audit trails.
	Subject string
	// Scopes are what the token grants beyond the account's connections:
	// the space-separated scope claim (RFC 9068), or Entra's scp.
	Scopes []string
}

// ScopeToken lets a caller get access tokens for its account's connections
// (POST /connections/{id}/token): the product's workers, not the modal.
const ScopeToken = "connections:token"

// HasScope reports whether the token grants scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	parser       *jwt.Parser
	algs         []string
	requireIss   bool
	keyfunc      func(ctx context.Context) jwt.Keyfunc
	accountClaim string
}

// jwksOptions are the JWKS timings; tests shorten them.
type jwksOptions struct {
	refreshInterval   time.Duration // periodic refresh, so revoked keys go away
	unknownKIDEvery   time.Duration // at most one refresh per this for unknown kids
	unknownKIDWaitMax time.Duration // longest a request waits for such a refresh
	httpTimeout       time.Duration
}

var defaultJWKSOptions = jwksOptions{
	refreshInterval:   10 * time.Minute,
	unknownKIDEvery:   30 * time.Second,
	unknownKIDWaitMax: 5 * time.Second,
	httpTimeout:       10 * time.Second,
}

// maxJWKSBody caps a JWKS response; real key sets are a few KiB.
const maxJWKSBody = 1 << 20

// NewVerifier returns a Verifier for cfg. With a JWKS URL it fetches the key
// set before returning (an unreachable or malformed JWKS is a start-up error)
// and keeps refreshing it in a goroutine that stops when ctx is done.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	return newVerifier(ctx, cfg, defaultJWKSOptions)
}

func newVerifier(ctx context.Context, cfg Config, opts jwksOptions) (*Verifier, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("auth: %w", errors.Join(errs...))
	}
	claim := cfg.AccountClaim
	if claim == "" {
		claim = DefaultAccountClaim
	}
	parserOpts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		parserOpts = append(parserOpts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		parserOpts = append(parserOpts, jwt.WithAudience(cfg.Audience))
	}

	v := &Verifier{accountClaim: claim, requireIss: cfg.Issuer != ""}
	if cfg.JWKSURL == "" {
		key := []byte(cfg.HS256Secret.Reveal())
		// Only HS256 with the shared secret: a token cannot pick "none" or
		// another family.
		v.algs = []string{"HS256"}
		v.parser = jwt.NewParser(append(parserOpts, jwt.WithValidMethods(v.algs))...)
		v.keyfunc = func(context.Context) jwt.Keyfunc {
			return func(*jwt.Token) (any, error) { return key, nil }
		}
		return v, nil
	}

	kf, err := newJWKSKeyfunc(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	// Asymmetric algorithms only: HS256 with a JWKS would let anyone who
	// has the public key sign tokens.
	v.algs = []string{"RS256", "ES256"}
	v.parser = jwt.NewParser(append(parserOpts, jwt.WithValidMethods(v.algs))...)
	v.keyfunc = kf.KeyfuncCtx
	return v, nil
}

func newJWKSKeyfunc(ctx context.Context, cfg Config, opts jwksOptions) (keyfunc.Keyfunc, error) {
	u, err := url.Parse(cfg.JWKSURL) // checked by Validate
	if err != nil {
		return nil, fmt.Errorf("auth: AUTH_JWKS_URL: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	client := &http.Client{Transport: limitedBody{transport}, Timeout: opts.httpTimeout}

	// rctx exists so that a failed start stops the refresh goroutine at once.
	rctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(rctx, transport.CloseIdleConnections)

	remote, err := jwkset.NewStorageFromHTTP(cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:          client,
		Ctx:             rctx,
		HTTPTimeout:     opts.httpTimeout,
		RefreshInterval: opts.refreshInterval,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			logger.WarnContext(ctx, "auth: refresh JWKS", "host", u.Host, "error", err)
		},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: fetch AUTH_JWKS_URL: %w", err)
	}
	storage, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{cfg.JWKSURL: remote},
		RateLimitWaitMax:  opts.unknownKIDWaitMax,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(opts.unknownKIDEvery), 1),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: JWKS client: %w", err)
	}
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:     rctx,
		Storage: storage,
		// Keys marked for encryption must not verify signatures; keys
		// without "use" are common and allowed.
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: JWKS keyfunc: %w", err)
	}
	context.AfterFunc(ctx, cancel) // rctx ends with ctx; this only releases it
	return kf, nil
}

// limitedBody caps JWKS response bodies so a misbehaving endpoint cannot
// make the service read without bound.
type limitedBody struct{ rt http.RoundTripper }

func (l limitedBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxJWKSBody), resp.Body}
	return resp, nil
}

// missingClaim names the required claim that tok lacks: exp always, iss and
// aud when configured (the parser reports only that one is missing).
func (v *Verifier) missingClaim(tok *jwt.Token) string {
	var c jwt.MapClaims
	if tok != nil {
		c, _ = tok.Claims.(jwt.MapClaims)
	}
	if _, ok := c["exp"]; !ok {
		return "exp"
	}
	if iss, _ := c["iss"].(string); iss == "" && v.requireIss {
		return "iss"
	}
	return "aud"
}

// Verify checks the Authorization header value ("Bearer <jwt>") and returns
// the principal it carries. Every error matches ErrUnauthorized and is an
// *UnauthorizedError whose Reason never contains the token. ctx bounds a JWKS
// refresh triggered by an unknown key id.
func (v *Verifier) Verify(ctx context.Context, authorizationHeader string) (Principal, error) {
	raw, err := bearerToken(authorizationHeader)
	if err != nil {
		return Principal{}, err
	}
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc(ctx))
	if err != nil {
		return Principal{}, v.parseError(tok, err)
	}

	account, err := identityClaim(claims, v.accountClaim)
	if err != nil {
		return Principal{}, err
	}
	sub, err := identityClaim(claims, "sub")
	if err != nil {
		return Principal{}, err
	}
	return Principal{Account: account, Subject: sub, Scopes: scopes(claims)}, nil
}

// scopes reads the scope claim (RFC 9068: one space-separated string) or,
// when there is none, Entra's scp (the same form, or an array of strings,
// as some identity providers write it).
func scopes(claims jwt.MapClaims) []string {
	for _, name := range []string{"scope", "scp"} {
		switch v := claims[name].(type) {
		case string:
			return strings.Fields(v)
		case []any:
			var out []string
			for _, s := range v {
				if s, ok := s.(string); ok {
					out = append(out, strings.Fields(s)...)
				}
			}
			return out
		}
	}
	return nil
}

// identityClaim returns the claim named name, which says who the caller is:
// a non-empty string of at most maxIdentityLen bytes without control
// characters. Both identity claims are stored (the account with every
// connection, the subject in audit events), and PostgreSQL cannot store NUL.
func identityClaim(claims jwt.MapClaims, name string) (string, error) {
	s, ok := claims[name].(string)
	switch {
	case !ok || s == "":
		return "", unauthorized("missing "+name+" claim", nil)
	case len(s) > maxIdentityLen:
		return "", unauthorized(name+" claim too long", nil)
	case strings.ContainsFunc(s, unicode.IsControl):
		return "", unauthorized(name+" claim has control characters", nil)
	}
	return s, nil
}

func bearerToken(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" || strings.EqualFold(header, "Bearer") {
		return "", unauthorized("missing bearer token", nil)
	}
	scheme, token, ok := strings.Cut(header, " ")
	// The scheme is case-insensitive (RFC 9110 section 11.1).
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", unauthorized("authorization header must use the Bearer scheme", nil)
	}
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return "", unauthorized("missing bearer token", nil)
	case len(token) > maxTokenLen:
		return "", unauthorized("token too long", nil)
	}
	return token, nil
}

// parseError maps a jwt error to a safe reason. The order matters: a token
// can fail several checks at once and the first match is reported.
func (v *Verifier) parseError(tok *jwt.Token, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthorized("malformed token", err)
	case tok != nil && (tok.Method == nil || !slices.Contains(v.algs, tok.Method.Alg())):
		return unauthorized("signing algorithm not allowed", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return unauthorized("unknown signing key", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthorized("invalid token signature", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return unauthorized("missing "+v.missingClaim(tok)+" claim", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized("token expired", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthorized("token not valid yet", err)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return unauthorized("token issued in the future", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return unauthorized("wrong token issuer", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return unauthorized("wrong token audience", err)
	default:
		return unauthorized("invalid token", err)
	}
}
