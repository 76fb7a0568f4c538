package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/dynconn/dynconn/internal/model"
)

// Service keys are keys dynconn itself needs (the key of idempotency request
// hashes), kept sealed as client secrets are. Sealing and opening them is the
// caller's job, as for secrets.

// ErrServiceKeyChanged means a service key was re-sealed by another server
// since the caller read it.
var ErrServiceKeyChanged = errors.New("service key changed since it was read")

// ServiceKey returns the sealed service key named name. If there is none, it
// stores sealed and returns it: when several servers start at once the first
// to store its key wins and every one gets that key.
func (s *Store) ServiceKey(ctx context.Context, name string, sealed model.SealedSecret) (model.SealedSecret, error) {
	// The SELECT does not see the row the INSERT adds (one snapshot), so
	// exactly one of the two returns a row.
	const q = `
WITH added AS (
	INSERT INTO service_keys (name, ciphertext, wrapped_dek, kek_id) VALUES ($1, $2, $3, $4)
	ON CONFLICT (name) DO NOTHING
	RETURNING ciphertext, wrapped_dek, kek_id
)
SELECT ciphertext, wrapped_dek, kek_id FROM added
UNION ALL
SELECT ciphertext, wrapped_dek, kek_id FROM service_keys WHERE name = $1`
	var k model.SealedSecret
	err := s.pool.QueryRow(ctx, q, name, sealed.Ciphertext, sealed.WrappedDEK, sealed.KEKID).Scan(&k.Ciphertext, &k.WrappedDEK, &k.KEKID)
	if err != nil {
		return model.SealedSecret{}, fmt.Errorf("service key %s: %w", name, err)
	}
	return k, nil
}

// ReplaceServiceKey stores resealed as the service key named name if it is
// still sealed as old (ServiceKey's answer), and returns ErrServiceKeyChanged
// if it is not: another server got there first.
func (s *Store) ReplaceServiceKey(ctx context.Context, name string, old, resealed model.SealedSecret) error {
	tag, err := s.pool.Exec(ctx, `
UPDATE service_keys SET ciphertext = $4, wrapped_dek = $5, kek_id = $6
WHERE name = $1 AND kek_id = $2 AND wrapped_dek = $3`,
		name, old.KEKID, old.WrappedDEK, resealed.Ciphertext, resealed.WrappedDEK, resealed.KEKID)
	if err != nil {
		return fmt.Errorf("replace service key %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrServiceKeyChanged
	}
	return nil
}
