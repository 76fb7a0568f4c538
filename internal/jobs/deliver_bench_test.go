package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/dynconn/dynconn/internal/jobs"
	"github.com/dynconn/dynconn/internal/store"
)

// BenchmarkWebhookDelivery measures events delivered per second, from the
// outbox to a local receiver, by one replica with its default delivery
// concurrency (the test's: 10 workers): dispatch, River, signing, the HTTP
// round trip and the recorded attempt. Each op is one event to one endpoint.
func BenchmarkWebhookDelivery(b *testing.B) {
	e := newHookEnv(b)
	rc := newReceiver(b, ok)
	e.createWebhook("acct", rc.srv.URL+"/hook", nil)
	for range b.N {
		e.appendEvent("acct", store.EventConnectionUpdated)
	}
	b.ResetTimer()
	start := time.Now()
	e.startReplica(jobs.WebhookConfig{})
	eventually(b, "every delivery", func() bool {
		var n int
		_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'`).Scan(&n)
		return n == b.N
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}
