package crypto_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
)

// The store keeps an Envelope as a model.SealedSecret; this stops compiling if
// the two drift apart.
var (
	_ = model.SealedSecret(crypto.Envelope{})
	_ = crypto.Envelope(model.SealedSecret{})
)

// Test keys: fixed bytes so failures are reproducible. Their base64 must never
// appear in an error message.
var (
	key1 = bytes.Repeat([]byte{0x11}, 32)
	key2 = bytes.Repeat([]byte{0x22}, 32)
	key3 = bytes.Repeat([]byte{0x33}, 32)
	b64  = base64.StdEncoding.EncodeToString
)

func entry(id string, key []byte) string { return id + ":" + b64(key) }

func mustKeyring(t testing.TB, spec, active string) *crypto.Keyring {
	t.Helper()
	k, err := crypto.ParseKeyring(spec, active)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return k
}

func mustSeal(t testing.TB, k *crypto.Keyring, plaintext, ad []byte) crypto.Envelope {
	t.Helper()
	env, err := k.Seal(context.Background(), plaintext, ad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return env
}

// clone returns a deep copy, so a test can alter one envelope's bytes without
// touching another's.
func clone(e crypto.Envelope) crypto.Envelope {
	return crypto.Envelope{Ciphertext: bytes.Clone(e.Ciphertext), WrappedDEK: bytes.Clone(e.WrappedDEK), KEKID: e.KEKID}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKeyring(t, entry("k1", key1)+","+entry("k2", key2), "k2")
	ad := crypto.AssociatedData("acct-1", "6f1c0d3e-8a52-4c1e-9b7a-0d1f2e3c4b5a")
	tests := []struct {
		name      string
		plaintext []byte
	}{
		{"typical client secret", []byte("Zx98Q~abcDEF.ghiJKL_mnoPQRstuVWXyz0123456")},
		{"empty", []byte{}},
		{"binary with zero bytes", []byte{0, 1, 2, 0, 255, 0}},
		{"64 KiB", bytes.Repeat([]byte("secret!"), 64<<10/7)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := mustSeal(t, k, tt.plaintext, ad)
			if env.KEKID != "k2" {
				t.Errorf("KEKID = %q, want the active key k2", env.KEKID)
			}
			if env.Ciphertext[0] != 1 || env.WrappedDEK[0] != 1 {
				t.Errorf("version bytes = %#x, %#x, want 0x01", env.Ciphertext[0], env.WrappedDEK[0])
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(env.Ciphertext, tt.plaintext[:8]) {
				t.Error("ciphertext contains the plaintext")
			}
			got, err := k.Open(context.Background(), env, ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %q, want %q", got, tt.plaintext)
			}
		})
	}
}

func TestOpenFailures(t *testing.T) {
	const secret = "Zx98Q~the-plaintext-client-secret"
	k := mustKeyring(t, entry("k1", key1)+","+entry("k2", key2), "k1")
	ad := crypto.AssociatedData("acct-1", "conn-1")
	otherAD := crypto.AssociatedData("acct-1", "conn-2")
	env := mustSeal(t, k, []byte(secret), ad)
	other := mustSeal(t, k, []byte("another row's secret"), otherAD)

	tests := []struct {
		name    string
		keyring *crypto.Keyring // nil: k
		alter   func(e *crypto.Envelope)
		ad      []byte // nil: ad
		wantErr error
		wantMsg string // a substring of the message, if set
	}{
		{name: "altered ciphertext body", alter: func(e *crypto.Envelope) { e.Ciphertext[20] ^= 1 }, wantErr: crypto.ErrDecrypt},
		{name: "altered ciphertext tag", alter: func(e *crypto.Envelope) { e.Ciphertext[len(e.Ciphertext)-1] ^= 0x80 }, wantErr: crypto.ErrDecrypt},
		{name: "altered ciphertext nonce", alter: func(e *crypto.Envelope) { e.Ciphertext[1] ^= 1 }, wantErr: crypto.ErrDecrypt},
		{name: "ciphertext swapped in from another row", alter: func(e *crypto.Envelope) { e.Ciphertext = other.Ciphertext }, wantErr: crypto.ErrDecrypt},
		{name: "unknown ciphertext version", alter: func(e *crypto.Envelope) { e.Ciphertext[0] = 2 }, wantErr: crypto.ErrFormat},
		{name: "truncated ciphertext", alter: func(e *crypto.Envelope) { e.Ciphertext = e.Ciphertext[:20] }, wantErr: crypto.ErrFormat},
		{name: "empty ciphertext", alter: func(e *crypto.Envelope) { e.Ciphertext = nil }, wantErr: crypto.ErrFormat},
		{name: "ciphertext body cut off", alter: func(e *crypto.Envelope) { e.Ciphertext = e.Ciphertext[:len(e.Ciphertext)-1] }, wantErr: crypto.ErrDecrypt},
		{name: "altered wrapped DEK", alter: func(e *crypto.Envelope) { e.WrappedDEK[30] ^= 1 }, wantErr: crypto.ErrUnwrap},
		{name: "wrapped DEK swapped in from another row", alter: func(e *crypto.Envelope) { e.WrappedDEK = other.WrappedDEK }, wantErr: crypto.ErrUnwrap},
		{name: "unknown wrapped DEK version", alter: func(e *crypto.Envelope) { e.WrappedDEK[0] = 0 }, wantErr: crypto.ErrFormat},
		{name: "truncated wrapped DEK", alter: func(e *crypto.Envelope) { e.WrappedDEK = e.WrappedDEK[:10] }, wantErr: crypto.ErrFormat},
		{name: "empty wrapped DEK", alter: func(e *crypto.Envelope) { e.WrappedDEK = nil }, wantErr: crypto.ErrFormat},
		{name: "wrong associated data: other connection", ad: otherAD, wantErr: crypto.ErrUnwrap},
		{name: "wrong associated data: other account", ad: crypto.AssociatedData("acct-2", "conn-1"), wantErr: crypto.ErrUnwrap},
		{name: "whole envelope moved to another row", alter: func(e *crypto.Envelope) { *e = clone(other) }, wantErr: crypto.ErrUnwrap},
		{name: "KEK id changed to another loaded key", alter: func(e *crypto.Envelope) { e.KEKID = "k2" }, wantErr: crypto.ErrUnwrap},
		{
			name:    "wrong KEK material under the same id",
			keyring: mustKeyring(t, entry("k1", key3), ""),
			wantErr: crypto.ErrUnwrap,
		},
		{
			name:    "unknown KEK id",
			keyring: mustKeyring(t, entry("k2", key2), ""),
			wantErr: crypto.ErrUnknownKey,
			wantMsg: `"k1"`,
		},
		{name: "empty KEK id", alter: func(e *crypto.Envelope) { e.KEKID = "" }, wantErr: crypto.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, e, a := k, clone(env), ad
			if tt.keyring != nil {
				kr = tt.keyring
			}
			if tt.alter != nil {
				tt.alter(&e)
			}
			if tt.ad != nil {
				a = tt.ad
			}
			got, err := kr.Open(context.Background(), e, a)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			for _, sentinel := range []error{crypto.ErrDecrypt, crypto.ErrFormat, crypto.ErrUnwrap, crypto.ErrUnknownKey} {
				if sentinel != tt.wantErr && errors.Is(err, sentinel) {
					t.Errorf("Open error %q also matches %v: errors must be distinct", err, sentinel)
				}
			}
			if got != nil {
				t.Errorf("Open returned %d bytes with an error", len(got))
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, b64(key1)) {
				t.Errorf("error %q leaks a secret", msg)
			}
		})
	}
}

