package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// The two benchmarks here compare dynconn with its floor in one run, on the
// same machine and database, so that their ratios mean something on a noisy
// machine where absolute numbers do not. `make bench` prints them.

var (
	benchDuration = flag.Duration("bench.duration", 5*time.Second, "how long each side of BenchmarkCreateVsPgbench runs")
	benchClients  = flag.Int("bench.clients", 16, "concurrent clients of BenchmarkCreateVsPgbench")
)

// benchServer is the API as `serve` builds it (pool settings, info-level JSON
// logging, metrics) on a fresh database, with a simulator for Microsoft.
type benchServer struct {
	srv  *httptest.Server
	url  string // the database's
	pool *pgxpool.Pool
	sim  *simulator.Server
}

func newBenchServer(b *testing.B, opts Options, chkOpts checker.Options) *benchServer {
	b.Helper()
	dbURL := storetest.URL(b)
	st, err := store.Open(context.Background(), dbURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	keys, err := crypto.ParseKeyring(mustKey(b, "k1"), "")
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	v, err := auth.NewVerifier(context.Background(), auth.Config{HS256Secret: hsSecret, AccountClaim: "account_id"})
	if err != nil {
		b.Fatal(err)
	}
	sim := simulator.New(simulator.Options{})
	b.Cleanup(sim.Close)
	dyn := dynamics.NewClient(dynamics.Options{AllowLoopback: true, Logger: logger})
	b.Cleanup(dyn.CloseIdleConnections)
	if opts.RequestHashKey, err = LoadRequestHashKey(context.Background(), st, keys); err != nil {
		b.Fatal(err)
	}
	opts.AllowLoopback = true
	opts.Metrics = NewMetrics(prometheus.NewRegistry())
	chk := checker.New(st, keys, dyn, chkOpts)
	srv := httptest.NewServer(NewServer(logger, st, keys, v, chk, dyn, opts))
	b.Cleanup(srv.Close)
	return &benchServer{srv: srv, url: dbURL, pool: pool, sim: sim}
}

// BenchmarkCreateVsPgbench measures creates through the HTTP API (16
// clients, keep-alive) and then pgbench inserting rows of the same shape
// into the same table with as many clients, each for -bench.duration, and
// reports both rates and their ratio. Each API client sends a request on its
// own connection and waits for the answer, as a pgbench client does with a
// statement, and as cheaply (keepAlive): the load generator runs on the same
// cores as what it measures.
func BenchmarkCreateVsPgbench(b *testing.B) {
	pgbench := findPgbench(b)
	s := newBenchServer(b, Options{}, checker.Options{})
	tok := token(b, "acct-bench")
	conns := make([]*keepAlive, *benchClients)
	for i := range conns {
		conns[i] = dialKeepAlive(b, s.srv.Listener.Addr().String())
	}
	var seq atomic.Int64
	create := func(worker int) error {
		body := fmt.Sprintf(`{"instance_url":"https://b%d.crm.dynamics.com","client_id":"22222222-2222-2222-2222-222222222222","client_secret":"Abc8Q~pasted.secret-value_0123456789xyz"}`, seq.Add(1))
		req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/connections", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := conns[worker].do(req)
		if err != nil {
			return err
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			return fmt.Errorf("create: %d %s", res.StatusCode, got)
		}
		return nil
	}
	for b.Loop() {
		hammer(b, *benchClients, time.Second, create) // warm up the pool, the connections and the caches
		api := float64(hammer(b, *benchClients, *benchDuration, create)) / benchDuration.Seconds()
		pg := runPgbench(b, pgbench, s, *benchClients, *benchDuration)
		b.ReportMetric(api, "api-creates/s")
		b.ReportMetric(pg, "pgbench-inserts/s")
		b.ReportMetric(api/pg, "ratio")
		b.Logf("create: %.0f/s through the API, %.0f/s pgbench inserting the same row shape, %d clients each: ratio %.2f×",
			api, pg, *benchClients, api/pg)
	}
}

// keepAlive is one keep-alive HTTP/1.1 connection that sends a request and
// reads its response in the calling goroutine, as pgbench's clients do with
// their statements: http.Client's Transport hands each request to two
// goroutines of its own per connection.
type keepAlive struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

func dialKeepAlive(b *testing.B, addr string) *keepAlive {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &keepAlive{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
}

// do sends req and returns its response, whose body the caller reads to the
// end before the next request.
func (k *keepAlive) do(req *http.Request) (*http.Response, error) {
	if err := req.Write(k.w); err != nil {
		return nil, err
	}
	if err := k.w.Flush(); err != nil {
		return nil, err
	}
	return http.ReadResponse(k.r, req)
}

// hammer calls fn from n goroutines for d, each passing its own number
// (0 to n-1), and returns how many calls succeeded. The first error fails
// the benchmark.
func hammer(b *testing.B, n int, d time.Duration, fn func(worker int) error) int64 {
	b.Helper()
	var done atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for time.Now().Before(stop) && failed.Load() == nil {
				if err := fn(i); err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	return done.Load()
}

// findPgbench finds pgbench as scripts/dev-postgres.sh finds the server:
// on PATH, else the newest /usr/lib/postgresql/*/bin.
func findPgbench(b *testing.B) string {
	b.Helper()
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) < versionOf(dirs[j]) })
	if len(dirs) == 0 {
		b.Fatal("pgbench not found: install PostgreSQL's client programs (Debian: postgresql-client)")
	}
	return dirs[len(dirs)-1]
}

func versionOf(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)

