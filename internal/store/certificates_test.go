package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// newCertificate returns a certificate whose key is "sealed" under kek. The
// store does not look into the bytes, so they only need to be told apart.
func newCertificate(kek string) *model.Certificate {
	id := uuid.NewString()
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &model.Certificate{
		DER: []byte("der-" + id), Thumbprint: "SHA1-" + id, ThumbprintSHA256: "SHA256-" + id,
		NotBefore: nb, NotAfter: nb.Add(365 * 24 * time.Hour),
		Key: model.SealedSecret{Ciphertext: []byte("key-" + id), WrappedDEK: []byte("dek-" + id), KEKID: kek},
	}
}

// newCertificateConnection is newConnection with a certificate instead of a secret.
func newCertificateConnection(account, kek string) model.Connection {
	c := newConnection(account)
	c.CredentialType = model.CredentialCertificate
	c.Secret = model.SealedSecret{}
	c.Certificate = newCertificate(kek)
	return c
}

func update(t *testing.T, s *store.Store, c model.Connection, f func(*model.Connection)) model.Connection {
	t.Helper()
	got, err := s.UpdateConnection(context.Background(), c.Account, uuid.MustParse(c.ID), testAudit, func(c *model.Connection) error {
		f(c)
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateConnection: %v", err)
	}
	return got
}

func lastEvent(t *testing.T, s *store.Store, c model.Connection) store.AuditEvent {
	t.Helper()
	events, _, err := s.AuditTrail(context.Background(), c.Account, uuid.MustParse(c.ID), store.Page{Limit: 1})
	if err != nil || len(events) == 0 {
		t.Fatalf("AuditTrail: %v, %d", err, len(events))
	}
	return events[0]
}

func TestCertificateConnectionRoundTrips(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	in := newCertificateConnection(account, "k1")
	got := create(t, s, in)
	want := in
	want.Status, want.Version = model.StatusUntested, 1
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.UpdatedAt
	want.StatusSince = &got.CreatedAt // untested since it was made
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var secretColumns int
	if err := s.Pool().QueryRow(context.Background(), `SELECT num_nonnulls(secret_ciphertext, secret_wrapped_dek,
		secret_kek_id, secret_updated_at, secret_expires_at, secret_expired_at) FROM connections WHERE id = $1`,
		in.ID).Scan(&secretColumns); err != nil || secretColumns != 0 {
		t.Errorf("a certificate connection has %d secret columns set (%v), want none", secretColumns, err)
	}
	var details map[string]any
	if err := json.Unmarshal(lastEvent(t, s, got).Details, &details); err != nil ||
		details["credential_type"] != "certificate" || details["thumbprint"] != in.Certificate.Thumbprint {
		t.Errorf("created event details %v (%v)", details, err)
	}
}

// The table holds exactly the credential of a connection's type, whole.
func TestCredentialConstraints(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	for name, c := range map[string]model.Connection{
		"certificate connection with a secret": func() model.Connection {
			c := newCertificateConnection(account, "k1")
			c.Secret = newConnection(account).Secret
			return c
		}(),
		"certificate connection without a certificate": func() model.Connection {
			c := newCertificateConnection(account, "k1")
			c.Certificate = nil
			return c
		}(),
		"certificate connection with a secret expiry": func() model.Connection {
			c := newCertificateConnection(account, "k1")
			c.SecretExpiresAt = ptr(time.Now().Add(time.Hour))
			return c
		}(),
		"secret connection with a certificate": func() model.Connection {
			c := newConnection(account)
			c.Certificate = newCertificate("k1")
			return c
		}(),
		"secret connection without a secret": func() model.Connection {
			c := newConnection(account)
			c.Secret = model.SealedSecret{}
			return c
		}(),
	} {
		if _, err := s.CreateConnection(context.Background(), c, testAudit); err == nil {
			t.Errorf("%s: stored", name)
		}
	}
	c := create(t, s, newCertificateConnection(account, "k1"))
	if _, err := s.Pool().Exec(context.Background(), `UPDATE connections SET cert_key_kek_id = NULL WHERE id = $1`, c.ID); err == nil {
		t.Error("a certificate without its key's KEK id was stored")
	}
	if _, err := s.Pool().Exec(context.Background(), `UPDATE connections SET next_cert_passed_at = now() WHERE id = $1`, c.ID); err == nil {
		t.Error("a passed test of a next certificate that does not exist was stored")
	}
}

func TestUpdateConnectionCertificateEvents(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := create(t, s, newConnection(account))

	// A next certificate for a secret connection.
	next := newCertificate("k1")
	c = update(t, s, c, func(c *model.Connection) { c.NextCertificate = next })
	if e := lastEvent(t, s, c); e.Action != store.ActionNextCertificateCreated {
		t.Errorf("action %s, want %s", e.Action, store.ActionNextCertificateCreated)
	}
	if diff := cmp.Diff(next, c.NextCertificate); diff != "" {
		t.Errorf("next certificate (-want +got):\n%s", diff)
	}

	// A passing test with it is recorded; with another thumbprint it is not.
	if err := s.RecordNextCertificatePass(ctx, account, uuid.MustParse(c.ID), "SHA256-other", testAudit); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pass of another certificate: %v, want ErrNotFound", err)
	}
	if err := s.RecordNextCertificatePass(ctx, other, uuid.MustParse(c.ID), next.ThumbprintSHA256, testAudit); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pass from another account: %v, want ErrNotFound", err)
	}
	if err := s.RecordNextCertificatePass(ctx, account, uuid.MustParse(c.ID), next.ThumbprintSHA256, testAudit); err != nil {
		t.Fatal(err)
	}
	passed := get(t, s, account, c.ID)
	if passed.NextCertificatePassedAt == nil || time.Since(*passed.NextCertificatePassedAt) > time.Minute || passed.Version != c.Version+1 {
		t.Errorf("after the pass: passed at %v, version %d (was %d)", passed.NextCertificatePassedAt, passed.Version, c.Version)
	}
	if e := lastEvent(t, s, c); e.Action != store.ActionTested {
		t.Errorf("action %s, want %s", e.Action, store.ActionTested)
	}

	// A replaced next certificate loses the pass: it was of the other one.
	replaced := update(t, s, passed, func(c *model.Connection) { c.NextCertificate = newCertificate("k1") })
	if replaced.NextCertificatePassedAt != nil {
		t.Errorf("the replacement kept the pass of %v", replaced.NextCertificatePassedAt)
	}

	// Activation: the next certificate becomes current, the secret goes.
	activated := update(t, s, replaced, func(c *model.Connection) {
		c.CredentialType = model.CredentialCertificate
		c.Certificate, c.NextCertificate = c.NextCertificate, nil
		c.Secret, c.SecretExpiresAt = model.SealedSecret{}, nil
	})
	e := lastEvent(t, s, c)
	var details struct {
		Changed    []string `json:"changed"`
		Thumbprint string   `json:"thumbprint"`
	}
	if err := json.Unmarshal(e.Details, &details); err != nil {
		t.Fatal(err)
	}
	if e.Action != store.ActionCertificateActivated || details.Thumbprint != replaced.NextCertificate.Thumbprint ||
		!cmp.Equal(details.Changed, []string{"credential_type", "client_secret", "certificate", "next_certificate"}) {
		t.Errorf("event %s %s", e.Action, e.Details)
	}
	if activated.Secret.Ciphertext != nil || !activated.SecretUpdatedAt.IsZero() || activated.NextCertificate != nil ||
		activated.Certificate == nil || activated.Certificate.ThumbprintSHA256 != replaced.NextCertificate.ThumbprintSHA256 {
		t.Errorf("activated: %+v", activated)
	}
}

