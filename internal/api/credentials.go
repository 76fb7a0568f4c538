package api

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
)

// seal encrypts a client secret for the row (account, id): the associated
// data binds the ciphertext to that row, so it can't be moved to another.
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

// openKey decrypts the private key of the certificate in the connection's
// slot. The caller clears it.
func openKey(ctx context.Context, keys *crypto.Keyring, c model.Connection, slot model.CertificateSlot, sealed model.SealedSecret) ([]byte, error) {
	key, err := keys.Open(ctx, crypto.Envelope(sealed), crypto.CertificateKeyAssociatedData(c.Account, c.ID, string(slot)))
	if err != nil {
		return nil, fmt.Errorf("open private key of the %s certificate of connection %s: %w", slot, c.ID, err)
	}
	return key, nil
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
	key, err := openKey(ctx, keys, c, from, sealed)
	if err != nil {
		return model.SealedSecret{}, err
	}
	defer clear(key)
	return sealKey(ctx, keys, c.Account, c.ID, to, key)
}

// credentialsOf opens what a test or a token request of c signs in with: the
// certificate in slot when c has one there (SlotNext: the pending
// certificate), else the client secret. The decrypted secret and private key
// stay in memory only as bytes the caller clears, with Clear, when done.
func credentialsOf(ctx context.Context, keys *crypto.Keyring, c model.Connection, slot model.CertificateSlot) (dynamics.Credentials, error) {
	cr := dynamics.Credentials{InstanceURL: c.InstanceURL, ClientID: c.ClientID}
	if c.TenantID != nil {
		cr.TenantID = *c.TenantID
	}
	cert := c.Certificate
	if slot == model.SlotNext {
		cert = c.NextCertificate
	}
	if cert == nil {
		b, err := keys.Open(ctx, crypto.Envelope(c.Secret), crypto.AssociatedData(c.Account, c.ID))
		if err != nil {
			return dynamics.Credentials{}, fmt.Errorf("open client secret of connection %s: %w", c.ID, err)
		}
		cr.ClientSecret = b
		return cr, nil
	}
	key, err := openKey(ctx, keys, c, slot, cert.Key)
	if err != nil {
		return dynamics.Credentials{}, err
	}
	defer clear(key)
	signer, err := credential.NewSigner(cert.DER, key)
	if err != nil {
		return dynamics.Credentials{}, fmt.Errorf("signer for the %s certificate of connection %s: %w", slot, c.ID, err)
	}
	cr.Certificate = &dynamics.Certificate{Signer: signer, Thumbprint: cert.Thumbprint, NotAfter: cert.NotAfter}
	return cr, nil
}