// runPgbench inserts copies of a row the API created (its sealed secret
// included) into connections, each with a fresh id and client id, and returns
// pgbench's transactions per second.
func runPgbench(b *testing.B, pgbench string, s *benchServer, clients int, d time.Duration) float64 {
	b.Helper()
	var name, instance string
	var ct, dek []byte
	err := s.pool.QueryRow(context.Background(), `SELECT name, instance_url, secret_ciphertext, secret_wrapped_dek FROM connections LIMIT 1`).
		Scan(&name, &instance, &ct, &dek)
	if err != nil {
		b.Fatal(err)
	}
	script := fmt.Sprintf(`INSERT INTO connections (id, account, name, instance_url, cloud, client_id, tenant_id,
	secret_ciphertext, secret_wrapped_dek, secret_kek_id, secret_updated_at, secret_expires_at,
	status, last_test, created_at, updated_at, version)
VALUES (gen_random_uuid(), 'acct-pgbench', '%s', '%s', 'public', gen_random_uuid(), NULL,
	'\x%s', '\x%s', 'k1', now(), NULL, 'untested', NULL, now(), now(), 1);
`, name, instance, hex.EncodeToString(ct), hex.EncodeToString(dek))
	file := filepath.Join(b.TempDir(), "insert.sql")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		b.Fatal(err)
	}
	jobs := min(clients, 2)
	cmd := exec.Command(pgbench, "-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(jobs),
		"-T", strconv.Itoa(int(d.Seconds())), "-f", file, s.url)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out.String())
	}
	m := tpsLine.FindStringSubmatch(out.String())
	if m == nil {
		b.Fatalf("pgbench printed no tps line:\n%s", out.String())
	}
	tps, _ := strconv.ParseFloat(m[1], 64)
	return tps
}

// BenchmarkTestOverhead is POST /connections/{id}/test through the real
// HTTP server and PostgreSQL, and the same four calls to the same simulator
// with a bare net/http client (simulator.BareTest), one after the other, so
// both see the same machine. The difference of the medians is dynconn's
// overhead: auth, reading the connection, opening the secret, the safe
// transport, diagnosis, storing the result.
func BenchmarkTestOverhead(b *testing.B) {
	s := newBenchServer(b, Options{}, checker.Options{RateLimit: store.RateLimit{Burst: 1 << 30}})
	tok := token(b, "acct-bench")
	body := fmt.Sprintf(`{"instance_url":%q,"client_id":%q,"client_secret":%q}`,
		s.sim.InstanceURL("ok"), simulator.ClientID, simulator.ClientSecret)
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/connections", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	created, _ := io.ReadAll(res.Body)
	res.Body.Close()
	id := regexp.MustCompile(`"id":"([^"]+)"`).FindSubmatch(created)
	if res.StatusCode != http.StatusCreated || id == nil {
		b.Fatalf("create: %d %s", res.StatusCode, created)
	}
	api := s.srv.Client()
	bare := &http.Client{}
	defer bare.CloseIdleConnections()
	instance := s.sim.InstanceURL("ok")
	var apiLat, bareLat []time.Duration
	for b.Loop() {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/connections/"+string(id[1])+"/test", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := api.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		apiLat = append(apiLat, time.Since(start))
		if res.StatusCode != http.StatusOK || !bytes.Contains(got, []byte(`"ok":true`)) {
			b.Fatalf("%d %s", res.StatusCode, got)
		}
		start = time.Now()
		if err := simulator.BareTest(bare, instance); err != nil {
			b.Fatal(err)
		}
		bareLat = append(bareLat, time.Since(start))
	}
	apiP50, bareP50 := median(apiLat), median(bareLat)
	b.ReportMetric(float64(apiP50.Microseconds()), "api-p50-µs")
	b.ReportMetric(float64(bareP50.Microseconds()), "bare-p50-µs")
	b.ReportMetric(float64((apiP50 - bareP50).Microseconds()), "overhead-p50-µs")
	b.Logf("test endpoint: p50 %.2f ms through the API, %.2f ms bare client, overhead %.2f ms (%d runs each)",
		ms(apiP50), ms(bareP50), ms(apiP50-bareP50), b.N)
}

func median(d []time.Duration) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkConnectionToken is POST /connections/{id}/token through the real
// server: "cached" is how workers mostly get it (authentication, the scope
// check, reading the connection, no decryption, no Microsoft); the fresh ones
// open the credential and make a token request to the simulator, with a
// secret or with a client assertion signed by the certificate's key.
func BenchmarkConnectionToken(b *testing.B) {
	e := newEnv(b)
	secretID := e.do("POST", "/connections", "acct-a", e.simCreate("ok")).json(b)["id"].(string)
	certID := e.do("POST", "/connections", "acct-b", map[string]any{"instance_url": e.sim.InstanceURL("ok"),
		"client_id": simulator.ClientID, "credential_type": "certificate"}).json(b)["id"].(string)
	pemFile := e.do("GET", "/connections/"+certID+"/certificate", "acct-b", nil).body
	if _, err := e.sim.UploadCertificate(simulator.ClientID, pemFile); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, account, id, query string }{
		{"cached", "acct-a", secretID, ""},
		{"fresh-secret", "acct-a", secretID, "?fresh=true"},
		{"fresh-certificate", "acct-b", certID, "?fresh=true"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tok := workerToken(b, bc.account)
			before := e.sim.Count("token")
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				req, _ := http.NewRequest("POST", e.srv.URL+"/connections/"+bc.id+"/token"+bc.query, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				res, err := e.srv.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				lat = append(lat, time.Since(start))
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
			if n := e.sim.Count("token") - before; bc.query == "" && n > 1 {
				b.Fatalf("%d token requests: the cache did not answer", n)
			}
			reportLatencies(b, lat)
		})
	}
}

// reportLatencies reports the median and 99th percentile of d.
func reportLatencies(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
