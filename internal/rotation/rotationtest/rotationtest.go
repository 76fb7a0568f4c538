// Package rotationtest fills a test database with connections and webhooks
// whose secrets and private keys are really sealed, and checks that every one
// of them still opens to what was stored: the ground truth of key rotation
// tests.
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

// Secret is what a stored connection's or webhook's sealed values must open
// to: its secret's Plaintext, or (for a certificate connection, whose
// Plaintext is "") its private keys.
type Secret struct {
	Account   string
	Plaintext string
	// CertificateKey and NextCertificateKey are the private keys of the
	// current and next certificates, "" where there is none.
	CertificateKey, NextCertificateKey string
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

// SeedCertificates stores n certificate connections, each with a current and
// a next certificate whose private keys are sealed by keys (so under its
// active key) as the API seals them, and returns them by connection id. The
// keys are random bytes: rotation never parses them.
func SeedCertificates(t testing.TB, pool *pgxpool.Pool, keys *crypto.Keyring, n int) map[string]Secret {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	want := make(map[string]Secret, n)
	rows := make([][]any, 0, n)
	for i := range n {
		id := uuid.NewString()
		s := Secret{Account: fmt.Sprintf("acct-%d", i%7), CertificateKey: "pkcs8-" + rand.Text(), NextCertificateKey: "pkcs8-next-" + rand.Text()}
		cur := SealKey(t, keys, s.Account, id, model.SlotCurrent, s.CertificateKey)
		next := SealKey(t, keys, s.Account, id, model.SlotNext, s.NextCertificateKey)
		want[id] = s
		row := []any{id, s.Account, "Contoso " + id[:8], "https://org" + id[:8] + ".crm.dynamics.com",
			string(model.CloudPublic), uuid.NewString(), string(model.CredentialCertificate)}
		for _, k := range []model.SealedSecret{cur, next} {
			row = append(row, []byte("der-"+rand.Text()), "SHA1-"+rand.Text(), "SHA256-"+rand.Text(), now, now.Add(time.Hour),
				k.Ciphertext, k.WrappedDEK, k.KEKID)
		}
		rows = append(rows, row)
	}
	columns := []string{"id", "account", "name", "instance_url", "cloud", "client_id", "credential_type"}
	for _, prefix := range []string{"cert_", "next_cert_"} {
		for _, c := range []string{"der", "thumbprint", "thumbprint_sha256", "not_before", "not_after", "key_ciphertext", "key_wrapped_dek", "key_kek_id"} {
			columns = append(columns, prefix+c)
		}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"connections"}, columns, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("rotationtest: copy certificate connections: %v", err)
	}
	return want
}

// Seal seals plaintext for the connection (account, id) as the API does, and
// fails the test on error.
func Seal(t testing.TB, keys *crypto.Keyring, account, id, plaintext string) model.SealedSecret {
	t.Helper()
	return seal(t, keys, plaintext, crypto.AssociatedData(account, id))
}

// SealKey seals a private key for the connection's certificate slot as the
// API does, and fails the test on error.
func SealKey(t testing.TB, keys *crypto.Keyring, account, id string, slot model.CertificateSlot, key string) model.SealedSecret {
	t.Helper()
	return seal(t, keys, key, crypto.CertificateKeyAssociatedData(account, id, string(slot)))
}

func seal(t testing.TB, keys *crypto.Keyring, plaintext string, ad []byte) model.SealedSecret {
	t.Helper()
	env, err := keys.Seal(context.Background(), []byte(plaintext), ad)
	if err != nil {
		t.Fatalf("rotationtest: seal: %v", err)
	}
	return model.SealedSecret(env)
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

// Check opens every stored sealed value (client secrets and private keys)
// with keys and reports, as test errors, each that does not open, opens to
// something other than want says, or is missing or extra. It returns the
// number of sealed values under each KEK id.
func Check(t testing.TB, pool *pgxpool.Pool, keys *crypto.Keyring, want map[string]Secret) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	rows, _ := pool.Query(ctx, `
SELECT 'connection', id::text, account, secret_ciphertext, secret_wrapped_dek, secret_kek_id,
	cert_key_ciphertext, cert_key_wrapped_dek, cert_key_kek_id,
	next_cert_key_ciphertext, next_cert_key_wrapped_dek, next_cert_key_kek_id
FROM connections
UNION ALL
SELECT 'webhook', id::text, account, secret_ciphertext, secret_wrapped_dek, secret_kek_id,
	NULL, NULL, NULL, NULL, NULL, NULL
FROM webhooks`)
	var (
		kind, id, account           string
		ct, dek, cct, cdek, nct, nd []byte
		kek, ckek, nkek             *string
		seen                        = make(map[string]bool, len(want))
		counts                      = map[string]int64{}
		bad                         int
	)
	_, err := pgx.ForEachRow(rows, []any{&kind, &id, &account, &ct, &dek, &kek, &cct, &cdek, &ckek, &nct, &nd, &nkek}, func() error {
		seen[id] = true
		w, ok := want[id]
		if !ok {
			t.Errorf("unexpected %s %s", kind, id)
			return nil
		}
		if account != w.Account {
			t.Errorf("%s %s: account %q, want %q", kind, id, account, w.Account)
		}
		secretAD := crypto.AssociatedData(account, id)
		if kind == "webhook" {
			secretAD = crypto.WebhookAssociatedData(account, id)
		}
		for _, v := range []struct {
			what, want string
			ct, dek    []byte
			kek        *string
			ad         []byte
		}{
			{"secret", w.Plaintext, ct, dek, kek, secretAD},
			{"certificate key", w.CertificateKey, cct, cdek, ckek, crypto.CertificateKeyAssociatedData(account, id, string(model.SlotCurrent))},
			{"next certificate key", w.NextCertificateKey, nct, nd, nkek, crypto.CertificateKeyAssociatedData(account, id, string(model.SlotNext))},
		} {
			if v.kek == nil {
				if v.want != "" {
					t.Errorf("%s %s: its %s is missing", kind, id, v.what)
				}
				continue
			}
			counts[*v.kek]++
			env := crypto.Envelope{Ciphertext: v.ct, WrappedDEK: v.dek, KEKID: *v.kek}
			got, err := keys.Open(ctx, env, v.ad)
			switch {
			case err != nil:
				bad++
				if bad <= 10 {
					t.Errorf("%s %s: %s (under %s) does not open: %v", kind, id, v.what, *v.kek, err)
				}
			case string(got) != v.want:
				bad++
				if bad <= 10 {
					t.Errorf("%s %s: %s (under %s) opens to another value", kind, id, v.what, *v.kek)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rotationtest: read connections and webhooks: %v", err)
	}
	if bad > 10 {
		t.Errorf("... %d bad values in all", bad)
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("connection or webhook %s is missing", id)
		}
	}
	return counts
}
