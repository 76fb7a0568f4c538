package crypto

import (
	"context"
	"crypto/cipher"
	"fmt"
)

// KEK is a key-encryption key: it wraps and unwraps data keys. It is the seam
// for a cloud KMS; see the package doc for what an implementation must do.
type KEK interface {
	// ID names the KEK. It is stored with every envelope the KEK wraps, so it
	// must never change for the same key material.
	ID() string

	// WrapKey encrypts dek, binding it to associatedData. It must not keep or
	// modify dek: the caller clears it afterwards.
	WrapKey(ctx context.Context, dek, associatedData []byte) ([]byte, error)

	// UnwrapKey returns the DEK inside wrapped, which must have been wrapped
	// with the same associatedData. It returns an error wrapping ErrUnwrap if
	// wrapped does not authenticate, or ErrFormat if it is not in the KEK's
	// layout. The caller owns the returned slice and clears it after use.
	UnwrapKey(ctx context.Context, wrapped, associatedData []byte) ([]byte, error)
}

// localKEK is a KEK held in process memory: AES-256-GCM under a 32-byte key,
// writing version || nonce || ciphertext || tag. It keeps only the expanded
// cipher, not the raw key, and has no String method that could print it.
type localKEK struct {
	id   string
	aead cipher.AEAD
}

var _ KEK = (*localKEK)(nil)

// NewLocalKEK returns a KEK that wraps with AES-256-GCM under key, which must
// be 32 bytes. It does not keep key: the caller may clear it afterwards. The
// id must be 1 to 64 characters from [A-Za-z0-9._-].
func NewLocalKEK(id string, key []byte) (KEK, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("key %q is %d bytes, need %d", id, len(key), keySize)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", id, err)
	}
	return &localKEK{id: id, aead: aead}, nil
}

// ID implements KEK.
func (k *localKEK) ID() string { return k.id }

// WrapKey implements KEK. It never fails; the error is there for KMS KEKs.
func (k *localKEK) WrapKey(_ context.Context, dek, associatedData []byte) ([]byte, error) {
	out := make([]byte, 1, minSealed+len(dek))
	out[0] = formatV1
	return k.aead.Seal(out, nil, dek, associatedData), nil
}

// UnwrapKey implements KEK.
func (k *localKEK) UnwrapKey(_ context.Context, wrapped, associatedData []byte) ([]byte, error) {
	if err := checkSealed(wrapped); err != nil {
		return nil, err
	}
	dek, err := k.aead.Open(nil, nil, wrapped[1:], associatedData)
	if err != nil {
		return nil, ErrUnwrap
	}
	return dek, nil
}