func TestSealTwiceDiffers(t *testing.T) {
	k := mustKeyring(t, entry("k1", key1), "")
	ad := crypto.AssociatedData("acct", "conn")
	a := mustSeal(t, k, []byte("same secret"), ad)
	b := mustSeal(t, k, []byte("same secret"), ad)
	if bytes.Equal(a.Ciphertext, b.Ciphertext) {
		t.Error("two seals of the same plaintext have the same ciphertext")
	}
	if bytes.Equal(a.WrappedDEK, b.WrappedDEK) {
		t.Error("two seals of the same plaintext have the same wrapped DEK")
	}
	for _, e := range []crypto.Envelope{a, b} {
		if got, err := k.Open(context.Background(), e, ad); err != nil || string(got) != "same secret" {
			t.Errorf("Open = %q, %v", got, err)
		}
	}
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	const secret = "rotate-me"
	ad := crypto.AssociatedData("acct", "conn")
	old := mustKeyring(t, entry("old", key1), "")
	env := mustSeal(t, old, []byte(secret), ad)

	both := mustKeyring(t, entry("old", key1)+","+entry("new", key2), "new")
	moved, err := both.Rewrap(ctx, env, ad)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if moved.KEKID != "new" {
		t.Errorf("KEKID = %q, want new", moved.KEKID)
	}
	if !bytes.Equal(moved.Ciphertext, env.Ciphertext) {
		t.Error("Rewrap changed the ciphertext")
	}
	if bytes.Equal(moved.WrappedDEK, env.WrappedDEK) {
		t.Error("Rewrap left the wrapped DEK as it was")
	}

	onlyNew := mustKeyring(t, entry("new", key2), "")
	got, err := onlyNew.Open(ctx, moved, ad)
	if err != nil || string(got) != secret {
		t.Fatalf("Open after Rewrap = %q, %v; want %q", got, err, secret)
	}

	again, err := both.Rewrap(ctx, moved, ad)
	if err != nil {
		t.Fatalf("second Rewrap: %v", err)
	}
	if !bytes.Equal(again.WrappedDEK, moved.WrappedDEK) || again.KEKID != moved.KEKID {
		t.Error("Rewrap of an envelope already under the active key changed it")
	}

	if _, err := onlyNew.Rewrap(ctx, env, ad); !errors.Is(err, crypto.ErrUnknownKey) {
		t.Errorf("Rewrap without the old key: error = %v, want ErrUnknownKey", err)
	}
	if _, err := both.Rewrap(ctx, env, crypto.AssociatedData("acct", "other")); !errors.Is(err, crypto.ErrUnwrap) {
		t.Errorf("Rewrap with wrong associated data: error = %v, want ErrUnwrap", err)
	}
}

