package api

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"regexp"

	"github.com/dynconn/dynconn/internal/store"
)

// validIdempotencyKey bounds what is stored as a key.
var validIdempotencyKey = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

// idempotencyKey reads the Idempotency-Key header; ok is false without one.
// The request hash covers the decoded body in a canonical form, so the same
// fields sent with other white space or key order count as the same request.
func idempotencyKey(r *http.Request, o *object) (store.IdempotencyKey, bool, error) {
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
	h := sha256.Sum256(canonical)
	return store.IdempotencyKey{Key: key, RequestHash: h[:]}, true, nil
}
