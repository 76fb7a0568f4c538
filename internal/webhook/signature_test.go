package webhook_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/webhook"
)

func TestNewSecret(t *testing.T) {
	a, b := webhook.NewSecret(), webhook.NewSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	encoded, ok := strings.CutPrefix(a.Reveal(), "whsec_")
	if !ok {
		t.Fatalf("secret does not start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(key) != 32 {
		t.Fatalf("secret's key: %d bytes, %v; want 32 bytes of base64", len(key), err)
	}
}

// TestSignVerifiesWithTheReferenceLibrary: a receiver that uses the Standard
// Webhooks reference verifier accepts our signatures, and rejects them when
// the body, id, timestamp or secret differ.
func TestSignVerifiesWithTheReferenceLibrary(t *testing.T) {
	s := webhook.NewSecret()
	body := []byte(`{"id":"evt_0196","type":"webhook.ping","timestamp":"2026-01-02T03:04:05Z","data":{"webhook_id":"x"}}`)
	now := time.Now()
	sig, err := webhook.Sign(s, "evt_0196", now, body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sig, "v1,") {
		t.Fatalf("signature %q does not start with v1,", sig)
	}
	headers := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(standardwebhooks.HeaderWebhookID, id)
		h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(standardwebhooks.HeaderWebhookSignature, sig)
		return h
	}
	wh, err := standardwebhooks.NewWebhook(s.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, headers("evt_0196", now, sig)); err != nil {
		t.Fatalf("the reference verifier refused our signature: %v", err)
	}
	other, _ := standardwebhooks.NewWebhook(webhook.NewSecret().Reveal())
	bad := map[string]error{
		"another body":      wh.Verify(append(body[:len(body)-1:len(body)-1], ' ', '}'), headers("evt_0196", now, sig)),
		"another id":        wh.Verify(body, headers("evt_0197", now, sig)),
		"another timestamp": wh.Verify(body, headers("evt_0196", now.Add(-time.Second), sig)),
		"another secret":    other.Verify(body, headers("evt_0196", now, sig)),
	}
	for name, err := range bad {
		if err == nil {
			t.Errorf("%s: the verifier accepted the signature", name)
		}
	}
}

func TestSignRefusesMalformedSecrets(t *testing.T) {
	for _, s := range []secret.String{"", "whsec_", "abc", "whsec_not base64!", "WHSEC_" + webhook.NewSecret()[6:]} {
		if _, err := webhook.Sign(s, "evt_1", time.Now(), nil); err == nil {
			t.Errorf("Sign with secret %q succeeded", s.Reveal())
		} else if len(s) > 8 && strings.Contains(err.Error(), s.Reveal()[6:]) {
			t.Errorf("error %q quotes the secret", err)
		}
	}
}
