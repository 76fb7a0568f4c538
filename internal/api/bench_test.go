package api

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
)

// reportLatencies adds p50 and p99 (in microseconds) to a benchmark's output.
func reportLatencies(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkConnectionTestEndpoint is POST /connections/{id}/test through the
// real HTTP server and Postgres, against the in-process simulator. Compare
// with BenchmarkBareClient: the difference is dynconn's overhead (auth,
// opening the secret, the safe transport, diagnosis, storing the result).
func BenchmarkConnectionTestEndpoint(b *testing.B) {
	e := newEnv(b, func(o *envConfig) { o.checker.RateLimit.Burst = 1 << 30 })
	id := e.do("POST", "/connections", "acct-a", e.simCreate("ok")).json(b)["id"].(string)
	tok := token(b, "acct-a")
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		req, _ := http.NewRequest("POST", e.srv.URL+"/connections/"+id+"/test", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := e.srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		lat = append(lat, time.Since(start))
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok":true`) {
			b.Fatalf("%d %s", res.StatusCode, body)
		}
	}
	reportLatencies(b, lat)
}

// BenchmarkBareClient makes the same four calls to the simulator with a
// plain net/http client and no checks: the floor for the endpoint above.
func BenchmarkBareClient(b *testing.B) {
	sim := simulator.New(simulator.Options{})
	defer sim.Close()
	instance := sim.InstanceURL("ok")
	hc := &http.Client{}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if err := simulator.BareTest(hc, instance); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportLatencies(b, lat)
}
