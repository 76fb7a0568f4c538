package rotation_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/rotation"
	"github.com/dynconn/dynconn/internal/rotation/rotationtest"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// benchRows is the table size of BenchmarkRotate.
const benchRows = 100_000

// baselineBatch is the baseline of BenchmarkRotate: one plain UPDATE of the
// wrapped DEK column (the bytea column rotation writes) of the next batch of
// rows in id order, in one statement and one round trip, with no data sent
// either way. It keeps the values, so the secrets still open. %s is more of
// the SET list.
const baselineBatch = `
WITH batch AS (SELECT id FROM connections WHERE id > $1 ORDER BY id LIMIT $2),
updated AS (
	UPDATE connections AS c SET secret_wrapped_dek = c.secret_wrapped_dek%s
	FROM batch WHERE c.id = batch.id
	RETURNING c.id
)
SELECT count(*), coalesce(max(id::text), '') FROM updated`

// The two baselines. sameColumns also changes the KEK id, as rotation must
// (to the id with "~" appended; undoKEKIDs takes it off again).
var (
	bytesOnly   = fmt.Sprintf(baselineBatch, "")
	sameColumns = fmt.Sprintf(baselineBatch, ", secret_kek_id = c.secret_kek_id || '~'")
	undoKEKIDs  = `UPDATE connections SET secret_kek_id = rtrim(secret_kek_id, '~')`
)

// resetTable puts the table back into the same physical state before each
// timed run: rows in an order unrelated to their ids, as rows inserted over
// time are (ids are random), packed into full pages with no dead rows, and
// fresh statistics. The order matters: an UPDATE pass in id order leaves
// the rows in id order, and then updates find pages differently full.
var resetTable = []string{
	`CREATE UNLOGGED TABLE IF NOT EXISTS bench_rows (LIKE connections)`,
	`TRUNCATE bench_rows`,
	`INSERT INTO bench_rows SELECT * FROM connections`,
	`TRUNCATE connections CASCADE`,
	`INSERT INTO connections SELECT * FROM bench_rows ORDER BY client_id`,
	`VACUUM (FULL, ANALYZE) connections`,
}

// BenchmarkRotate measures rotation throughput on 100,000 rows beside the
// baseline of a plain SQL UPDATE of the same rows' bytea column in batches of
// the same size (DefaultBatchSize), one batch after another, and reports the
// rates and their ratio, for 1 and 2 (the default) workers. A second
// baseline also changes the indexed KEK id column, as rotation must.
//
// Each iteration runs both baselines over every row, then rotates every row
// (to the other of two keys, alternately). Before each timed part the table
// is reset (resetTable) and a checkpoint is taken, so all start from the
// same physical state.
func BenchmarkRotate(b *testing.B) {
	pool := storetest.NewPool(b)
	st := store.New(pool)
	ctx := context.Background()
	k := newKeys()
	rotationtest.Seed(b, pool, k.oldOnly(b), benchRows)
	rings := []*crypto.Keyring{k.both(b), rotationtest.Keyring(b, k.old+","+k.new, "old")}
	turn := 0 // the index of the next ring to rotate to

	// CHECKPOINT is cluster-wide and needs more privileges than the test
	// database's owner has: take it as DATABASE_URL's user, if allowed.
	admin, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	checkpoint := true
	reset := func(b *testing.B) {
		b.Helper()
		for _, q := range resetTable {
			if _, err := pool.Exec(ctx, q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
		if _, err := admin.Exec(ctx, `CHECKPOINT`); err != nil && checkpoint {
			b.Logf("no checkpoints between the runs, so timings are noisier: %v", err)
			checkpoint = false
		}
	}
	// timed resets the table, then runs and times f.
	timed := func(b *testing.B, f func()) time.Duration {
		b.Helper()
		b.StopTimer()
		reset(b)
		b.StartTimer()
		start := time.Now()
		f()
		return time.Since(start)
	}

	for _, workers := range []int{1, rotation.DefaultWorkers} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var bytes, same, rotate time.Duration
			n := 0
			for b.Loop() {
				bytes += timed(b, func() { updateAll(ctx, b, pool, bytesOnly) })
				same += timed(b, func() { updateAll(ctx, b, pool, sameColumns) })
				b.StopTimer()
				if _, err := pool.Exec(ctx, undoKEKIDs); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				rotate += timed(b, func() {
					res, err := rotation.Rotate(ctx, st, rings[turn], rotation.Options{Workers: workers})
					if err != nil || res.Rewrapped != benchRows {
						b.Fatalf("Rotate: %v, rewrapped %d", err, res.Rewrapped)
					}
				})
				turn = 1 - turn
				n++
			}
			rate := func(d time.Duration) float64 { return float64(n*benchRows) / d.Seconds() }
			b.ReportMetric(rate(bytes), "baseline-rows/s")
			b.ReportMetric(rate(same), "same-columns-rows/s")
			b.ReportMetric(rate(rotate), "rotate-rows/s")
			b.ReportMetric(rate(rotate)/rate(bytes), "ratio")
			b.ReportMetric(rate(rotate)/rate(same), "ratio-same-columns")
			b.ReportMetric(0, "ns/op") // an op is all three runs and the resets: its time says nothing
		})
	}
}

// updateAll runs a baseline query over every row, batch after batch.
func updateAll(ctx context.Context, b *testing.B, pool *pgxpool.Pool, query string) {
	b.Helper()
	after, done := "00000000-0000-0000-0000-000000000000", 0
	for {
		var count int
		var last string
		if err := pool.QueryRow(ctx, query, after, rotation.DefaultBatchSize).Scan(&count, &last); err != nil {
			b.Fatal(err)
		}
		if count == 0 {
			break
		}
		done += count
		after = last
	}
	if done != benchRows {
		b.Fatalf("baseline updated %d rows, want %d", done, benchRows)
	}
}