// Key rotation rewraps each sealed value of a row under an old key, told by
// its slot, and leaves the ones under the active key and the ciphertexts alone.
func TestRewrapBatchRewrapsCertificateKeys(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := newCertificateConnection(account, "k1")
	c.NextCertificate = newCertificate("k2") // already under the active key
	c = create(t, s, c)
	secretConn := createUnder(t, s, "k1", 1)[0]
	secretConn = update(t, s, secretConn, func(c *model.Connection) { c.NextCertificate = newCertificate("k0") })

	seen := map[string]model.CertificateSlot{}
	rewrap := func(ctx context.Context, v store.SealedValue) (model.SealedSecret, error) {
		seen[v.ID+"/"+string(v.Slot)] = v.Slot
		if v.Account != account {
			t.Errorf("account %q", v.Account)
		}
		return fakeRewrap("k2")(ctx, v)
	}
	res, err := s.RewrapBatch(ctx, store.RewrapOptions{Kind: store.ConnectionSecrets, ActiveKEKID: "k2", Limit: 10}, rewrap)
	if err != nil {
		t.Fatal(err)
	}
	if res.Selected != 2 || res.Rewrapped != 2 || res.Skipped != 0 {
		t.Errorf("result %+v: want 2 rows", res)
	}
	want := map[string]model.CertificateSlot{
		c.ID + "/current": model.SlotCurrent, secretConn.ID + "/": "", secretConn.ID + "/next": model.SlotNext,
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("values passed to rewrap (-want +got):\n%s", diff)
	}
	got := get(t, s, account, c.ID)
	if got.Certificate.Key.KEKID != "k2" || string(got.Certificate.Key.WrappedDEK) != "k2<"+string(c.Certificate.Key.WrappedDEK) ||
		string(got.Certificate.Key.Ciphertext) != string(c.Certificate.Key.Ciphertext) {
		t.Errorf("current key %+v", got.Certificate.Key)
	}
	if !cmp.Equal(got.NextCertificate, c.NextCertificate) || got.Version != c.Version {
		t.Error("the value under the active key, or the version, changed")
	}
	if diff := cmp.Diff(map[string]int64{"k2": 2}, kekCounts(t, s)); diff != "" {
		t.Errorf("KEKCounts (-want +got):\n%s", diff)
	}
}

