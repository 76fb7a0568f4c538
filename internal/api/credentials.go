package api

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
)

// seal encrypts a client secret for the row (account, id): the associated
// data binds the ciphertext to that row, so it can't be moved to another.
// checker.Credentials opens it again.
func seal(ctx context.Context, keys *crypto.Keyring, account, id string, s secret.String) (model.SealedSecret, error) {
	plaintext := []byte(s.Reveal())
	defer clear(plaintext) // the request's string itself cannot be cleared
	env, err := keys.Seal(ctx, plaintext, crypto.AssociatedData(account, id))
	if err != nil {
		return model.SealedSecret{}, fmt.Errorf("seal client secret: %w", err)
	}
	return model.SealedSecret(env), nil
}

// sealKey encrypts a certificate's private key (PKCS #8) for the row's
// slot: it opens only there, and only as a private key.
func sealKey(ctx context.Context, keys *crypto.Keyring, account, id string, slot model.CertificateSlot, key []byte) (model.SealedSecret, error) {
	env, err := keys.Seal(ctx, key, crypto.CertificateKeyAssociatedData(account, id, string(slot)))
	if err != nil {
		return model.SealedSecret{}, fmt.Errorf("seal private key: %w", err)
	}
	return model.SealedSecret(env), nil
}

// newCertificate makes a key pair and a self-signed certificate for the
// connection's slot, valid from now for validity, and seals the private key;
// the plaintext key is cleared before it returns.
func newCertificate(ctx context.Context, keys *crypto.Keyring, account, id string, slot model.CertificateSlot,
	now time.Time, validity time.Duration) (*model.Certificate, error) {
	cert, key, err := credential.Generate(uuid.MustParse(id), now, validity)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	sealed, err := sealKey(ctx, keys, account, id, slot, key)
	if err != nil {
		return nil, err
	}
	return &model.Certificate{DER: cert.DER, Thumbprint: cert.Thumbprint, ThumbprintSHA256: cert.ThumbprintSHA256,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Key: sealed}, nil
}

// resealKey moves the sealed private key of a certificate from one slot of
// the connection to another (activation makes next current): the associated
// data names the slot, so the key is opened and sealed again.
func resealKey(ctx context.Context, keys *crypto.Keyring, c model.Connection, from, to model.CertificateSlot, sealed model.SealedSecret) (model.SealedSecret, error) {
	key, err := checker.OpenKey(ctx, keys, c, from, sealed)
	if err != nil {
		return model.SealedSecret{}, err
	}
	defer clear(key)
	return sealKey(ctx, keys, c.Account, c.ID, to, key)
}
