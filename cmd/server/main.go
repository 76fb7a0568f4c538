// Command server runs dynconn: the HTTP API (serve), its migrations (migrate)
// and key management (keys).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"

	"github.com/dynconn/dynconn/internal/api"
	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/jobs"
	"github.com/dynconn/dynconn/internal/outbound"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/webhook"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

const usage = `usage: server [command]

commands:
  serve                 run the HTTP API (default)
  migrate up|down|version
                        apply, roll back (one step) or show the schema migrations
  keys generate         print a fresh encryption key line (id:base64) for ENCRYPTION_KEYS
  keys status           secrets per encryption key, which key is active, whether every key in use is loaded
  keys rotate [--dry-run] [--batch N] [--workers N]
                        re-wrap every data key under the active encryption key, online
`

// shutdownTimeout bounds how long in-flight requests may finish after SIGTERM.
const shutdownTimeout = 20 * time.Second

// run is the whole program; main only calls it, so tests can start the real
// server in-process with their own environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := "serve"
	if len(args) > 1 {
		cmd = args[1]
	}
	var rest []string
	if len(args) > 2 {
		rest = args[2:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, getenv, stderr)
	case "migrate":
		return migrateCommand(ctx, rest, getenv, stdout)
	case "keys":
		return keysCommand(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// newLogger writes JSON lines. Keys that name credentials are blanked as a
// second guard behind secret.String.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch strings.ToLower(a.Key) {
			case "authorization", "client_secret", "secret", "password", "token", "access_token":
				return slog.String(a.Key, "[redacted]")
			}
			return a
		},
	}))
}

