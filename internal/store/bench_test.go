package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// The benchmarks measure a round trip to the local server, so they report
// the client's allocations and the latency of one query, not throughput.

func BenchmarkCreateConnection(b *testing.B) {
	s := storetest.New(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		c := newConnection(account)
		b.StartTimer()
		if _, err := s.CreateConnection(ctx, c, testAudit); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConnection(b *testing.B) {
	s := storetest.New(b)
	ctx := context.Background()
	c := create(b, s, newConnection(account))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Connection(ctx, account, uuid.MustParse(c.ID)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateConnection(b *testing.B) {
	s := storetest.New(b)
	ctx := context.Background()
	c := create(b, s, newConnection(account))
	rename := func(c *model.Connection) error { c.Name = "renamed"; return nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.UpdateConnection(ctx, account, uuid.MustParse(c.ID), testAudit, rename); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnections lists the second page of 50 among 1,000 rows, with a
// cursor, as a client paging through would.
func BenchmarkConnections(b *testing.B) {
	s := storetest.New(b)
	ctx := context.Background()
	for range 1000 {
		create(b, s, newConnection(account))
	}
	_, cursor, err := s.Connections(ctx, account, store.Page{Limit: 50}, store.Filter{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Connections(ctx, account, store.Page{Limit: 50, Cursor: cursor}, store.Filter{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadiness runs the two queries /readyz makes every second, over
// 1,000 rows with three KEKs.
func BenchmarkReadiness(b *testing.B) {
	s := storetest.New(b)
	ctx := context.Background()
	for i := range 1000 {
		c := newConnection(account)
		c.Secret.KEKID = []string{"k1", "k2", "k3"}[i%3]
		create(b, s, c)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.DatabaseSchemaVersion(ctx); err != nil {
			b.Fatal(err)
		}
		if ids, err := s.KEKIDsInUse(ctx); err != nil || len(ids) != 3 {
			b.Fatal(ids, err)
		}
	}
}

// BenchmarkTestRoundTrips is a manual test's two statements: the claim
// (reading the connection and taking a rate token) and the record.
func BenchmarkTestRoundTrips(b *testing.B) {
	s := storetest.New(b)
	ctx := context.Background()
	c := create(b, s, newConnection(account))
	id := uuid.MustParse(c.ID)
	limit := &store.RateLimit{Every: time.Millisecond, Burst: 1 << 20}
	result := []byte(`{"ok":true,"checks":[]}`)
	b.ReportAllocs()
	for b.Loop() {
		claim, err := s.ClaimTest(ctx, account, id, limit, time.Minute)
		if err != nil || !claim.Claimed {
			b.Fatal(claim, err)
		}
		if _, err := s.RecordTestResult(ctx, account, id, testAudit, store.TestRecord{Status: model.StatusConnected,
			Result: result, Trigger: model.TriggerManual, TestedVersion: claim.Connection.Version, RecheckInterval: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
}
