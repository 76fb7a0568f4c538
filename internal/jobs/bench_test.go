package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/jobs"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// benchConnections is how many connections come due at once.
const benchConnections = 10_000

// statementCounter counts the statements a pool sends, River's included.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.n.Add(1)
}
func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// BenchmarkRechecks: 10,000 connections come due at once and one replica
// re-checks them with RECHECK_WORKERS=10 against the in-process simulator.
// Beside it run two loops of 10 goroutines that record nothing, each before
// and after the re-checks (the mean of both: the machine is shared):
// dynconn's own test (the dynamics client, as a re-check runs it), and a
// bare loop making the same four calls with plain net/http. It reports the
// three rates and the ratios to both loops, the statements (from this
// process, River's included) and rows written per re-check, and the heap
// after GC a quarter of the way, the largest at each further quarter, and
// after the run. Run it with -benchtime=1x.
func BenchmarkRechecks(b *testing.B) {
	ctx := context.Background()
	url := storetest.URL(b)
	line, err := crypto.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	keys, err := crypto.ParseKeyring(line, "")
	if err != nil {
		b.Fatal(err)
	}
	sim := simulator.New(simulator.Options{})
	defer sim.Close()
	instance := sim.InstanceURL("ok")
	seed(b, url, keys, instance)

	logger := slog.New(slog.NewTextHandler(&logtest.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Discovery is not cached, so that dynconn makes the bare loop's four calls.
	dyn := dynamics.NewClient(dynamics.Options{AllowLoopback: true, Logger: logger, DiscoveryTTL: -1})
	defer dyn.CloseIdleConnections()
	cr := dynamics.Credentials{InstanceURL: instance, ClientID: simulator.ClientID, ClientSecret: secret.Bytes(simulator.ClientSecret)}
	bare, tests := bareRate(b, instance), testRate(b, dyn, cr)

	counter := &statementCounter{}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig.Tracer = counter
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	st := store.New(pool)
	chk := checker.New(st, keys, dyn, checker.Options{RecheckInterval: 24 * time.Hour})

	var elapsed time.Duration
	var statements, heapQuarter, heapMax, heapEnd uint64
	var rows int64
	for b.Loop() {
		// On a connection of its own, which flushes its statistics as it
		// closes, so that the rows below are the re-checks' alone.
		reset, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := reset.Exec(ctx, `UPDATE connections SET next_check_at = now() - interval '1 second', last_checked_at = NULL`); err != nil {
			b.Fatal(err)
		}
		if err := reset.Close(ctx); err != nil {
			b.Fatal(err)
		}
		rowsBefore := writtenRows(b, url)
		heapMax = 0
		counter.n.Store(0)
		j, err := jobs.New(pool, logger, jobs.Config{RecheckInterval: 24 * time.Hour, RecheckWorkers: 10, Checker: chk}, river.NewWorkers())
		if err != nil {
			b.Fatal(err)
		}
		// Progress comes from River's reports, not from polling the database.
		events, stopEvents := j.Client.Subscribe(river.EventKindJobCompleted)
		start := time.Now()
		if err := j.Start(ctx); err != nil {
			b.Fatal(err)
		}
		for done, quarter := 0, 1; done < benchConnections; {
			e := <-events
			if e.Job.Kind != (jobs.RecheckArgs{}).Kind() {
				continue
			}
			var args jobs.RecheckArgs
			if err := json.Unmarshal(e.Job.EncodedArgs, &args); err != nil {
				b.Fatal(err)
			}
			if done += len(args.ConnectionIDs); done >= quarter*benchConnections/4 && done < benchConnections {
				quarter++
				h := heap()
				if heapQuarter == 0 {
					heapQuarter = h
				}
				heapMax = max(heapMax, h)
			}
		}
		elapsed = time.Since(start)
		stopEvents()
		statements = uint64(counter.n.Load())
		stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if err := j.Stop(stopCtx); err != nil {
			b.Fatal(err)
		}
		cancel()
		heapEnd = heap()
		heapMax = max(heapMax, heapEnd)
		pool.Reset() // the sessions end and flush their statistics
		rows = writtenRows(b, url) - rowsBefore
	}
	pool.Close()
	bare, tests = (bare+bareRate(b, instance))/2, (tests+testRate(b, dyn, cr))/2
	rate := float64(benchConnections) / elapsed.Seconds()
	b.ReportMetric(rate, "rechecks/s")
	b.ReportMetric(tests, "test-loop/s")
	b.ReportMetric(bare, "bare-loop/s")
	b.ReportMetric(rate/tests, "ratio-to-test-loop")
	b.ReportMetric(rate/bare, "ratio-to-bare-loop")
	b.ReportMetric(float64(statements)/benchConnections, "statements/recheck")
	b.ReportMetric(float64(rows)/benchConnections, "rows-written/recheck")
	b.ReportMetric(float64(heapQuarter)/(1<<20), "heap-at-25%-MB")
	b.ReportMetric(float64(heapMax)/(1<<20), "heap-max-MB")
	b.ReportMetric(float64(heapEnd)/(1<<20), "heap-end-MB")
	b.Logf("re-checks: %.0f/s with RECHECK_WORKERS=10 on one replica, %.0f/s a bare loop of 10 goroutines making the same calls: ratio %.2f× (%.2f statements and %.1f rows written per re-check)",
		rate, bare, rate/bare, float64(statements)/benchConnections, float64(rows)/benchConnections)
}

// seed stores benchConnections connections to instance with sealed secrets
// in one COPY.
func seed(b *testing.B, url string, keys *crypto.Keyring, instance string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	rows := make([][]any, benchConnections)
	for i := range rows {
		// One account each: an account has one connection per instance and
		// client id, and all of them use the simulator's.
		id, account := uuid.New(), fmt.Sprintf("acct-%d", i)
		env, err := keys.Seal(ctx, []byte(simulator.ClientSecret), crypto.AssociatedData(account, id.String()))
		if err != nil {
			b.Fatal(err)
		}
		rows[i] = []any{id, account, instance, "public", simulator.ClientID, env.Ciphertext, env.WrappedDEK, env.KEKID, time.Now()}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"connections"},
		[]string{"id", "account", "instance_url", "cloud", "client_id", "secret_ciphertext", "secret_wrapped_dek", "secret_kek_id", "secret_updated_at"},
		pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
}

// bareRate runs benchConnections bare tests in 10 goroutines and returns
// tests per second.
func bareRate(b *testing.B, instance string) float64 {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 10}}
	defer hc.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 10 {
		wg.Go(func() {
			for next.Add(1) <= benchConnections {
				if err := simulator.BareTest(hc, instance); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return benchConnections / time.Since(start).Seconds()
}

// testRate runs benchConnections of dynconn's tests of cr in 10 goroutines,
// recording nothing, and returns tests per second.
func testRate(b *testing.B, dyn *dynamics.Client, cr dynamics.Credentials) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 10 {
		wg.Go(func() {
			for next.Add(1) <= benchConnections {
				if res := dyn.Test(context.Background(), cr); !res.OK {
					b.Errorf("test failed: %+v", res.Error)
					return
				}
			}
		})
	}
	wg.Wait()
	return benchConnections / time.Since(start).Seconds()
}

// writtenRows is the rows inserted, updated and deleted in the database so far.
func writtenRows(b *testing.B, url string) int64 {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// heap is the heap in use after a garbage collection.
func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