func serve(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	keys, kerr := crypto.LoadKeyring(getenv)
	if err = errors.Join(err, kerr); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := newLogger(stderr, cfg.LogLevel)
	if cfg.AllowLoopback {
		logger.Warn("DYNAMICS_ALLOW_LOOPBACK is on: connection tests may reach http://127.0.0.1. Use it for development and tests only, never in production.")
	}
	if cfg.RecheckInterval > 0 && cfg.RecheckInterval < time.Minute {
		logger.Warn("RECHECK_INTERVAL is under a minute: every connection is tested that often, against Microsoft's limits. Use it for development and tests only.",
			"interval", cfg.RecheckInterval.String())
	}
	if cfg.WebhookAllowLoopback {
		logger.Warn("WEBHOOK_ALLOW_LOOPBACK is on: webhooks may be sent to http://127.0.0.1. Use it for development and tests only, never in production.")
	}
	if cfg.WebhookRetryBase < time.Minute {
		logger.Warn("WEBHOOK_RETRY_BASE is under a minute: fine for tests and demos, too eager for receivers in production", "retry_base", cfg.WebhookRetryBase.String())
	}

	// Migrations hold golang-migrate's advisory lock, so replicas can start together.
	if err := store.Migrate(cfg.DatabaseURL.Reveal(), "up"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	st, err := store.Open(ctx, cfg.DatabaseURL.Reveal(), logger)
	if err != nil {
		return err
	}
	defer st.Close()
	verifier, err := auth.NewVerifier(ctx, cfg.Auth)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}

	hashKey, err := api.LoadRequestHashKey(ctx, st, keys)
	if err != nil {
		return err
	}
	dyn := dynamics.NewClient(dynamics.Options{AllowLoopback: cfg.AllowLoopback, Logger: logger})
	defer dyn.CloseIdleConnections()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := api.NewMetrics(reg)
	chk := checker.New(st, keys, dyn, checker.Options{RecheckInterval: cfg.RecheckInterval, Metrics: checker.NewMetrics(reg)})

	// Background work runs on River, in every replica, on the store's pool:
	// re-checks, expiry notices, pruning, and webhook delivery, fed by the
	// outbox dispatcher.
	sender := webhook.NewSender(webhook.Options{Outbound: outbound.Options{AllowLoopback: cfg.WebhookAllowLoopback}})
	defer sender.CloseIdleConnections()
	hooks := jobs.WebhookConfig{RetryBase: cfg.WebhookRetryBase, Sender: sender, Metrics: jobs.NewDeliveryMetrics(reg)}
	workers := river.NewWorkers()
	jobs.AddDeliveryWorker(workers, st, keys, logger, hooks)
	bg, err := jobs.New(st.Pool(), logger, jobs.Config{RecheckInterval: cfg.RecheckInterval, RecheckWorkers: cfg.RecheckWorkers,
		Checker: chk, Metrics: jobs.NewMetrics(reg, st.Pool()), Queues: map[string]int{jobs.QueueWebhooks: jobs.DefaultWebhookWorkers}}, workers)
	if err != nil {
		return err
	}
	if err := bg.Start(ctx); err != nil {
		return err
	}
	go jobs.NewDispatcher(st, bg.Client, logger, hooks, 0).Run(ctx)

	apiOpts := api.Options{AllowLoopback: cfg.AllowLoopback, Metrics: metrics, WebhookAllowLoopback: cfg.WebhookAllowLoopback,
		CORSAllowedOrigins: cfg.CORSOrigins, RequestHashKey: hashKey, CertificateValidity: cfg.CertificateValidity}
	srv := &http.Server{
		Addr:              cfg.ListenAddr,
		Handler:           api.NewServer(logger, st, keys, verifier, chk, dyn, apiOpts),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      60 * time.Second, // a connection test may take its full 25 s deadline
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return errors.Join(fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err), bg.Stop(context.WithoutCancel(ctx)))
	}
	logger.Info("serving", "addr", ln.Addr().String(), "database", redactURL(cfg.DatabaseURL.Reveal()),
		"pool_max_conns", st.MaxConns(), "active_key", keys.ActiveID(), "schema_version", store.SchemaVersion, "recheck_interval", cfg.RecheckInterval.String())
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	// Metrics get their own listener, so they can stay on an internal
	// address while the API is public, and need no bearer token.
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			_ = srv.Close()
			return errors.Join(fmt.Errorf("listen on %s (METRICS_ADDR): %w", cfg.MetricsAddr, err), bg.Stop(context.WithoutCancel(ctx)))
		}
		metricsSrv = &http.Server{Handler: operationsHandler(reg), ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- metricsSrv.Serve(mln) }()
		logger.Info("serving metrics and profiles", "addr", mln.Addr().String(), "paths", "/metrics /debug/pprof/")
	}
	select {
	case err := <-errc:
		return errors.Join(fmt.Errorf("serve: %w", err), bg.Stop(context.WithoutCancel(ctx)))
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests and jobs", "timeout", shutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	// Jobs get the budget less the time that cancelling the rest may take,
	// so both end within it.
	jobsCtx, cancelJobs := context.WithTimeout(shutdownCtx, shutdownTimeout-jobs.CancelTimeout)
	defer cancelJobs()
	jobsErr := make(chan error, 1)
	go func() { jobsErr <- bg.Stop(jobsCtx) }()
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(shutdownCtx)
	}
	err = srv.Shutdown(shutdownCtx)
	if err = errors.Join(err, <-jobsErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := bg.Stop(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// operationsHandler serves the metrics listener: Prometheus metrics at
// /metrics and Go's profiles at /debug/pprof/ (go tool pprof
// http://METRICS_ADDR/debug/pprof/profile). Profiles show code and timings,
// never request data, but like metrics they are for operators only: that is
// why they are on this listener and not the API's.
func operationsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // also serves the named profiles: heap, goroutine, …
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

func migrateCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	dbURL := strings.TrimSpace(getenv("DATABASE_URL"))
	if err := checkDatabaseURL(dbURL); err != nil {
		return err
	}
	sub := "up"
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "up", "down":
		if err := store.Migrate(dbURL, sub); err != nil {
			return err
		}
		fallthrough
	case "version":
		v, dirty, err := store.MigrationVersion(dbURL)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "schema version %d (dirty: %t); this binary's version is %d\n", v, dirty, store.SchemaVersion)
		st, err := store.Open(ctx, dbURL, nil)
		if err != nil {
			return err
		}
		defer st.Close()
		rv, err := st.DatabaseRiverVersion(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "job queue (River) schema version %d; this binary's version is %d\n", rv, store.RiverSchemaVersion)
		return nil
	default:
		return fmt.Errorf("migrate: unknown subcommand %q (want up, down or version)", sub)
	}
}
