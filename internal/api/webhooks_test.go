package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

func withWebhookLoopback(c *envConfig) { c.WebhookAllowLoopback = true }

// TestWebhookValidation: bad input is a 422 naming each field, with a
// message a customer can act on, and stores nothing.
func TestWebhookValidation(t *testing.T) {
	t.Parallel()
	off, on := newEnv(t), newEnv(t, withWebhookLoopback)
	type entry struct{ Field, Code string }
	long := "https://hooks.example.com/" + strings.Repeat("a", 2048)
	tests := []struct {
		name string
		env  *testEnv
		body any
		want []entry
	}{
		{"no url", off, map[string]any{}, []entry{{"url", "required"}}},
		{"empty url", off, map[string]any{"url": " "}, []entry{{"url", "required"}}},
		{"http with the switch off", off, map[string]any{"url": "http://hooks.example.com/x"}, []entry{{"url", "not_https"}}},
		{"http to loopback with the switch off", off, map[string]any{"url": "http://127.0.0.1:9000/x"}, []entry{{"url", "not_public"}}},
		{"http to a public host with the switch on", on, map[string]any{"url": "http://hooks.example.com/x"}, []entry{{"url", "not_https"}}},
		{"private address", on, map[string]any{"url": "https://10.1.2.3/x"}, []entry{{"url", "not_public"}}},
		{"loopback", off, map[string]any{"url": "https://127.0.0.1/x"}, []entry{{"url", "not_public"}}},
		{"loopback v6", off, map[string]any{"url": "https://[::1]/x"}, []entry{{"url", "not_public"}}},
		{"localhost", on, map[string]any{"url": "http://localhost:9000/x"}, []entry{{"url", "not_public"}}},
		{"link-local (metadata)", on, map[string]any{"url": "https://169.254.169.254/latest"}, []entry{{"url", "not_public"}}},
		{"user info", off, map[string]any{"url": "https://user:pw@hooks.example.com/x"}, []entry{{"url", "has_userinfo"}}},
		{"over 2,048 characters", off, map[string]any{"url": long}, []entry{{"url", "too_long"}}},
		{"another port", off, map[string]any{"url": "https://hooks.example.com:8443/x"}, []entry{{"url", "has_port"}}},
		{"not a URL", off, map[string]any{"url": "hooks.example.com"}, []entry{{"url", "invalid_url"}}},
		{"unknown event type", off, map[string]any{"url": "https://hooks.example.com/x", "event_types": []string{"connection.created", "connection.exploded"}},
			[]entry{{"event_types", "unknown_event_type"}}},
		{"empty event types", off, map[string]any{"url": "https://hooks.example.com/x", "event_types": []string{}}, []entry{{"event_types", "required"}}},
		{"event types not a list", off, map[string]any{"url": "https://hooks.example.com/x", "event_types": "connection.created"}, []entry{{"event_types", "invalid_type"}}},
		{"description too long", off, map[string]any{"url": "https://hooks.example.com/x", "description": strings.Repeat("d", 501)}, []entry{{"description", "too_long"}}},
		{"unknown field", off, map[string]any{"url": "https://hooks.example.com/x", "secret": "whsec_mine"}, []entry{{"secret", "unknown_field"}}},
		{"disabled is for updates", off, map[string]any{"url": "https://hooks.example.com/x", "disabled": true}, []entry{{"disabled", "unknown_field"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.env.do("POST", "/webhooks", "acct-a", tt.body)
			if res.status != http.StatusUnprocessableEntity {
				t.Fatalf("status = %d, want 422\n%s", res.status, res.body)
			}
			var got []entry
			for _, fe := range res.json(t)["errors"].([]any) {
				m := fe.(map[string]any)
				got = append(got, entry{m["field"].(string), m["code"].(string)})
				if msg, _ := m["message"].(string); len(msg) < 20 {
					t.Errorf("field %s: message %q does not tell the customer what to do", m["field"], msg)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
	for _, e := range []*testEnv{off, on} {
		if res := e.do("GET", "/webhooks", "acct-a", nil); len(res.json(t)["items"].([]any)) != 0 {
			t.Errorf("invalid creates stored something: %s", res.body)
		}
	}
	// The same rules hold for PATCH.
	created := on.do("POST", "/webhooks", "acct-a", map[string]any{"url": "http://127.0.0.1:9000/hook"})
	if created.status != http.StatusCreated {
		t.Fatalf("create with the switch on: %d %s", created.status, created.body)
	}
	id := created.json(t)["id"].(string)
	res := on.do("PATCH", "/webhooks/"+id, "acct-a", map[string]any{"url": "https://192.168.0.1/x", "event_types": []string{"nope"}, "disabled": "yes"})
	if res.status != http.StatusUnprocessableEntity || len(res.json(t)["errors"].([]any)) != 3 {
		t.Fatalf("PATCH with three bad fields: %d %s", res.status, res.body)
	}
}

func TestWebhookLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.do("POST", "/webhooks", "acct-a", map[string]any{"url": " https://hooks.example.com/dynconn ", "event_types": []string{
		"connection.status_changed", "connection.secret_expiring", "connection.status_changed"}, "description": "alerts"})
	if res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	created := res.json(t)
	id := created["id"].(string)
	sec, _ := created["secret"].(string)
	if !strings.HasPrefix(sec, "whsec_") || res.header.Get("Location") != "/webhooks/"+id {
		t.Fatalf("create: secret %q, Location %q", sec, res.header.Get("Location"))
	}
	if created["url"] != "https://hooks.example.com/dynconn" || created["disabled"] != false || created["disabled_reason"] != nil ||
		!cmp.Equal(created["event_types"], []any{"connection.status_changed", "connection.secret_expiring"}) {
		t.Errorf("created %v", created)
	}
	before := e.responses.String()

	// The secret is stored sealed under the keyring, bound to the webhook.
	hook, err := e.st.Webhook(context.Background(), "acct-a", uuid.MustParse(id))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := e.keys.Open(context.Background(), crypto.Envelope(hook.Secret), crypto.WebhookAssociatedData("acct-a", id))
	if err != nil || string(plain) != sec {
		t.Fatalf("the stored secret opens to %q, %v; want the one shown", plain, err)
	}

	if res := e.do("GET", "/webhooks/"+id, "acct-a", nil); res.status != http.StatusOK || res.json(t)["description"] != "alerts" {
		t.Errorf("get: %d %s", res.status, res.body)
	}
	res = e.do("PATCH", "/webhooks/"+id, "acct-a", map[string]any{"event_types": nil, "disabled": true, "description": "all of it"})
	if got := res.json(t); res.status != http.StatusOK || got["event_types"] != nil || got["disabled"] != true || got["disabled_reason"] != "api" {
		t.Errorf("patch: %d %s", res.status, res.body)
	}
	if res := e.do("POST", "/webhooks/"+id+"/ping", "acct-a", nil); res.status != http.StatusConflict ||
		res.json(t)["type"] != "https://dynconn.dev/problems/webhook-disabled" {
		t.Errorf("ping of a disabled webhook: %d %s", res.status, res.body)
	}
	res = e.do("PATCH", "/webhooks/"+id, "acct-a", map[string]any{"disabled": false})
	if got := res.json(t); res.status != http.StatusOK || got["disabled"] != false || got["disabled_reason"] != nil {
		t.Errorf("re-enable: %d %s", res.status, res.body)
	}
	list := e.do("GET", "/webhooks", "acct-a", nil)
	if items := list.json(t)["items"].([]any); list.status != http.StatusOK || len(items) != 1 {
		t.Errorf("list: %d %s", list.status, list.body)
	}
	if strings.Contains(strings.TrimPrefix(e.responses.String(), before), sec) {
		t.Error("a response after the create shows the secret")
	}
	if strings.Contains(e.logs.String(), sec) {
		t.Error("the logs show the secret")
	}

	var actions []string
	rows, _ := e.pool.Query(context.Background(), `SELECT action FROM audit_events WHERE webhook_id = $1 ORDER BY id`, id)
	actions, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if res := e.do("DELETE", "/webhooks/"+id, "acct-a", nil); res.status != http.StatusNoContent {
		t.Errorf("delete: %d %s", res.status, res.body)
	}
	if res := e.do("GET", "/webhooks/"+id, "acct-a", nil); res.status != http.StatusNotFound {
		t.Errorf("get after delete: %d", res.status)
	}
	if diff := cmp.Diff([]string{"webhook.created", "webhook.updated", "webhook.updated"}, actions); diff != "" {
		t.Errorf("audit trail (-want +got):\n%s", diff)
	}
	var deleted int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE webhook_id = $1 AND action = 'webhook.deleted'`, id).Scan(&deleted); err != nil || deleted != 1 {
		t.Errorf("webhook.deleted audit events: %d, %v", deleted, err)
	}
}

// TestOtherAccountsWebhookIsNotFound: every webhook endpoint answers 404
// for another account's id, and for ids that are not ids.
func TestOtherAccountsWebhookIsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/webhooks", "acct-a", map[string]any{"url": "https://hooks.example.com/x"}).json(t)["id"].(string)
	for _, path := range []string{"/webhooks/" + id, "/webhooks/" + uuid.NewString(), "/webhooks/not-an-id"} {
		for _, req := range []struct {
			method, suffix string
			body           any
		}{{"GET", "", nil}, {"PATCH", "", map[string]any{"description": "x"}}, {"DELETE", "", nil}, {"POST", "/ping", nil}, {"GET", "/deliveries", nil}} {
			res := e.do(req.method, path+req.suffix, "acct-b", req.body)
			if res.status != http.StatusNotFound || res.json(t)["title"] != "Webhook not found." {
				t.Errorf("%s %s%s as another account: %d %s", req.method, path, req.suffix, res.status, res.body)
			}
		}
	}
	if res := e.do("GET", "/webhooks/"+id, "acct-a", nil); res.status != http.StatusOK {
		t.Fatalf("the owner lost it: %d", res.status)
	}
}

// TestWebhookLimitPerAccount: the eleventh endpoint is a 409 of its own type.
func TestWebhookLimitPerAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range model.MaxWebhooksPerAccount {
		if res := e.do("POST", "/webhooks", "acct-a", map[string]any{"url": fmt.Sprintf("https://hooks.example.com/%d", i)}); res.status != http.StatusCreated {
			t.Fatalf("create %d: %d %s", i+1, res.status, res.body)
		}
	}
	res := e.do("POST", "/webhooks", "acct-a", map[string]any{"url": "https://hooks.example.com/11"})
	if res.status != http.StatusConflict || res.json(t)["type"] != "https://dynconn.dev/problems/webhook-limit" {
		t.Fatalf("eleventh: %d %s", res.status, res.body)
	}
	if res := e.do("POST", "/webhooks", "acct-b", map[string]any{"url": "https://hooks.example.com/b"}); res.status != http.StatusCreated {
		t.Fatalf("another account: %d", res.status)
	}
}

// TestWebhookPingAndDeliveries: a ping writes a webhook.ping event, and the
// deliveries list shows each delivery's attempts, newest first, in pages.
func TestWebhookPingAndDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.do("POST", "/webhooks", "acct-a", map[string]any{"url": "https://hooks.example.com/x"}).json(t)["id"].(string)
	var pings []string
	for range 3 {
		res := e.do("POST", "/webhooks/"+id+"/ping", "acct-a", nil)
		if res.status != http.StatusAccepted {
			t.Fatalf("ping: %d %s", res.status, res.body)
		}
		pings = append(pings, res.json(t)["event_id"].(string))
	}
	var typ, data string
	if err := e.pool.QueryRow(context.Background(), `SELECT type, data::text FROM events WHERE public_id = $1`, pings[0]).Scan(&typ, &data); err != nil {
		t.Fatal(err)
	}
	if typ != "webhook.ping" || data != `{"webhook_id": "`+id+`"}` {
		t.Errorf("ping event: %s %s", typ, data)
	}
	if res := e.do("GET", "/webhooks/"+id+"/deliveries", "acct-a", nil); len(res.json(t)["items"].([]any)) != 0 {
		t.Fatalf("deliveries before dispatch: %s", res.body)
	}

	// Stand in for the dispatcher and the worker: three attempts on the
	// first ping (two failures, then success), one failure on the others.
	var ds []store.NewDelivery
	if _, err := e.st.DispatchEvents(context.Background(), 10, func(_ context.Context, _ pgx.Tx, got []store.NewDelivery) error {
		ds = got
		return nil
	}); err != nil || len(ds) != 3 {
		t.Fatalf("dispatch: %d deliveries, %v", len(ds), err)
	}
	next := time.Now().Add(time.Minute)
	record := func(d store.NewDelivery, a store.Attempt) {
		t.Helper()
		if err := e.st.RecordAttempt(context.Background(), d.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	record(ds[0], store.Attempt{Status: store.DeliveryPending, HTTPStatus: 503, Error: "HTTP 503", Duration: 12 * time.Millisecond, NextAttemptAt: &next})
	record(ds[0], store.Attempt{Status: store.DeliveryPending, Error: "no answer within 10s", Duration: 10 * time.Second, NextAttemptAt: &next})
	record(ds[0], store.Attempt{Status: store.DeliveryDelivered, HTTPStatus: 200, Duration: 8 * time.Millisecond})
	record(ds[1], store.Attempt{Status: store.DeliveryPending, HTTPStatus: 500, Error: "HTTP 500", NextAttemptAt: &next})

	res := e.do("GET", "/webhooks/"+id+"/deliveries?limit=2", "acct-a", nil)
	page := res.json(t)
	items := page["items"].([]any)
	if res.status != http.StatusOK || len(items) != 2 || page["next_cursor"] == nil {
		t.Fatalf("first page: %d %s", res.status, res.body)
	}
	newest, second := items[0].(map[string]any), items[1].(map[string]any)
	if newest["event_id"] != pings[2] || newest["attempts"] != float64(0) || newest["status"] != "pending" || newest["http_status"] != nil {
		t.Errorf("newest delivery: %v", newest)
	}
	if second["event_id"] != pings[1] || second["attempts"] != float64(1) || second["http_status"] != float64(500) || second["next_attempt_at"] == nil {
		t.Errorf("second delivery: %v", second)
	}
	res = e.do("GET", "/webhooks/"+id+"/deliveries?limit=2&cursor="+page["next_cursor"].(string), "acct-a", nil)
	page = res.json(t)
	items = page["items"].([]any)
	if len(items) != 1 || page["next_cursor"] != nil {
		t.Fatalf("last page: %s", res.body)
	}
	want := map[string]any{"event_id": pings[0], "type": "webhook.ping", "attempts": float64(3), "status": "delivered",
		"http_status": float64(200), "error": nil, "duration_ms": float64(8), "next_attempt_at": nil}
	got := items[0].(map[string]any)
	delete(got, "updated_at")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the first ping's delivery (-want +got):\n%s", diff)
	}
	if res := e.do("GET", "/webhooks/"+id+"/deliveries?cursor=nope", "acct-a", nil); res.status != http.StatusBadRequest {
		t.Errorf("bad cursor: %d", res.status)
	}
}
