// Command dynamics-simulator runs a stand-in for Microsoft's Dataverse and
// Entra ID endpoints on a loopback port, so dynconn's connection test can be
// tried without an Azure tenant. Run dynconn with DYNAMICS_ALLOW_LOOPBACK=true
// and paste one of the printed instance URLs with the printed Client ID and
// Client Secret (or, for a certificate connection, upload its certificate
// as printed). Each scenario has a port of its own, so each printed URL is a
// plain http://127.0.0.1:PORT that produces one diagnosis: -addr's port runs
// the -scenario flag's one, and the ports after it run the scenarios in the
// order of the table.
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
	"strconv"
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
	addr := fs.String("addr", defaultAddr, "listen address, loopback only (env DYNAMICS_SIMULATOR_ADDR); the scenarios take the ports after it (port 0: any free ports)")
	scenario := fs.String("scenario", simulator.ScenarioOK, "scenario of the -addr URL")
	slow := fs.Duration("slow", 3*time.Second, "delay of the \"slow\" scenario")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("addr %q: %w", *addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("addr %q: the port is not a number", *addr)
	}
	// dynconn accepts only loopback literals in loopback mode; anything else
	// would also expose a fake sign-in service to the network.
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("addr %q: listen on a loopback address such as 127.0.0.1", *addr)
	}

	h := simulator.NewHandler(simulator.Options{Scenario: *scenario, SlowDelay: *slow})
	defer h.Close()
	eps, err := listen(host, port, h)
	if err != nil {
		return err
	}
	printScenarios(stdout, eps)

	errc := make(chan error, len(eps))
	for _, ep := range eps {
		go func() { errc <- ep.srv.Serve(ep.ln) }()
	}
	select {
	case err := <-errc:
		for _, ep := range eps {
			ep.srv.Close()
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	h.Close() // release hanging scenarios so Shutdown can finish
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var errs []error
	for _, ep := range eps {
		if err := ep.srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("shutdown %s: %w", ep.url, err))
		}
	}
	return errors.Join(errs...)
}

// endpoint is one listener of the simulator and the scenario it runs.
type endpoint struct {
	url      string
	scenario simulator.Scenario // zero for the default scenario's listener
	ln       net.Listener
	srv      *http.Server
}

// listen opens one listener per scenario on host, so that the port picks the
// scenario and an instance URL needs no path that dynconn would have to know
// about. The first endpoint, on port, runs h's default scenario; the others
// take the ports after it, in the order of simulator.Scenarios (any free
// ports when port is 0).
func listen(host string, port int, h *simulator.Handler) ([]endpoint, error) {
	var eps []endpoint
	add := func(port int, sc simulator.Scenario, handler http.Handler) error {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			for _, ep := range eps {
				ep.ln.Close()
			}
			return fmt.Errorf("listen: %w", err)
		}
		eps = append(eps, endpoint{url: "http://" + ln.Addr().String(), scenario: sc, ln: ln,
			srv: &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}})
		return nil
	}
	if err := add(port, simulator.Scenario{}, h); err != nil {
		return nil, err
	}
	for i, sc := range simulator.Scenarios() {
		p := 0
		if port != 0 {
			p = port + 1 + i
		}
		handler, err := h.Scenario(sc.Name)
		if err == nil {
			err = add(p, sc, handler)
		}
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
	}
	return eps, nil
}

// printScenarios prints what to paste into the modal: the credentials, and
// the instance URL of each scenario.
func printScenarios(w io.Writer, eps []endpoint) {
	base := eps[0].url
	fmt.Fprintf(w, "Microsoft simulator on %s (start dynconn with DYNAMICS_ALLOW_LOOPBACK=true)\n\n", base)
	fmt.Fprintf(w, "Client Id:      %s\n", simulator.ClientID)
	fmt.Fprintf(w, "Client Secret:  %s\n", simulator.ClientSecret)
	fmt.Fprintf(w, "Tenant Id:      %s (optional; leave empty to discover)\n", simulator.TenantID)
	fmt.Fprintf(w, "Secret ID:      %s (paste it as the secret to see client_secret_invalid)\n", simulator.SecretID)
	fmt.Fprintf(w, "Certificate:    for a certificate connection, upload the certificate dynconn made to the app (any port):\n")
	fmt.Fprintf(w, "                curl --data-binary @dynconn-ID.pem %s/_sim/apps/%s/certificates\n\n", base, simulator.ClientID)
	fmt.Fprintf(w, "Resource URL per scenario (%s runs the -scenario flag's one):\n\n", base)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE URL\tSCENARIO\tEXPECTED\tWHAT MICROSOFT DOES")
	for _, ep := range eps[1:] {
		s := ep.scenario
		want := "ok"
		if s.Code != "" {
			want = s.Code + " (" + s.Check + " " + s.Status + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ep.url, s.Name, want, s.Summary)
	}
	tw.Flush()
	fmt.Fprintln(w)
}
