package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// validIdempotencyKey bounds what is stored as a key.
var validIdempotencyKey = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

// idempotencyKey reads the Idempotency-Key header; ok is false without one.
// The request hash covers the decoded body in a canonical form, so the same
// fields sent with other white space or key order count as the same request.
// It is keyed (requestHash), because the body holds the client secret.
func idempotencyKey(r *http.Request, o *object, hashKey []byte) (store.IdempotencyKey, bool, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return store.IdempotencyKey{}, false, nil
	}
	if !validIdempotencyKey.MatchString(key) {
		return store.IdempotencyKey{}, false, &validationError{fields: []fieldError{{Field: "Idempotency-Key", Code: "invalid_header",
			Message: "The Idempotency-Key header must be 1 to 255 visible ASCII characters, such as a UUID."}}}
	}
	canonical, err := json.Marshal(o.raw) // sorted keys, compacted values
	if err != nil {
		return store.IdempotencyKey{}, false, err
	}
	account := principalFrom(r.Context()).Account
	return store.IdempotencyKey{Key: key, RequestHash: requestHash(hashKey, account, key, canonical)}, true, nil
}

// requestHash is HMAC-SHA256, under hashKey, of the account, the idempotency
// key and the canonical body, each length-prefixed. Keyed, a stored hash is
// of no use to someone who reads the database but not the keyring: they
// cannot test a guessed secret against it, and equal requests of different
// accounts do not have equal hashes.
func requestHash(hashKey []byte, account, key string, body []byte) []byte {
	mac := hmac.New(sha256.New, hashKey)
	for _, part := range [][]byte{[]byte(account), []byte(key), body} {
		_, _ = mac.Write(binary.BigEndian.AppendUint32(nil, uint32(len(part))))
		_, _ = mac.Write(part)
	}
	return mac.Sum(nil)
}

// requestHashKeyName names the service key of request hashes (migration 000008).
const requestHashKeyName = "idempotency_request_hash"

// requestHashKeySize is the size of the request hash key, in bytes.
const requestHashKeySize = 32

// LoadRequestHashKey returns the key of idempotency request hashes, for
// Options.RequestHashKey. It is a random 256-bit key that the first server
// to start on a database makes and stores sealed under the keyring, as a
// client secret is: the keyring protects it, and it needs no configuration.
//
// The key itself never changes, so neither do stored hashes: key rotation
// only re-wraps its data key. A server that finds it under a key-encryption
// key other than the active one re-wraps it under the active one; rotation
// restarts every server with the new active key (docs/key-rotation.md, step
// 3) before the old key is retired, so the old key is free to go by then.
// If its key-encryption key is not loaded, start-up fails saying which.
func LoadRequestHashKey(ctx context.Context, st *store.Store, keys *crypto.Keyring) ([]byte, error) {
	ad := crypto.ServiceKeyAssociatedData(requestHashKeyName)
	fresh := make([]byte, requestHashKeySize)
	rand.Read(fresh) // never fails since Go 1.24
	sealedFresh, err := keys.Seal(ctx, fresh, ad)
	clear(fresh)
	if err != nil {
		return nil, fmt.Errorf("request hash key: %w", err)
	}
	sealed, err := st.ServiceKey(ctx, requestHashKeyName, model.SealedSecret(sealedFresh))
	if err != nil {
		return nil, err
	}
	key, err := keys.Open(ctx, crypto.Envelope(sealed), ad)
	if errors.Is(err, crypto.ErrUnknownKey) {
		return nil, fmt.Errorf("request hash key: it is wrapped by the encryption key %q, which is not loaded: add it to the keyring (ENCRYPTION_KEYS)", sealed.KEKID)
	}
	if err != nil {
		return nil, fmt.Errorf("request hash key: %w", err)
	}
	if len(key) != requestHashKeySize {
		return nil, fmt.Errorf("request hash key: %d bytes, want %d", len(key), requestHashKeySize)
	}
	if sealed.KEKID != keys.ActiveID() {
		resealed, err := keys.Rewrap(ctx, crypto.Envelope(sealed), ad)
		if err != nil {
			return nil, fmt.Errorf("request hash key: re-wrap under the active key: %w", err)
		}
		err = st.ReplaceServiceKey(ctx, requestHashKeyName, sealed, model.SealedSecret(resealed))
		if err != nil && !errors.Is(err, store.ErrServiceKeyChanged) { // another server did it
			return nil, err
		}
	}
	return key, nil
}
