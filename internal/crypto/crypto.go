// Package crypto seals secrets at rest (connections' client secrets, the
// private keys of certificate credentials, webhook signing secrets) with
// envelope encryption.
//
// Each secret gets its own fresh random 256-bit data key (DEK). The secret is
// sealed with the DEK using AES-256-GCM, with associated data that binds it to
// its account and connection id (see AssociatedData), so a ciphertext copied to
// another row, or altered, fails to open. The DEK is then wrapped by a
// key-encryption key (KEK) from a Keyring, with the same associated data, and
// the row stores the result as an Envelope: ciphertext, wrapped DEK and the
// KEK's id. Plaintext DEKs and KEKs never leave the process.
//
// Per-secret DEKs keep each KEK's workload small (one 32-byte wrap per secret,
// whatever the secret's size) and make key rotation cheap: Rewrap re-wraps the
// DEK under the active KEK and leaves the ciphertext as it is.
//
// # The KMS seam
//
// The KEK side is the KEK interface: an id plus WrapKey and UnwrapKey. The one
// implementation today is local (NewLocalKEK, ParseKeyring, LoadKeyring: AES-256-GCM
// with a 32-byte key from ENCRYPTION_KEYS or ENCRYPTION_KEYS_FILE). A cloud KMS
// (AWS KMS Encrypt/Decrypt with EncryptionContext, Azure Key Vault wrapKey/unwrapKey,
// Vault Transit encrypt/decrypt with context) plugs in by implementing KEK and
// passing it to NewKeyring; the store and the API only ever see a *Keyring and an
// Envelope, so neither changes. Such an implementation must:
//
//   - return an ID that is stable, unique within the keyring and short enough
//     for the kek_id column (it is stored with every row and is not secret);
//   - bind associatedData to the wrapped key, so that unwrapping with other
//     associated data fails;
//   - return an error wrapping ErrUnwrap when the KMS rejects the wrapped key
//     as not authentic, and an ordinary error for transient failures (network,
//     throttling), so callers can tell "this row is damaged" from "try again";
//   - be safe for concurrent use.
//
// # Formats
//
// Envelope.Ciphertext is version (1 byte, 0x01) || nonce (12 bytes) ||
// AES-256-GCM ciphertext || tag (16 bytes). A local KEK's wrapped DEK has the
// same layout with the KEK in place of the DEK. The version byte lets the
// layout change later without guessing.
//
// All types are safe for concurrent use.
package crypto

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned by Open, Rewrap and the KEKs. Test them with errors.Is; the
// messages never contain key material or plaintext.
var (
	// ErrUnknownKey means the envelope names a KEK id that is not in the
	// keyring. The wrapping error names the id (ids are not secret).
	ErrUnknownKey = errors.New("unknown key-encryption key")

	// ErrUnwrap means the wrapped DEK did not authenticate under its KEK.
	// AES-GCM cannot tell why: the wrapped DEK was altered, the KEK material
	// loaded under that id is not the one that wrapped it, or the associated
	// data differs (the envelope was moved to another row). All three look the
	// same, so they share one error.
	ErrUnwrap = errors.New("cannot unwrap data key")

	// ErrDecrypt means the ciphertext did not authenticate under its DEK: it
	// was altered, or the associated data differs. A moved envelope normally
	// fails earlier with ErrUnwrap, since the DEK is wrapped with the same
	// associated data.
	ErrDecrypt = errors.New("cannot decrypt secret")

	// ErrFormat means the bytes are not in a layout this package writes: an
	// unknown version byte, or too short to hold a nonce and a tag.
	ErrFormat = errors.New("malformed sealed data")
)

// Envelope is a sealed secret as stored. Its fields match model.SealedSecret
// exactly, so model.SealedSecret(env) and Envelope(sealed) convert both ways.
type Envelope struct {
	// Ciphertext is the secret sealed with its DEK (see the package doc for the layout).
	Ciphertext []byte
	// WrappedDEK is the DEK as wrapped by the KEK named by KEKID.
	WrappedDEK []byte
	// KEKID names the KEK that wrapped the DEK.
	KEKID string
}

const (
	// formatV1: version || 96-bit random nonce || AES-256-GCM ciphertext || tag.
	// Do not change the meaning of a version byte once written: add a new one.
	formatV1 = 0x01

	keySize     = 32              // AES-256, for DEKs and local KEKs
	gcmOverhead = 12 + 16         // nonce + tag, as NewGCMWithRandomNonce lays them out
	minSealed   = 1 + gcmOverhead // version byte + an empty payload
	// Domain separation: each kind of sealed value has its own label.
	adLabel               = "dynconn.secret.1"          // client secrets
	adLabelCertificateKey = "dynconn.certificate-key.1" // certificates' private keys
	adLabelWebhook        = "dynconn.webhook-secret.1"  // webhook signing secrets
)

// AssociatedData returns the associated data that binds a sealed secret to
// its row: the account and connection id. Each part is length-prefixed, so no
// two different (account, connectionID) pairs encode to the same bytes
// ("ab","c" and "a","bc" differ). Callers must pass the connection id in one
// canonical spelling (the lower-case UUID string), or the secret will not open.
func AssociatedData(account, connectionID string) []byte {
	return associatedData(adLabel, account, connectionID)
}

// CertificateKeyAssociatedData returns the associated data that binds the
// sealed private key of a connection's certificate to its row and to its
// slot ("current" or "next"), so that a key cannot be moved to another row,
// to the other slot, or into a client secret's place (its label differs).
// The same rules as AssociatedData apply to the connection id.
func CertificateKeyAssociatedData(account, connectionID, slot string) []byte {
	return associatedData(adLabelCertificateKey, account, connectionID, slot)
}

