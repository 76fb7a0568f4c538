package api

import (
	"context"
	"fmt"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
)

// seal encrypts a client secret for the row (account, id): the associated
// data binds the ciphertext to that row, so it can't be moved to another.
func seal(ctx context.Context, keys *crypto.Keyring, account, id string, s secret.String) (model.SealedSecret, error) {
	env, err := keys.Seal(ctx, []byte(s.Reveal()), crypto.AssociatedData(account, id))
	if err != nil {
		return model.SealedSecret{}, fmt.Errorf("seal client secret: %w", err)
	}
	return model.SealedSecret(env), nil
}

// open decrypts a connection's client secret.
func open(ctx context.Context, keys *crypto.Keyring, c model.Connection) (secret.String, error) {
	b, err := keys.Open(ctx, crypto.Envelope(c.Secret), crypto.AssociatedData(c.Account, c.ID))
	if err != nil {
		return "", fmt.Errorf("open client secret of connection %s: %w", c.ID, err)
	}
	return secret.String(b), nil
}

// credentialsOf is what a test of c with the client secret s sends
// Microsoft.
func credentialsOf(c model.Connection, s secret.String) dynamics.Credentials {
	cr := dynamics.Credentials{InstanceURL: c.InstanceURL, ClientID: c.ClientID, ClientSecret: s}
	if c.TenantID != nil {
		cr.TenantID = *c.TenantID
	}
	return cr
}
