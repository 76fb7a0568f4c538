package api

import (
	"context"
	"fmt"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
)

// seal encrypts a client secret for the row (account, id): the associated
// data binds the ciphertext to that row, so it can't be moved to another.
// checker.Open is its reverse.
func seal(ctx context.Context, keys *crypto.Keyring, account, id string, s secret.String) (model.SealedSecret, error) {
	env, err := keys.Seal(ctx, []byte(s.Reveal()), crypto.AssociatedData(account, id))
	if err != nil {
		return model.SealedSecret{}, fmt.Errorf("seal client secret: %w", err)
	}
	return model.SealedSecret(env), nil
}