// kmsKEK stands in for a cloud KMS: it counts calls and can fail like a
// network would.
type kmsKEK struct {
	crypto.KEK
	mu      sync.Mutex
	unwraps int
	fail    error
}

func (k *kmsKEK) UnwrapKey(ctx context.Context, wrapped, ad []byte) ([]byte, error) {
	k.mu.Lock()
	k.unwraps++
	fail := k.fail
	k.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	return k.KEK.UnwrapKey(ctx, wrapped, ad)
}

func TestKMSKEK(t *testing.T) {
	ctx := context.Background()
	ad := crypto.AssociatedData("acct", "conn")
	local, err := crypto.NewLocalKEK("kms-1", key1)
	if err != nil {
		t.Fatal(err)
	}
	kms := &kmsKEK{KEK: local}
	k, err := crypto.NewKeyring(kms)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	env := mustSeal(t, k, []byte("s"), ad)

	t.Run("round trip through the interface", func(t *testing.T) {
		if got, err := k.Open(ctx, env, ad); err != nil || string(got) != "s" {
			t.Fatalf("Open = %q, %v", got, err)
		}
	})
	t.Run("malformed ciphertext is refused before calling the KMS", func(t *testing.T) {
		kms.unwraps = 0
		bad := clone(env)
		bad.Ciphertext[0] = 9
		if _, err := k.Open(ctx, bad, ad); !errors.Is(err, crypto.ErrFormat) {
			t.Fatalf("error = %v, want ErrFormat", err)
		}
		if kms.unwraps != 0 {
			t.Errorf("KMS called %d times", kms.unwraps)
		}
	})
	t.Run("rewrap under the active key does not call the KMS", func(t *testing.T) {
		kms.unwraps = 0
		if _, err := k.Rewrap(ctx, env, ad); err != nil {
			t.Fatal(err)
		}
		if kms.unwraps != 0 {
			t.Errorf("KMS called %d times", kms.unwraps)
		}
	})
	t.Run("transient KMS failure is passed through, not reported as damage", func(t *testing.T) {
		errThrottled := errors.New("kms: throttled")
		kms.fail = errThrottled
		defer func() { kms.fail = nil }()
		_, err := k.Open(ctx, env, ad)
		if !errors.Is(err, errThrottled) {
			t.Fatalf("error = %v, want the KMS error", err)
		}
		if errors.Is(err, crypto.ErrUnwrap) || errors.Is(err, crypto.ErrDecrypt) {
			t.Errorf("transient error %q reported as damage", err)
		}
	})
	t.Run("NewKeyring refuses duplicate ids", func(t *testing.T) {
		if _, err := crypto.NewKeyring(local, kms); err == nil || !strings.Contains(err.Error(), `"kms-1"`) {
			t.Errorf("error = %v, want duplicate id kms-1", err)
		}
	})
	t.Run("NewKeyring refuses nil", func(t *testing.T) {
		if _, err := crypto.NewKeyring(nil); err == nil {
			t.Error("no error")
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	k := mustKeyring(t, entry("k1", key1)+","+entry("k2", key2), "k2")
	old := mustKeyring(t, entry("k1", key1), "")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ad := crypto.AssociatedData("acct", string(rune('a'+i)))
			for range 50 {
				env, err := old.Seal(context.Background(), []byte("x"), ad)
				if err == nil {
					env, err = k.Rewrap(context.Background(), env, ad)
				}
				if err == nil {
					_, err = k.Open(context.Background(), env, ad)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestAssociatedDataIsUnambiguous(t *testing.T) {
	pairs := [][2]string{
		{"ab", "c"}, {"a", "bc"}, {"", "abc"}, {"abc", ""}, {"", ""},
		{"acct", "conn"}, {"conn", "acct"}, {"a\x00\x00\x00\x01", "b"},
		// These two collide if the account is not length-prefixed.
		{"a", "b\x00\x00\x00\x00"}, {"a\x00\x00\x00\x05b", ""},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		ad := string(crypto.AssociatedData(p[0], p[1]))
		if q, dup := seen[ad]; dup {
			t.Errorf("AssociatedData%q == AssociatedData%q", p, q)
		}
		seen[ad] = p
	}
	if !bytes.Equal(crypto.AssociatedData("a", "b"), crypto.AssociatedData("a", "b")) {
		t.Error("AssociatedData is not deterministic")
	}
	if bytes.Equal(crypto.AssociatedData("a", "b"), crypto.WebhookAssociatedData("a", "b")) {
		t.Error("a connection's and a webhook's associated data are equal")
	}
}

// TestWebhookSecretDoesNotOpenAsClientSecret: a webhook's sealed secret is
// bound to its kind, so it cannot be moved into a connection row with the
// same account and id (or back).
func TestWebhookSecretDoesNotOpenAsClientSecret(t *testing.T) {
	k := mustKeyring(t, entry("k1", bytes.Repeat([]byte{1}, 32)), "")
	env := mustSeal(t, k, []byte("whsec_x"), crypto.WebhookAssociatedData("acct", "id"))
	if _, err := k.Open(context.Background(), env, crypto.AssociatedData("acct", "id")); !errors.Is(err, crypto.ErrUnwrap) {
		t.Fatalf("Open as a client secret: %v, want ErrUnwrap", err)
	}
	if got, err := k.Open(context.Background(), env, crypto.WebhookAssociatedData("acct", "id")); err != nil || string(got) != "whsec_x" {
		t.Fatalf("Open as a webhook secret = %q, %v", got, err)
	}
}

// A certificate's private key opens only with the associated data of its own
// row and slot: not from the other slot, not as a client secret.
func TestCertificateKeyAssociatedDataSeparates(t *testing.T) {
	k := mustKeyring(t, entry("k1", key1), "")
	current := crypto.CertificateKeyAssociatedData("acct", "conn", "current")
	env := mustSeal(t, k, []byte("pkcs8"), current)
	if got, err := k.Open(context.Background(), env, current); err != nil || string(got) != "pkcs8" {
		t.Fatalf("Open with its own associated data = %q, %v", got, err)
	}
	for name, ad := range map[string][]byte{
		"the next slot":   crypto.CertificateKeyAssociatedData("acct", "conn", "next"),
		"a client secret": crypto.AssociatedData("acct", "conn"),
		"another row":     crypto.CertificateKeyAssociatedData("acct", "other", "current"),
		"a slot split":    crypto.CertificateKeyAssociatedData("acct", "conncur", "rent"),
	} {
		if _, err := k.Open(context.Background(), env, ad); !errors.Is(err, crypto.ErrUnwrap) {
			t.Errorf("opened with the associated data of %s: %v, want ErrUnwrap", name, err)
		}
	}
}

func TestParseKeyring(t *testing.T) {
	tests := []struct {
		name       string
		spec       string
		active     string
		wantIDs    []string
		wantActive string
	}{
		{"one key", entry("k1", key1), "", []string{"k1"}, "k1"},
		{"first is active by default", entry("k1", key1) + "," + entry("k2", key2), "", []string{"k1", "k2"}, "k1"},
		{"active chosen", entry("k1", key1) + "," + entry("k2", key2), "k2", []string{"k1", "k2"}, "k2"},
		{
			"file with newlines, spaces, comments and a trailing comma",
			"# dynconn keys\n  " + entry("k1", key1) + ",\n\t" + entry("k.2_x-Y", key2) + "  # newest\n\n",
			"k.2_x-Y", []string{"k1", "k.2_x-Y"}, "k.2_x-Y",
		},
		{"one per line without commas", entry("a", key1) + "\r\n" + entry("b", key2) + "\n", "", []string{"a", "b"}, "a"},
		{"unpadded base64", "k1:" + base64.RawStdEncoding.EncodeToString(key1), "", []string{"k1"}, "k1"},
		{"64-character id", entry(strings.Repeat("x", 64), key1), "", []string{strings.Repeat("x", 64)}, strings.Repeat("x", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := mustKeyring(t, tt.spec, tt.active)
			if got := k.IDs(); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("IDs = %q, want %q", got, tt.wantIDs)
			}
			if got := k.ActiveID(); got != tt.wantActive {
				t.Errorf("ActiveID = %q, want %q", got, tt.wantActive)
			}
			for _, id := range tt.wantIDs {
				if !k.Has(id) {
					t.Errorf("Has(%q) = false", id)
				}
			}
			if k.Has("nope") {
				t.Error(`Has("nope") = true`)
			}
		})
	}
}

// leaks reports whether msg contains any test key, in any base64 spelling, or
// a long prefix of one.
func leaks(msg string) bool {
	for _, key := range [][]byte{key1, key2, key3, key1[:16]} {
		for _, s := range []string{b64(key), base64.RawStdEncoding.EncodeToString(key)} {
			if strings.Contains(msg, s[:12]) {
				return true
			}
		}
	}
	return false
}

func TestParseKeyringErrors(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		active  string
		wantMsg string
	}{
		{"empty", "", "", "no keys"},
		{"only comments", "# nothing here\n", "", "no keys"},
		{"key without id", b64(key1), "", "entry 1: want id:base64-key"},
		{"malformed base64", "k1:" + b64(key1)[:20] + "!!" + b64(key1)[22:], "", `entry 1: key "k1" is not valid standard base64`},
		{"url-safe base64 is refused", "k1:" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), "", "not valid standard base64"},
		{"wrong length", entry("k1", key1[:16]), "", `key "k1" is 16 bytes, need 32`},
		{"duplicate id", entry("k1", key1) + "," + entry("k2", key2) + "," + entry("k1", key3), "", `entry 3: duplicate key id "k1"`},
		{"empty id", entry("", key1), "", "entry 1: key id is 0 characters"},
		{"id too long", entry(strings.Repeat("x", 65), key1), "", "key id is 65 characters, want 1 to 64"},
		{"id with bad characters", entry("k/1", key1), "", "may contain only"},
		{"key and id swapped", b64(key1) + ":k1", "", "entry 1: key id"},
		{"unknown active id", entry("k1", key1), "k9", `unknown key-encryption key "k9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := crypto.ParseKeyring(tt.spec, tt.active)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if leaks(err.Error()) {
				t.Errorf("error %q contains key material", err)
			}
		})
	}
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	goodFile := filepath.Join(dir, "keys")
	if err := os.WriteFile(goodFile, []byte(entry("k1", key1)+"\n"+entry("k2", key2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad")
	if err := os.WriteFile(badFile, []byte(entry("k1", key1[:31])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name       string
		env        map[string]string
		wantActive string // when no error is wanted
		wantMsg    string // a substring of the error; empty: no error
	}{
		{name: "from variable", env: map[string]string{"ENCRYPTION_KEYS": entry("k1", key1)}, wantActive: "k1"},
		{name: "from file", env: map[string]string{"ENCRYPTION_KEYS_FILE": goodFile}, wantActive: "k1"},
		{name: "active chosen", env: map[string]string{"ENCRYPTION_KEYS_FILE": goodFile, "ENCRYPTION_ACTIVE_KEY_ID": "k2"}, wantActive: "k2"},
		{
			name:    "both set",
			env:     map[string]string{"ENCRYPTION_KEYS": entry("k1", key1), "ENCRYPTION_KEYS_FILE": goodFile},
			wantMsg: "ENCRYPTION_KEYS and ENCRYPTION_KEYS_FILE are both set",
		},
		{name: "neither set", env: map[string]string{}, wantMsg: "ENCRYPTION_KEYS or ENCRYPTION_KEYS_FILE must be set"},
		{name: "file not found", env: map[string]string{"ENCRYPTION_KEYS_FILE": missing}, wantMsg: "ENCRYPTION_KEYS_FILE: open " + missing},
		{name: "malformed key in variable", env: map[string]string{"ENCRYPTION_KEYS": "k1:" + b64(key1)[:30] + "*"}, wantMsg: `ENCRYPTION_KEYS: entry 1: key "k1" is not valid standard base64`},
		{name: "wrong length in file", env: map[string]string{"ENCRYPTION_KEYS_FILE": badFile}, wantMsg: `ENCRYPTION_KEYS_FILE: entry 1: key "k1" is 31 bytes, need 32`},
		{
			name:    "duplicate id",
			env:     map[string]string{"ENCRYPTION_KEYS": entry("k1", key1) + "," + entry("k1", key2)},
			wantMsg: `ENCRYPTION_KEYS: entry 2: duplicate key id "k1"`,
		},
		{
			name:    "unknown active id",
			env:     map[string]string{"ENCRYPTION_KEYS": entry("k1", key1), "ENCRYPTION_ACTIVE_KEY_ID": "k2"},
			wantMsg: `ENCRYPTION_ACTIVE_KEY_ID: no key with id "k2" in ENCRYPTION_KEYS`,
		},
		{
			name:    "unknown active id with keys from file",
			env:     map[string]string{"ENCRYPTION_KEYS_FILE": goodFile, "ENCRYPTION_ACTIVE_KEY_ID": "k3"},
			wantMsg: `ENCRYPTION_ACTIVE_KEY_ID: no key with id "k3" in ENCRYPTION_KEYS_FILE`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := crypto.LoadKeyring(func(name string) string { return tt.env[name] })
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("LoadKeyring: %v", err)
				}
				if k.ActiveID() != tt.wantActive {
					t.Errorf("ActiveID = %q, want %q", k.ActiveID(), tt.wantActive)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if leaks(err.Error()) {
				t.Errorf("error %q contains key material", err)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	line1, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	line2, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id, key, _ := strings.Cut(line1, ":")
	if !regexp.MustCompile(`^k\d{8}T\d{6}Z$`).MatchString(id) {
		t.Errorf("id %q is not k + UTC date-time", id)
	}
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 32 {
		t.Errorf("key is not 32 bytes of base64: %d bytes, %v", len(raw), err)
	}
	if _, key2, _ := strings.Cut(line2, ":"); key == key2 {
		t.Error("two generated keys are equal")
	}
	k := mustKeyring(t, line1, "")
	ad := crypto.AssociatedData("a", "c")
	if got, err := k.Open(context.Background(), mustSeal(t, k, []byte("s"), ad), ad); err != nil || string(got) != "s" {
		t.Errorf("generated key does not round-trip: %q, %v", got, err)
	}
}

func TestNewLocalKEKErrors(t *testing.T) {
	if _, err := crypto.NewLocalKEK("k1", key1[:24]); err == nil {
		t.Error("24-byte key accepted")
	}
	if _, err := crypto.NewLocalKEK("bad id", key1); err == nil {
		t.Error("id with a space accepted")
	}
}

// v1Envelope is "fuzz-secret" sealed by this package's format version 1 under
// key1 ("k1") with AssociatedData("acct", "conn"). It is fixed, not sealed at
// test time, so a change that makes stored rows unreadable fails
// TestOpenVersion1, and so every fuzz worker process agrees on which bytes are
// genuine.
var v1Envelope = crypto.Envelope{
	Ciphertext: mustHex("0139d94de95e84ec1b73f05ca5f2475916136ca6bee9ec410822589e4604acc050d2c38a09baf8b5"),
	WrappedDEK: mustHex("01ffa00c8356f383caccd937e36c6f494f5b43d05755ea4422b9c463bb1375854ddcfa09082399d53c4792902136c71d1ff2703c2e4de628f404031e3d"),
	KEKID:      "k1",
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestOpenVersion1(t *testing.T) {
	k := mustKeyring(t, entry("k1", key1), "")
	got, err := k.Open(context.Background(), v1Envelope, crypto.AssociatedData("acct", "conn"))
	if err != nil || string(got) != "fuzz-secret" {
		t.Fatalf("Open = %q, %v; want %q", got, err, "fuzz-secret")
	}
}

// FuzzOpen opens arbitrary bytes as an envelope under a fixed keyring. It must
// never panic, must fail with one of the package's errors, and must never
// accept anything but the exact bytes of the genuine envelope (that would be a
// forgery).
func FuzzOpen(f *testing.F) {
	const secret = "fuzz-secret"
	ad := crypto.AssociatedData("acct", "conn")
	k := mustKeyring(f, entry("k1", key1)+","+entry("k2", key2), "k2")
	env := v1Envelope

	f.Add(env.Ciphertext, env.WrappedDEK)
	f.Add([]byte{}, []byte{})
	f.Add([]byte{1}, []byte{1})
	f.Add(env.Ciphertext[:29], env.WrappedDEK[:29])
	f.Add(append(bytes.Clone(env.Ciphertext), 0), env.WrappedDEK)

	f.Fuzz(func(t *testing.T, ciphertext, wrapped []byte) {
		e := crypto.Envelope{Ciphertext: ciphertext, WrappedDEK: wrapped, KEKID: "k1"}
		genuine := bytes.Equal(ciphertext, env.Ciphertext) && bytes.Equal(wrapped, env.WrappedDEK)

		got, err := k.Open(context.Background(), e, ad)
		switch {
		case err == nil && !genuine:
			t.Fatalf("opened forged envelope to %q", got)
		case err == nil && string(got) != secret:
			t.Fatalf("genuine envelope opened to %q", got)
		case err != nil && genuine:
			t.Fatalf("genuine envelope failed: %v", err)
		case err != nil && !errors.Is(err, crypto.ErrFormat) && !errors.Is(err, crypto.ErrUnwrap) && !errors.Is(err, crypto.ErrDecrypt):
			t.Fatalf("unexpected error: %v", err)
		}

		// Rewrap looks only at the wrapped DEK; it must not panic either.
		if _, err := k.Rewrap(context.Background(), e, ad); err != nil && !errors.Is(err, crypto.ErrFormat) && !errors.Is(err, crypto.ErrUnwrap) {
			t.Fatalf("Rewrap: unexpected error: %v", err)
		}
	})
}

var benchSecret = []byte("Zx98Q~abcDEF.ghiJKL_mnoPQRstuVWXyz0123456") // 40 bytes, like an Entra secret

func BenchmarkSeal(b *testing.B) {
	k := mustKeyring(b, entry("k1", key1), "")
	ad := crypto.AssociatedData("acct-1", "6f1c0d3e-8a52-4c1e-9b7a-0d1f2e3c4b5a")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Seal(ctx, benchSecret, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := mustKeyring(b, entry("k1", key1), "")
	ad := crypto.AssociatedData("acct-1", "6f1c0d3e-8a52-4c1e-9b7a-0d1f2e3c4b5a")
	ctx := context.Background()
	env := mustSeal(b, k, benchSecret, ad)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(ctx, env, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRewrap(b *testing.B) {
	old := mustKeyring(b, entry("k1", key1), "")
	k := mustKeyring(b, entry("k1", key1)+","+entry("k2", key2), "k2")
	ad := crypto.AssociatedData("acct-1", "6f1c0d3e-8a52-4c1e-9b7a-0d1f2e3c4b5a")
	ctx := context.Background()
	env := mustSeal(b, old, benchSecret, ad)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Rewrap(ctx, env, ad); err != nil {
			b.Fatal(err)
		}
	}
}
