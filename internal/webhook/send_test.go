package webhook_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/goleak"

	"github.com/dynconn/dynconn/internal/outbound"
	"github.com/dynconn/dynconn/internal/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a local endpoint that answers with status and records what it got.
func receiver(t *testing.T, h http.HandlerFunc) (*httptest.Server, func() []received) {
	t.Helper()
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Header.Clone(), b})
		mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func newSender(t *testing.T, opts webhook.Options) *webhook.Sender {
	t.Helper()
	s := webhook.NewSender(opts)
	t.Cleanup(s.CloseIdleConnections)
	return s
}

var msg = webhook.Message{ID: "evt_01960000000070008000000000000001",
	Body: []byte(`{"id":"evt_01960000000070008000000000000001","type":"webhook.ping","timestamp":"2026-01-02T03:04:05Z","data":{"webhook_id":"w"}}`)}

// TestSendDelivers: a 2xx is delivered, with the Standard Webhooks headers
// that the reference verifier accepts and the body byte for byte.
func TestSendDelivers(t *testing.T) {
	sec := webhook.NewSecret()
	srv, got := receiver(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s := newSender(t, webhook.Options{Outbound: outbound.Options{AllowLoopback: true}})
	res := s.Send(context.Background(), srv.URL+"/hook", sec, msg)
	if !res.Delivered() || res.Status != http.StatusNoContent || res.Error != "" {
		t.Fatalf("Send = %+v, want delivered with 204", res)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if string(r.body) != string(msg.Body) {
		t.Errorf("body = %s, want %s", r.body, msg.Body)
	}
	if id := r.header.Get("webhook-id"); id != msg.ID {
		t.Errorf("webhook-id = %q, want %q", id, msg.ID)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	wh, err := standardwebhooks.NewWebhook(sec.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(r.body, r.header); err != nil {
		t.Fatalf("the reference verifier refused the delivery: %v", err)
	}
}

// TestSendFailures: every answer but a 2xx, and no answer, is a failed
// attempt with a short reason that names neither the URL nor the secret.
func TestSendFailures(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  int
		gone    bool
		reason  string
	}{
		{"server error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, 500, false, "HTTP 500"},
		{"gone", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) }, 410, true, "HTTP 410"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://example.com/", http.StatusMovedPermanently)
		}, 301, false, "redirects are not followed"},
		{"hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, 0, false, "no answer within 200ms"},
		{"large error body", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(400); io.WriteString(w, big) }, 400, false, "HTTP 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := receiver(t, tt.handler)
			s := newSender(t, webhook.Options{Outbound: outbound.Options{AllowLoopback: true}, Timeout: 200 * time.Millisecond})
			sec := webhook.NewSecret()
			res := s.Send(context.Background(), srv.URL+"/hook?token=t0ps3cret", sec, msg)
			if res.Delivered() || res.Status != tt.status || res.Gone() != tt.gone || !strings.Contains(res.Error, tt.reason) {
				t.Fatalf("Send = %+v, want status %d, gone %v, reason %q", res, tt.status, tt.gone, tt.reason)
			}
			if strings.Contains(res.Error, "t0ps3cret") || strings.Contains(res.Error, sec.Reveal()) {
				t.Fatalf("reason %q leaks the URL or the secret", res.Error)
			}
			if n := len(got()); n != 1 {
				t.Fatalf("receiver got %d requests, want 1", n)
			}
		})
	}
}

// TestSendRefused: without the loopback switch, a loopback receiver and a
// name resolving to a private address get nothing.
func TestSendRefused(t *testing.T) {
	srv, got := receiver(t, func(w http.ResponseWriter, r *http.Request) {})
	var dialed atomic.Int32
	s := newSender(t, webhook.Options{Outbound: outbound.Options{
		Lookup: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("10.0.0.7")}, nil
		},
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			dialed.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, address)
		},
	}})
	for _, u := range []string{srv.URL, "https://hooks.example.com/x"} {
		res := s.Send(context.Background(), u, webhook.NewSecret(), msg)
		if res.Delivered() || res.Status != 0 || !strings.Contains(res.Error, "destination not allowed") {
			t.Errorf("Send(%s) = %+v, want refused", u, res)
		}
	}
	if n := len(got()) + int(dialed.Load()); n != 0 {
		t.Fatalf("%d requests or dials happened, want 0", n)
	}
}
