package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

func newWebhook(account string) model.Webhook {
	id := uuid.NewString()
	return model.Webhook{
		ID: id, Account: account, URL: "https://hooks.example.com/" + id[:8],
		Description: "orders",
		Secret:      model.SealedSecret{Ciphertext: []byte("ct-" + id), WrappedDEK: []byte("dek-" + id), KEKID: "k1"},
	}
}

func createWebhook(t testing.TB, s *store.Store, w model.Webhook) model.Webhook {
	t.Helper()
	got, err := s.CreateWebhook(context.Background(), w, testAudit)
	if err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	return got
}

// webhookAudit returns the audit actions and details recorded for a webhook, oldest first.
func webhookAudit(t testing.TB, s *store.Store, id string) ([]string, []map[string]any) {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(),
		`SELECT action, details FROM audit_events WHERE webhook_id = $1 ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var actions []string
	var details []map[string]any
	for rows.Next() {
		var a string
		var d []byte
		if err := rows.Scan(&a, &d); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(d, &m); err != nil {
			t.Fatal(err)
		}
		actions, details = append(actions, a), append(details, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return actions, details
}

func TestWebhookLifecycle(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	w := newWebhook(account)
	w.EventTypes = []string{"connection.status_changed"}
	created := createWebhook(t, s, w)
	if created.CreatedAt.IsZero() || created.Disabled() {
		t.Fatalf("created %+v", created)
	}
	w.CreatedAt, w.UpdatedAt = created.CreatedAt, created.UpdatedAt
	if diff := cmp.Diff(w, created); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	got, err := s.Webhook(ctx, account, uuid.MustParse(w.ID))
	if err != nil || !cmp.Equal(created, got) {
		t.Fatalf("Webhook = %+v, %v", got, err)
	}
	if _, err := s.Webhook(ctx, other, uuid.MustParse(w.ID)); !errors.Is(err, store.ErrWebhookNotFound) {
		t.Errorf("another account's webhook: %v, want ErrWebhookNotFound", err)
	}

	updated, err := s.UpdateWebhook(ctx, account, uuid.MustParse(w.ID), testAudit, func(w *model.Webhook) error {
		w.EventTypes = nil
		w.DisabledReason = model.DisabledByAPI
		w.Secret = model.SealedSecret{} // ignored: the secret never changes
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.EventTypes != nil || updated.DisabledReason != model.DisabledByAPI || !cmp.Equal(updated.Secret, w.Secret) {
		t.Errorf("updated %+v", updated)
	}
	refused := errors.New("refused")
	if _, err := s.UpdateWebhook(ctx, account, uuid.MustParse(w.ID), testAudit, func(*model.Webhook) error { return refused }); err != refused {
		t.Errorf("update refused by its function: %v", err)
	}
	if _, err := s.UpdateWebhook(ctx, other, uuid.MustParse(w.ID), testAudit, func(*model.Webhook) error { return nil }); !errors.Is(err, store.ErrWebhookNotFound) {
		t.Errorf("update of another account's webhook: %v", err)
	}
	if err := s.DeleteWebhook(ctx, other, uuid.MustParse(w.ID), testAudit); !errors.Is(err, store.ErrWebhookNotFound) {
		t.Errorf("delete of another account's webhook: %v", err)
	}
	if err := s.DeleteWebhook(ctx, account, uuid.MustParse(w.ID), testAudit); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, account, uuid.MustParse(w.ID), testAudit); !errors.Is(err, store.ErrWebhookNotFound) {
		t.Errorf("second delete: %v", err)
	}
	actions, details := webhookAudit(t, s, w.ID)
	if diff := cmp.Diff([]string{"webhook.created", "webhook.updated", "webhook.deleted"}, actions); diff != "" {
		t.Errorf("audit actions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"event_types", "disabled"}, details[1]["changed"]); diff != "" {
		t.Errorf("changed fields (-want +got):\n%s", diff)
	}
}

// TestWebhookLimit: an account gets at most MaxWebhooksPerAccount
// endpoints, even when creates race; other accounts are not affected.
func TestWebhookLimit(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 2*model.MaxWebhooksPerAccount)
	for range 2 * model.MaxWebhooksPerAccount {
		wg.Go(func() {
			_, err := s.CreateWebhook(ctx, newWebhook(account), testAudit)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	var ok, limited int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrWebhookLimit):
			limited++
		default:
			t.Errorf("CreateWebhook: %v", err)
		}
	}
	if ok != model.MaxWebhooksPerAccount || limited != model.MaxWebhooksPerAccount {
		t.Fatalf("%d created and %d refused, want %d each", ok, limited, model.MaxWebhooksPerAccount)
	}
	createWebhook(t, s, newWebhook(other))
}

func TestWebhooksPaging(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	var want []string
	for range 5 {
		want = append(want, createWebhook(t, s, newWebhook(account)).ID)
	}
	createWebhook(t, s, newWebhook(other))
	var got []string
	p := store.Page{Limit: 2}
	for {
		items, next, err := s.Webhooks(ctx, account, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range items {
			got = append(got, w.ID)
		}
		if next == "" {
			break
		}
		p.Cursor = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged ids (-want +got):\n%s", diff)
	}
	if _, _, err := s.Webhooks(ctx, account, store.Page{Cursor: "nope"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestDisableWebhook(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	w := createWebhook(t, s, newWebhook(account))
	system := store.Audit{Actor: "dynconn"}
	for i, want := range []bool{true, false} {
		done, err := s.DisableWebhook(ctx, account, w.ID, model.DisabledGone, system, map[string]any{"http_status": 410})
		if err != nil || done != want {
			t.Fatalf("DisableWebhook #%d = %v, %v; want %v", i+1, done, err, want)
		}
	}
	got, err := s.Webhook(ctx, account, uuid.MustParse(w.ID))
	if err != nil || got.DisabledReason != model.DisabledGone {
		t.Fatalf("after disable: %+v, %v", got, err)
	}
	actions, _ := webhookAudit(t, s, w.ID)
	if diff := cmp.Diff([]string{"webhook.created", "webhook.disabled"}, actions); diff != "" {
		t.Errorf("audit actions (-want +got):\n%s", diff)
	}
}

// TestWebhookSecretsInKEKRegistry: a webhook's KEK id is registered like a
// connection's, counts in KEKCounts, keeps KEKInUse true and survives a prune.
func TestWebhookSecretsInKEKRegistry(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	create(t, s, newConnection(account))
	w := newWebhook(account)
	w.Secret.KEKID = "k-hook"
	createWebhook(t, s, w)
	ids, err := s.KEKIDsInUse(ctx)
	if err != nil || !cmp.Equal(ids, []string{"k-hook", "k1"}) {
		t.Fatalf("KEKIDsInUse = %v, %v", ids, err)
	}
	if used, err := s.KEKInUse(ctx, "k-hook"); err != nil || !used {
		t.Errorf("KEKInUse(k-hook) = %v, %v", used, err)
	}
	if pruned, err := s.PruneKEKIDs(ctx); err != nil || len(pruned) != 0 {
		t.Errorf("PruneKEKIDs = %v, %v; want nothing", pruned, err)
	}
	if diff := cmp.Diff(map[string]int64{"k1": 1, "k-hook": 1}, kekCounts(t, s)); diff != "" {
		t.Errorf("KEKCounts (-want +got):\n%s", diff)
	}
	missing, err := s.MissingKEKs(ctx, func(id string) bool { return id == "k1" })
	if err != nil || !cmp.Equal(missing, []string{"k-hook"}) {
		t.Errorf("MissingKEKs = %v, %v; want [k-hook]", missing, err)
	}
	res, err := s.RewrapBatch(ctx, store.RewrapOptions{Kind: store.WebhookSecrets, ActiveKEKID: "k1", Limit: 10}, fakeRewrap("k1"))
	if err != nil || res.Rewrapped != 1 {
		t.Fatalf("RewrapBatch of webhooks = %+v, %v", res, err)
	}
	if diff := cmp.Diff(map[string]int64{"k1": 2}, kekCounts(t, s)); diff != "" {
		t.Errorf("KEKCounts after rewrap (-want +got):\n%s", diff)
	}
}
