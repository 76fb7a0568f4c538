package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

func TestWebhookConfig(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://localhost/dynconn", "AUTH_HS256_SECRET": strings.Repeat("s", 32)}
	for _, tt := range []struct {
		retry, loopback string
		want            time.Duration
		err             string
	}{
		{"", "", 30 * time.Second, ""},
		{"1s", "true", time.Second, ""},
		{"0", "", 0, "WEBHOOK_RETRY_BASE"},
		{"-5s", "", 0, "WEBHOOK_RETRY_BASE"},
		{"soon", "", 0, "WEBHOOK_RETRY_BASE"},
		{"", "perhaps", 0, "WEBHOOK_ALLOW_LOOPBACK"},
	} {
		env := map[string]string{"WEBHOOK_RETRY_BASE": tt.retry, "WEBHOOK_ALLOW_LOOPBACK": tt.loopback}
		for k, v := range base {
			env[k] = v
		}
		cfg, err := loadConfig(func(k string) string { return env[k] })
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q/%q: error %v, want one naming %s", tt.retry, tt.loopback, err, tt.err)
		case tt.err == "" && (err != nil || cfg.WebhookRetryBase != tt.want || cfg.WebhookAllowLoopback != (tt.loopback == "true")):
			t.Errorf("%q/%q: %v, %+v", tt.retry, tt.loopback, err, cfg)
		}
	}
}

// TestWebhookEndToEnd runs the real server: an endpoint subscribed through
// the API, pinged, fails its first two attempts and gets the event on the
// third, each time with the same webhook-id and a signature the Standard
// Webhooks reference verifier accepts; the deliveries list and the metrics
// show the three attempts.
func TestWebhookEndToEnd(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	const hs = "e2e-signing-secret-0123456789-0123456789"
	env := map[string]string{
		"DATABASE_URL": storetest.URL(t), "LISTEN_ADDR": freeAddr(t), "METRICS_ADDR": freeAddr(t), "ENCRYPTION_KEYS": key,
		"AUTH_HS256_SECRET": hs, "WEBHOOK_ALLOW_LOOPBACK": "true", "WEBHOOK_RETRY_BASE": "50ms",
	}
	var (
		mu   sync.Mutex
		hits []*http.Request
		body [][]byte
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits, body = append(hits, r), append(body, b)
		n := len(hits)
		mu.Unlock()
		if n <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()
	logs := &logtest.Buffer{}
	base, stop := startServer(t, env, logs)
	tok, err := auth.NewToken([]byte(hs), "acct-hooks", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, reqBody string, want int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(reqBody))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	created := call("POST", "/webhooks", `{"url":"`+receiver.URL+`/dynconn","description":"demo"}`, http.StatusCreated)
	id, sec := created["id"].(string), created["secret"].(string)
	eventID := call("POST", "/webhooks/"+id+"/ping", "", http.StatusAccepted)["event_id"].(string)

	var delivery map[string]any
	deadline := time.Now().Add(60 * time.Second)
	for {
		items := call("GET", "/webhooks/"+id+"/deliveries", "", http.StatusOK)["items"].([]any)
		if len(items) == 1 {
			delivery = items[0].(map[string]any)
			if delivery["status"] != "pending" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished delivery after 60s: %v", delivery)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if delivery["status"] != "delivered" || delivery["attempts"] != float64(3) || delivery["event_id"] != eventID ||
		delivery["http_status"] != float64(200) || delivery["type"] != "webhook.ping" {
		t.Fatalf("delivery %v: want delivered on the third attempt", delivery)
	}
	verifier, err := standardwebhooks.NewWebhook(sec)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got, gotBody := hits, body
	mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("the receiver got %d requests, want 3", len(got))
	}
	for i, r := range got {
		if id := r.Header.Get("webhook-id"); id != eventID {
			t.Errorf("attempt %d: webhook-id %q, want %q", i+1, id, eventID)
		}
		if err := verifier.Verify(gotBody[i], r.Header); err != nil {
			t.Errorf("attempt %d: the reference verifier refused it: %v", i+1, err)
		}
	}
	if want := fmt.Sprintf(`"id":%q,"type":"webhook.ping"`, eventID); !strings.Contains(string(gotBody[2]), want) {
		t.Errorf("body %s lacks %s", gotBody[2], want)
	}
	res, err := http.Get("http://" + env["METRICS_ADDR"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, line := range []string{`dynconn_webhook_delivery_attempts_total{outcome="failed"} 2`, `dynconn_webhook_delivery_attempts_total{outcome="delivered"} 1`} {
		if !strings.Contains(string(metrics), line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if strings.Contains(logs.String(), sec) {
		t.Error("the logs show the webhook secret")
	}
	if !strings.Contains(logs.String(), "WEBHOOK_ALLOW_LOOPBACK is on") {
		t.Error("no warning about WEBHOOK_ALLOW_LOOPBACK")
	}
}
