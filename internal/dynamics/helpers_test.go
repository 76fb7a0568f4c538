package dynamics

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
)

// TestMain fails the package when any test leaves a goroutine behind: a
// hanging request, an unclosed connection, a simulator that was not stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
	os.Exit(0) // not reached: VerifyTestMain exits
}

// newSim starts a simulator that the test stops when it ends.
func newSim(t testing.TB, opts simulator.Options) *simulator.Server {
	t.Helper()
	s := simulator.New(opts)
	t.Cleanup(s.Close)
	return s
}

// newClient returns a Client with test-sized timeouts, logging into a buffer,
// whose connections are closed when the test ends.
func newClient(t testing.TB, opts Options) (*Client, *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	if opts.StepTimeout == 0 {
		opts.StepTimeout = 2 * time.Second
	}
	if opts.Deadline == 0 {
		opts.Deadline = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	c := NewClient(opts)
	t.Cleanup(c.CloseIdleConnections)
	return c, logs
}

// simCreds are the credentials the simulator accepts, for instance URL u.
func simCreds(u string) Credentials {
	return Credentials{InstanceURL: u, ClientID: simulator.ClientID, ClientSecret: secret.Bytes(simulator.ClientSecret)}
}

// staticLookup resolves names from a table; other names do not exist.
func staticLookup(table map[string][]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		ips, ok := table[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		out := make([]netip.Addr, 0, len(ips))
		for _, ip := range ips {
			out = append(out, netip.MustParseAddr(ip))
		}
		return out, nil
	}
}

// checkStatuses returns the statuses of a result's checks, in order.
func checkStatuses(res model.TestResult) []model.CheckStatus {
	out := make([]model.CheckStatus, len(res.Checks))
	for i, c := range res.Checks {
		out[i] = c.Status
	}
	return out
}

// checkNamed returns the check with name, failing the test if it is absent.
func checkNamed(t testing.TB, res model.TestResult, name string) model.Check {
	t.Helper()
	for _, c := range res.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, res.Checks)
	return model.Check{}
}

// stepOf returns a diagnosis code's setup step as the API carries it.
func stepOf(t testing.TB, code string) *string {
	t.Helper()
	d, ok := Lookup(code)
	if !ok {
		t.Fatalf("code %q is not in allDiagnoses()", code)
	}
	return d.Step()
}

// allDiagnoses lists every diagnosis code with its setup step, message and hint, in
// the order of the checks that report them (for openapi.yaml and the README).
func allDiagnoses() []Diagnosis {
	return slices.Clone(diagnoses)
}
