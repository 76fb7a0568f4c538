package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dynconn/dynconn/internal/api"
	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/jobs"
	"github.com/dynconn/dynconn/internal/secret"
)

// config is everything serve needs from the environment (design.md,
// "Configuration"). The keyring is loaded separately by package crypto.
type config struct {
	DatabaseURL   secret.String // may hold a password
	ListenAddr    string
	MetricsAddr   string // "" serves no metrics
	Auth          auth.Config
	AllowLoopback bool
	LogLevel      slog.Level
	CORSOrigins   []string // exact origins whose pages may call the API
	// CertificateValidity is how long the certificates of certificate
	// connections are valid (CERTIFICATE_VALIDITY, a Go duration).
	CertificateValidity time.Duration
	// RecheckInterval (RECHECK_INTERVAL, default 24h, 0 = off) and
	// RecheckWorkers (RECHECK_WORKERS, default 10): scheduled re-checks.
	RecheckInterval time.Duration
	RecheckWorkers  int
	// WebhookAllowLoopback (WEBHOOK_ALLOW_LOOPBACK) admits
	// http://127.0.0.1:PORT webhook endpoints; WebhookRetryBase
	// (WEBHOOK_RETRY_BASE) is the first retry's delay.
	WebhookAllowLoopback bool
	WebhookRetryBase     time.Duration
}

// loadConfig reads and checks the environment, reporting every problem at
// once, each naming its variable.
func loadConfig(getenv func(string) string) (config, error) {
	var errs []error
	cfg := config{
		DatabaseURL: secret.String(strings.TrimSpace(getenv("DATABASE_URL"))),
		ListenAddr:  getenv("LISTEN_ADDR"),
		MetricsAddr: getenv("METRICS_ADDR"),
		Auth: auth.Config{
			JWKSURL:      strings.TrimSpace(getenv("AUTH_JWKS_URL")),
			HS256Secret:  secret.String(getenv("AUTH_HS256_SECRET")),
			Issuer:       getenv("AUTH_ISSUER"),
			Audience:     getenv("AUTH_AUDIENCE"),
			AccountClaim: getenv("AUTH_ACCOUNT_CLAIM"),
		},
	}
	if err := checkDatabaseURL(cfg.DatabaseURL.Reveal()); err != nil {
		errs = append(errs, err)
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = ":8080"
	}
	if _, _, err := net.SplitHostPort(cfg.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("LISTEN_ADDR: %q is not host:port (for example :8080)", cfg.ListenAddr))
	}
	if cfg.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("METRICS_ADDR: %q is not host:port (for example 127.0.0.1:9090)", cfg.MetricsAddr))
		}
	}
	errs = append(errs, cfg.Auth.Validate()...)
	var err error
	if cfg.AllowLoopback, err = parseBool(getenv("DYNAMICS_ALLOW_LOOPBACK")); err != nil {
		errs = append(errs, fmt.Errorf("DYNAMICS_ALLOW_LOOPBACK: %w", err))
	}
	if cfg.CORSOrigins, err = api.ParseOrigins(getenv("CORS_ALLOWED_ORIGINS")); err != nil {
		errs = append(errs, fmt.Errorf("CORS_ALLOWED_ORIGINS: %w", err))
	}
	cfg.CertificateValidity = credential.DefaultValidity
	if s := getenv("CERTIFICATE_VALIDITY"); s != "" {
		// Entra accepts any validity; past a few years a key outlives the
		// guidance on 2048-bit RSA, and a customer forgets how to renew.
		if d, err := time.ParseDuration(s); err != nil || d <= 0 || d > 5*credential.DefaultValidity {
			errs = append(errs, fmt.Errorf("CERTIFICATE_VALIDITY: %q is not a positive Go duration up to 43800h (5 years), for example 8760h", s))
		} else {
			cfg.CertificateValidity = d
		}
	}
	if cfg.RecheckInterval, err = parseDuration(getenv("RECHECK_INTERVAL"), 24*time.Hour); err != nil {
		errs = append(errs, fmt.Errorf("RECHECK_INTERVAL: %w", err))
	}
	cfg.RecheckWorkers = jobs.DefaultRecheckWorkers
	if s := getenv("RECHECK_WORKERS"); s != "" {
		if cfg.RecheckWorkers, err = strconv.Atoi(s); err != nil || cfg.RecheckWorkers < 1 {
			errs = append(errs, fmt.Errorf("RECHECK_WORKERS: %q is not a positive whole number", s))
		}
	}
	if cfg.WebhookAllowLoopback, err = parseBool(getenv("WEBHOOK_ALLOW_LOOPBACK")); err != nil {
		errs = append(errs, fmt.Errorf("WEBHOOK_ALLOW_LOOPBACK: %w", err))
	}
	cfg.WebhookRetryBase = jobs.DefaultRetryBase
	if s := getenv("WEBHOOK_RETRY_BASE"); s != "" {
		if cfg.WebhookRetryBase, err = time.ParseDuration(s); err != nil || cfg.WebhookRetryBase <= 0 {
			errs = append(errs, fmt.Errorf("WEBHOOK_RETRY_BASE: %q is not a positive duration (for example 30s)", s))
		}
	}
	if s := getenv("LOG_LEVEL"); s != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(s)); err != nil {
			errs = append(errs, fmt.Errorf("LOG_LEVEL: %q is not one of debug, info, warn, error", s))
		}
	}
	return cfg, errors.Join(errs...)
}

// checkDatabaseURL checks DATABASE_URL without ever echoing it (it may hold a password).
func checkDatabaseURL(s string) error {
	if s == "" {
		return errors.New("DATABASE_URL: not set (for example postgres://user:password@localhost:5432/dynconn)")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("DATABASE_URL: must be a postgres:// URL")
	}
	return nil
}

// parseDuration reads a Go duration (24h, 90m, 3s; "0" turns the feature
// off), def when s is empty. Negative durations are refused.
func parseDuration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 24h, 90m or 30s (0 turns it off)", s)
	}
	return d, nil
}

func parseBool(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", s)
	}
	return b, nil
}

// redactURL removes the password from a database URL for logging.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}
