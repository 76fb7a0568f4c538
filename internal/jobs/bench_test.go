package jobs_test

import (
	"context"
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
// re-checks them with RECHECK_WORKERS=10 against the in-process simulator,
// beside a bare loop that runs the same four calls per test with plain
// net/http in 10 goroutines (before and after; the mean of both). It reports both rates and their ratio, the
// statements (from this process, River's included) and rows written per
// re-check, and the heap after GC at the start, the largest while running,
// and the end. Run it with -benchtime=1x.
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

	// The bare loop, the floor, runs before and after the re-checks: the
	// machine is shared, and the mean of the two sees the same weather.
	bare := bareRate(b, instance)

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
	logger := slog.New(slog.NewTextHandler(&logtest.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Discovery is not cached, so that dynconn makes the bare loop's four calls.
	dyn := dynamics.NewClient(dynamics.Options{AllowLoopback: true, Logger: logger, DiscoveryTTL: -1})
	defer dyn.CloseIdleConnections()
	chk := checker.New(st, keys, dyn, checker.Options{RecheckInterval: 24 * time.Hour})

	var elapsed time.Duration
	var statements, heapStart, heapMax, heapEnd uint64
	var rows int64
	for b.Loop() {
		if _, err := pool.Exec(ctx, `UPDATE connections SET next_check_at = now() - interval '1 second', last_checked_at = NULL`); err != nil {
			b.Fatal(err)
		}
		rowsBefore := writtenRows(b, url)
		heapStart = heap()
		heapMax = heapStart
		counter.n.Store(0)
		j, err := jobs.New(pool, logger, jobs.Config{RecheckInterval: 24 * time.Hour, RecheckWorkers: 10, Checker: chk}, river.NewWorkers())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := j.Start(ctx); err != nil {
			b.Fatal(err)
		}
		next := benchConnections / 4
		for {
			var done int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM connections WHERE last_checked_at IS NOT NULL`).Scan(&done); err != nil {
				b.Fatal(err)
			}
			if done >= next && done < benchConnections {
				heapMax = max(heapMax, heap())
				next += benchConnections / 4
			}
			if done == benchConnections {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		elapsed = time.Since(start)
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
	bare = (bare + bareRate(b, instance)) / 2
	rate := float64(benchConnections) / elapsed.Seconds()
	b.ReportMetric(rate, "rechecks/s")
	b.ReportMetric(bare, "bare-tests/s")
	b.ReportMetric(rate/bare, "ratio")
	b.ReportMetric(float64(statements)/benchConnections, "statements/recheck")
	b.ReportMetric(float64(rows)/benchConnections, "rows-written/recheck")
	b.ReportMetric(float64(heapStart)/(1<<20), "heap-start-MB")
	b.ReportMetric(float64(heapMax)/(1<<20), "heap-max-MB")
	b.ReportMetric(float64(heapEnd)/(1<<20), "heap-end-MB")
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
