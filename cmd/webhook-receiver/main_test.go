package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/outbound"
	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/webhook"
)

// start runs the receiver with args and env until the test ends, and
// returns the URL it receives on and its output.
func start(t *testing.T, env map[string]string, args ...string) (string, *logtest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &logtest.Buffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, append([]string{"webhook-receiver", "-addr", "127.0.0.1:0"}, args...), func(k string) string { return env[k] }, out, out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	re := regexp.MustCompile(`receiving on (\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1], out
		}
		select {
		case err := <-errc:
			t.Fatalf("run ended: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver did not start:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func send(t *testing.T, url string, sec secret.String, msg webhook.Message) webhook.Result {
	t.Helper()
	s := webhook.NewSender(webhook.Options{Outbound: outbound.Options{AllowLoopback: true}})
	defer s.CloseIdleConnections()
	return s.Send(context.Background(), url, sec, msg)
}

var ping = webhook.Message{ID: "evt_0196b7a0c0de7000800000000000abcd",
	Body: []byte(`{"id":"evt_0196b7a0c0de7000800000000000abcd","type":"webhook.ping","timestamp":"2026-05-01T12:00:00Z","data":{"webhook_id":"w1"}}`)}

// TestReceiverVerifiesWhatDynconnSends: a delivery made by dynconn's sender
// verifies and is printed; a wrong secret is refused; -fail-first answers
// 503 first.
func TestReceiverVerifiesWhatDynconnSends(t *testing.T) {
	sec := webhook.NewSecret()
	url, out := start(t, map[string]string{"WEBHOOK_SECRET": sec.Reveal()}, "-fail-first", "1")
	if res := send(t, url, sec, ping); res.Status != http.StatusServiceUnavailable {
		t.Fatalf("first attempt: %+v, want 503", res)
	}
	if res := send(t, url, sec, ping); !res.Delivered() || res.Status != http.StatusNoContent {
		t.Fatalf("second attempt: %+v, want 204", res)
	}
	if res := send(t, url, webhook.NewSecret(), ping); res.Status != http.StatusBadRequest {
		t.Fatalf("another secret: %+v, want 400", res)
	}
	for _, want := range []string{
		ping.ID + " attempt 1: answering 503",
		"2026-05-01T12:00:00Z webhook.ping " + ping.ID + " verified, attempt 2",
		`{"webhook_id":"w1"}`,
		"REJECTED " + ping.ID,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestReceiverSubscribes: with -subscribe it creates its endpoint through
// the API with the token, uses the secret of the answer, and deletes the
// endpoint when it stops.
func TestReceiverSubscribes(t *testing.T) {
	sec := webhook.NewSecret()
	var (
		mu      sync.Mutex
		created map[string]any
		deleted bool
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/webhooks":
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &created)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "w1", "secret": sec.Reveal()})
		case r.Method == http.MethodDelete && r.URL.Path == "/webhooks/w1":
			deleted = true
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer api.Close()

	ctx, cancel := context.WithCancel(context.Background())
	out := &logtest.Buffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"webhook-receiver", "-addr", "127.0.0.1:0", "-subscribe", api.URL, "-events", "connection.status_changed,webhook.ping"},
			func(k string) string { return map[string]string{"TOKEN": "tok"}[k] }, out, out)
	}()
	re := regexp.MustCompile(`receiving on (\S+)`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("the receiver did not start:\n%s", out.String())
		}
	}
	mu.Lock()
	if created["url"] != url || !strings.Contains(out.String(), "subscribed "+url+" as webhook w1") {
		t.Errorf("create body %v, output:\n%s", created, out.String())
	}
	if types, _ := created["event_types"].([]any); len(types) != 2 {
		t.Errorf("event types %v", created["event_types"])
	}
	mu.Unlock()
	if res := send(t, url, sec, ping); !res.Delivered() {
		t.Fatalf("a delivery signed with the subscribed secret: %+v", res)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !deleted {
		t.Error("the endpoint was not deleted on exit")
	}
}

func TestReceiverNeedsASecret(t *testing.T) {
	err := run(context.Background(), []string{"webhook-receiver", "-addr", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRET") {
		t.Fatalf("run without a secret: %v", err)
	}
}
