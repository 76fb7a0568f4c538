package dynamics

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
)

// reportPercentiles adds p50 and p99 of the per-iteration durations.
func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkTest is a full successful Test against the in-process simulator,
// discovery included (the cache is off), so it makes the same four calls as
// BenchmarkBareClient: the difference is dynconn's overhead.
func BenchmarkTest(b *testing.B) {
	benchmarkTest(b, -1)
}

// BenchmarkTestCachedDiscovery is the common case: the tenant was discovered
// within the hour, so a test makes three calls.
func BenchmarkTestCachedDiscovery(b *testing.B) {
	benchmarkTest(b, 0)
}

func benchmarkTest(b *testing.B, ttl time.Duration) {
	sim := simulator.New(simulator.Options{})
	defer sim.Close()
	c := NewClient(Options{AllowLoopback: true, DiscoveryTTL: ttl, Logger: slog.New(slog.DiscardHandler)})
	defer c.CloseIdleConnections()
	cr := simCreds(sim.URL)
	if res := c.Test(context.Background(), cr); !res.OK { // warm the connection
		b.Fatalf("test failed: %+v", res.Checks)
	}
	durations := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		res := c.Test(context.Background(), cr)
		durations = append(durations, time.Since(start))
		if !res.OK {
			b.Fatalf("test failed: %+v", res.Checks)
		}
	}
	reportPercentiles(b, durations)
}

// BenchmarkBareClient makes the same four calls with plain net/http and no
// checks: the floor BenchmarkTest is compared with.
func BenchmarkBareClient(b *testing.B) {
	sim := simulator.New(simulator.Options{})
	defer sim.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	call := func() error { return simulator.BareTest(hc, sim.URL) }
	if err := call(); err != nil {
		b.Fatal(err)
	}
	durations := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		err := call()
		durations = append(durations, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	reportPercentiles(b, durations)
}
