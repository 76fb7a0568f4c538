// Command dynamics-simulator runs a stand-in for Microsoft's Dataverse and
// Entra ID endpoints on a loopback port, so dynconn's connection test can be
// tried without an Azure tenant. Run dynconn with DYNAMICS_ALLOW_LOOPBACK=true
// and paste one of the printed instance URLs with the printed Client ID and
// Client Secret; each /s/{scenario} URL produces one diagnosis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultAddr := getenv("DYNAMICS_SIMULATOR_ADDR")
	if defaultAddr == "" {
		defaultAddr = "127.0.0.1:8443"
	}
	addr := fs.String("addr", defaultAddr, "listen address, loopback only (env DYNAMICS_SIMULATOR_ADDR)")
	scenario := fs.String("scenario", simulator.ScenarioOK, "scenario for URLs without /s/{scenario}")
	slow := fs.Duration("slow", 3*time.Second, "delay of the \"slow\" scenario")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("addr %q: %w", *addr, err)
	}
	// dynconn accepts only loopback literals in loopback mode; anything else
	// would also expose a fake sign-in service to the network.
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("addr %q: listen on a loopback address such as 127.0.0.1", *addr)
	}

	h := simulator.NewHandler(simulator.Options{Scenario: *scenario, SlowDelay: *slow})
	defer h.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	printScenarios(stdout, base)

	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	h.Close() // release hanging scenarios so Shutdown can finish
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func printScenarios(w io.Writer, base string) {
	fmt.Fprintf(w, "Microsoft simulator on %s (start dynconn with DYNAMICS_ALLOW_LOOPBACK=true)\n\n", base)
	fmt.Fprintf(w, "Client Id:      %s\n", simulator.ClientID)
	fmt.Fprintf(w, "Client Secret:  %s\n", simulator.ClientSecret)
	fmt.Fprintf(w, "Tenant Id:      %s (optional; leave empty to discover)\n", simulator.TenantID)
	fmt.Fprintf(w, "Secret ID:      %s (paste it as the secret to see client_secret_invalid)\n\n", simulator.SecretID)
	fmt.Fprintf(w, "Resource URL per scenario (%s alone runs the -scenario flag's one):\n\n", base)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE URL\tEXPECTED\tWHAT MICROSOFT DOES")
	for _, s := range simulator.Scenarios() {
		want := "ok"
		if s.Code != "" {
			want = s.Code + " (" + s.Check + " " + s.Status + ")"
		}
		fmt.Fprintf(tw, "%s/s/%s\t%s\t%s\n", base, s.Name, want, s.Summary)
	}
	tw.Flush()
	fmt.Fprintln(w)
}
