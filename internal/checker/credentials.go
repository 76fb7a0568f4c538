package checker

import (
	"context"
	"fmt"

	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/model"
)

// OpenKey decrypts the private key of the certificate in the connection's
// slot. The caller clears it.
func OpenKey(ctx context.Context, keys *crypto.Keyring, c model.Connection, slot model.CertificateSlot, sealed model.SealedSecret) ([]byte, error) {
	key, err := keys.Open(ctx, crypto.Envelope(sealed), crypto.CertificateKeyAssociatedData(c.Account, c.ID, string(slot)))
	if err != nil {
		return nil, fmt.Errorf("open private key of the %s certificate of connection %s: %w", slot, c.ID, err)
	}
	return key, nil
}

// Credentials opens what a test or a token request of c signs in with: the
// certificate in slot when c has one there (SlotNext: the pending
// certificate), else the client secret. The decrypted secret and private key
// stay in memory only as bytes the caller clears, with Clear, when done.
func Credentials(ctx context.Context, keys *crypto.Keyring, c model.Connection, slot model.CertificateSlot) (dynamics.Credentials, error) {
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
	key, err := OpenKey(ctx, keys, c, slot, cert.Key)
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
