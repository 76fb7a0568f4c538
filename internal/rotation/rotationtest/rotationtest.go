// Package rotationtest fills a test database with connections and webhooks
// whose secrets are really sealed, and checks that every one of them still
// opens to what was stored: the ground truth of key rotation tests.
package rotationtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
)

// Key returns a fresh key line "id:base64-32-bytes" for ENCRYPTION_KEYS.
// Unlike crypto.GenerateKey, the caller picks the id, so two keys made in
// the same second differ.
func Key(id string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return id + ":" + base64.StdEncoding.EncodeToString(b)
}

// Keyring parses spec (see crypto.ParseKeyring) with active as the active
// key, and fails the test on error.
func Keyring(t testing.TB, spec, active string) *crypto.Keyring {
	t.Helper()
	k, err := crypto.ParseKeyring(spec, active)
	if err != nil {
		t.Fatalf("rotationtest: keyring: %v", err)
	}
	return k
}

// Secret is what a stored connection's or webhook's secret must open to.
type Secret struct {
	Account   string
	Plaintext string
}

// Seed stores n connections, spread over a few accounts, with secrets sealed
// by keys (so under its active key), and returns them by connection id. It
// writes with COPY, so 100,000 rows take about a second.
func Seed(t testing.TB, pool *pgxpool.Pool, keys *crypto.Keyring, n int) map[string]Secret {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	want := make(map[string]Secret, n)
	rows := make([][]any, 0, n)
	for i := range n {
		id := uuid.NewString()
		s := Secret{Account: fmt.Sprintf("acct-%d", i%7), Plaintext: fmt.Sprintf("Q~secret-%d-%s", i, rand.Text())}
		sealed := Seal(t, keys, s.Account, id, s.Plaintext)
		want[id] = s
		rows = append(rows, []any{id, s.Account, "Contoso " + id[:8], "https://org" + id[:8] + ".crm.dynamics.com",
			string(model.CloudPublic), uuid.NewString(), sealed.Ciphertext, sealed.WrappedDEK, sealed.KEKID, now})
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"connections"},
		[]string{"id", "account", "name", "instance_url", "cloud", "client_id",
			"secret_ciphertext", "secret_wrapped_dek", "secret_kek_id", "secret_updated_at"},
		pgx.CopyFromRows(rows))
	if err != nil {
		t.Fatalf("rotationtest: copy connections: %v", err)
	}
	return want
}

// SeedWebhooks stores n webhooks, spread over a few accounts, with signing
// secrets sealed by keys, and returns them by webhook id.
func SeedWebhooks(t testing.TB, pool *pgxpool.Pool, keys *crypto.Keyring, n int) map[string]Secret {
	t.Helper()
	want := make(map[string]Secret, n)
	rows := make([][]any, 0, n)
	for i := range n {
		id := uuid.NewString()
		s := Secret{Account: fmt.Sprintf("acct-%d", i%7), Plaintext: "whsec_" + base64.StdEncoding.EncodeToString([]byte(rand.Text()))}
		env, err := keys.Seal(context.Background(), []byte(s.Plaintext), crypto.WebhookAssociatedData(s.Account, id))
		if err != nil {
			t.Fatalf("rotationtest: seal: %v", err)
		}
		want[id] = s
		rows = append(rows, []any{id, s.Account, "https://hooks.example.com/" + id, env.Ciphertext, env.WrappedDEK, env.KEKID})
	}
	_, err := pool.CopyFrom(context.Background(), pgx.Identifier{"webhooks"},
		[]string{"id", "account", "url", "secret_ciphertext", "secret_wrapped_dek", "secret_kek_id"},
		pgx.CopyFromRows(rows))
	if err != nil {
		t.Fatalf("rotationtest: copy webhooks: %v", err)
	}
	return want
}

// Seal seals plaintext for the connection (account, id) as the API does, and
// fails the test on error.
func Seal(t testing.TB, keys *crypto.Keyring, account, id, plaintext string) model.SealedSecret {
	t.Helper()
	env, err := keys.Seal(context.Background(), []byte(plaintext), crypto.AssociatedData(account, id))
	if err != nil {
		t.Fatalf("rotationtest: seal: %v", err)
	}
	return model.SealedSecret(env)
}

// Check opens every stored secret, of connections and webhooks, with keys
// and reports, as test errors, each row that does not open, opens to
// something other than want (by connection or webhook id) says, or is
// missing or extra. It returns the number of rows under each KEK id.
func Check(t testing.TB, pool *pgxpool.Pool, keys *crypto.Keyring, want map[string]Secret) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	rows, _ := pool.Query(ctx, `
SELECT 'connection', id::text, account, secret_ciphertext, secret_wrapped_dek, secret_kek_id FROM connections
UNION ALL
SELECT 'webhook', id::text, account, secret_ciphertext, secret_wrapped_dek, secret_kek_id FROM webhooks`)
	var (
		kind, id, account, kek string
		ct, dek                []byte
		seen                   = make(map[string]bool, len(want))
		counts                 = map[string]int64{}
		bad                    int
	)
	_, err := pgx.ForEachRow(rows, []any{&kind, &id, &account, &ct, &dek, &kek}, func() error {
		seen[id] = true
		counts[kek]++
		w, ok := want[id]
		if !ok {
			t.Errorf("unexpected %s %s", kind, id)
			return nil
		}
		if account != w.Account {
			t.Errorf("%s %s: account %q, want %q", kind, id, account, w.Account)
		}
		ad := crypto.AssociatedData(account, id)
		if kind == "webhook" {
			ad = crypto.WebhookAssociatedData(account, id)
		}
		env := crypto.Envelope{Ciphertext: ct, WrappedDEK: dek, KEKID: kek}
		got, err := keys.Open(ctx, env, ad)
		switch {
		case err != nil:
			bad++
			if bad <= 10 {
				t.Errorf("%s %s (under %s) does not open: %v", kind, id, kek, err)
			}
		case string(got) != w.Plaintext:
			bad++
			if bad <= 10 {
				t.Errorf("%s %s (under %s) opens to another secret", kind, id, kek)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rotationtest: read secrets: %v", err)
	}
	if bad > 10 {
		t.Errorf("... %d bad rows in all", bad)
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("secret of %s is missing", id)
		}
	}
	return counts
}