// One value that cannot be rewrapped skips its whole row.
func TestRewrapBatchSkipsTheRowOfADamagedKey(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := createUnder(t, s, "k1", 1)[0]
	c = update(t, s, c, func(c *model.Connection) { c.NextCertificate = newCertificate("k1") })
	rewrap := func(ctx context.Context, v store.SealedValue) (model.SealedSecret, error) {
		if v.Slot == model.SlotNext {
			return model.SealedSecret{}, store.ErrSkipRow
		}
		return fakeRewrap("k2")(ctx, v)
	}
	res, err := s.RewrapBatch(ctx, store.RewrapOptions{Kind: store.ConnectionSecrets, ActiveKEKID: "k2", Limit: 10}, rewrap)
	if err != nil {
		t.Fatal(err)
	}
	if res.Selected != 1 || res.Rewrapped != 0 || res.Skipped != 1 {
		t.Errorf("result %+v", res)
	}
	if diff := cmp.Diff(c, get(t, s, account, c.ID)); diff != "" {
		t.Errorf("the skipped row changed (-want +got):\n%s", diff)
	}
}

// Readiness and `keys status` see the KEKs of private keys.
func TestKEKIDsOfCertificateKeys(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := newCertificateConnection(account, "kc")
	c.NextCertificate = newCertificate("kn")
	c = create(t, s, c)
	ids, err := s.KEKIDsInUse(ctx)
	if err != nil || !cmp.Equal(ids, []string{"kc", "kn"}) {
		t.Errorf("KEKIDsInUse = %v, %v; want [kc kn]", ids, err)
	}
	missing, err := s.MissingKEKs(ctx, func(id string) bool { return id == "kc" })
	if err != nil || !cmp.Equal(missing, []string{"kn"}) {
		t.Errorf("MissingKEKs = %v, %v; want [kn]", missing, err)
	}
	if diff := cmp.Diff(map[string]int64{"kc": 1, "kn": 1}, kekCounts(t, s)); diff != "" {
		t.Errorf("KEKCounts (-want +got):\n%s", diff)
	}
	// Dropping the next certificate leaves kn unused, and the prune forgets it.
	update(t, s, c, func(c *model.Connection) { c.NextCertificate = nil })
	if used, err := s.KEKInUse(ctx, "kn"); err != nil || used {
		t.Errorf("KEKInUse(kn) = %t, %v after the next certificate went", used, err)
	}
	if pruned, err := s.PruneKEKIDs(ctx); err != nil || !cmp.Equal(pruned, []string{"kn"}) {
		t.Errorf("PruneKEKIDs = %v, %v; want [kn]", pruned, err)
	}
}

// The secret_state filter judges a certificate connection by its certificate.
func TestConnectionsFilterCertificateState(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	states := map[model.SecretState]string{}
	for state, notAfter := range map[model.SecretState]time.Time{
		model.SecretValid:    now.Add(90 * 24 * time.Hour),
		model.SecretExpiring: now.Add(7 * 24 * time.Hour),
		model.SecretExpired:  now.Add(-time.Hour),
	} {
		c := newCertificateConnection(account, "k1")
		c.Certificate.NotAfter = notAfter
		states[state] = create(t, s, c).ID
		if got := c.Certificate.State(now); got != state {
			t.Errorf("State = %s, want %s", got, state)
		}
	}
	for _, state := range []model.SecretState{model.SecretValid, model.SecretExpiring, model.SecretExpired, model.SecretUnknown} {
		got, _, err := s.Connections(context.Background(), account, store.Page{Limit: 10}, store.Filter{SecretState: state, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range got {
			ids = append(ids, c.ID)
		}
		var want []string
		if id, ok := states[state]; ok {
			want = []string{id}
		}
		if !cmp.Equal(want, ids) {
			t.Errorf("%s: %v, want %v", state, ids, want)
		}
	}
}