// WebhookAssociatedData is AssociatedData for a webhook endpoint's signing
// secret: bound to the account and the webhook id, under its own label, so a
// webhook's sealed secret never opens as a connection's, or the other way
// round, even under one id.
func WebhookAssociatedData(account, webhookID string) []byte {
	return associatedData(adLabelWebhook, account, webhookID)
}

// associatedData is label followed by each part, length-prefixed.
func associatedData(label string, parts ...string) []byte {
	n := len(label)
	for _, p := range parts {
		n += 4 + len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, label...)
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// Seal encrypts plaintext under a fresh random DEK, bound to ad (see
// AssociatedData), and wraps the DEK with the active KEK using the same ad.
// Errors come only from the KEK (a KMS can fail); they never hold the plaintext.
func (k *Keyring) Seal(ctx context.Context, plaintext, ad []byte) (Envelope, error) {
	dek := make([]byte, keySize)
	defer clear(dek)
	rand.Read(dek) // never fails since Go 1.24: it crashes the program instead

	aead, err := newAEAD(dek)
	if err != nil {
		return Envelope{}, fmt.Errorf("seal: %w", err)
	}
	ct := make([]byte, 1, minSealed+len(plaintext))
	ct[0] = formatV1
	ct = aead.Seal(ct, nil, plaintext, ad)

	wrapped, err := k.active.WrapKey(ctx, dek, ad)
	if err != nil {
		return Envelope{}, fmt.Errorf("wrap data key with %q: %w", k.active.ID(), err)
	}
	return Envelope{Ciphertext: ct, WrappedDEK: wrapped, KEKID: k.active.ID()}, nil
}

// Open returns the plaintext of env, which must have been sealed with the same
// ad. It returns an error wrapping ErrFormat if the ciphertext is malformed,
// ErrUnknownKey if env.KEKID is not in the keyring, ErrUnwrap if the DEK does
// not unwrap, ErrDecrypt if the ciphertext does not authenticate, or the KEK's
// own error if a remote KMS fails. The caller owns the returned slice and may
// clear it after use.
func (k *Keyring) Open(ctx context.Context, env Envelope, ad []byte) ([]byte, error) {
	// Check the cheap, local things before a (possibly remote) unwrap.
	if err := checkSealed(env.Ciphertext); err != nil {
		return nil, fmt.Errorf("open ciphertext: %w", err)
	}
	dek, err := k.unwrap(ctx, env, ad)
	if err != nil {
		return nil, err
	}
	defer clear(dek)

	aead, err := newAEAD(dek)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	plaintext, err := aead.Open(nil, nil, env.Ciphertext[1:], ad)
	if err != nil {
		return nil, ErrDecrypt // GCM's error says nothing more
	}
	return plaintext, nil
}

// Rewrap returns env with its DEK wrapped by the active KEK instead of the one
// named by env.KEKID, for key rotation. The ciphertext is unchanged (the same
// slice), and so is the secret's DEK. If env is already under the active KEK,
// Rewrap returns env as it is without calling any KEK. Errors are those of
// Open's unwrap step (ErrUnknownKey, ErrUnwrap, ErrFormat) or of the KEKs.
func (k *Keyring) Rewrap(ctx context.Context, env Envelope, ad []byte) (Envelope, error) {
	if env.KEKID == k.active.ID() {
		return env, nil
	}
	dek, err := k.unwrap(ctx, env, ad)
	if err != nil {
		return Envelope{}, err
	}
	defer clear(dek)
	wrapped, err := k.active.WrapKey(ctx, dek, ad)
	if err != nil {
		return Envelope{}, fmt.Errorf("wrap data key with %q: %w", k.active.ID(), err)
	}
	return Envelope{Ciphertext: env.Ciphertext, WrappedDEK: wrapped, KEKID: k.active.ID()}, nil
}

// unwrap returns env's plaintext DEK, which the caller must clear.
func (k *Keyring) unwrap(ctx context.Context, env Envelope, ad []byte) ([]byte, error) {
	kek, err := k.KEK(env.KEKID)
	if err != nil {
		return nil, err
	}
	dek, err := kek.UnwrapKey(ctx, env.WrappedDEK, ad)
	if err != nil {
		return nil, fmt.Errorf("unwrap data key with %q: %w", env.KEKID, err)
	}
	if len(dek) != keySize { // only a misbehaving KMS KEK gets here
		clear(dek)
		return nil, fmt.Errorf("unwrap data key with %q: %d-byte key: %w", env.KEKID, len(dek), ErrFormat)
	}
	return dek, nil
}

// checkSealed returns an error wrapping ErrFormat unless b has a known version
// byte and room for a nonce and a tag.
func checkSealed(b []byte) error {
	if len(b) < minSealed {
		return fmt.Errorf("%d bytes, need at least %d: %w", len(b), minSealed, ErrFormat)
	}
	if b[0] != formatV1 {
		return fmt.Errorf("version byte %#02x: %w", b[0], ErrFormat)
	}
	return nil
}

// newAEAD returns AES-256-GCM with a random 96-bit nonce prepended by Seal and
// read back by Open. Random nonces are safe for up to 2^32 messages per key:
// a DEK seals one message, and a KEK should be rotated long before it wraps
// four billion DEKs.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err // only for a wrong key length, which callers rule out
	}
	return cipher.NewGCMWithRandomNonce(block)
}
