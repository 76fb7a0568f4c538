package api

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// etag is a connection's entity tag: its version, which grows with every
// change (including a stored test result, since that changes the resource).
func etag(c model.Connection) string {
	return `"v` + strconv.FormatInt(c.Version, 10) + `"`
}

// errPreconditionFailed answers an If-Match that no longer matches.
var errPreconditionFailed = newProblem(http.StatusPreconditionFailed, typePrecondition,
	"The connection changed since you read it.",
	"Fetch it again, reapply your change, and send its new ETag in If-Match.")

// ifMatch returns a check for a conditional PATCH or DELETE: without an
// If-Match header every version passes (last write wins); with one, only a
// connection whose ETag it lists, or any with "*". Comparison is strong, as
// RFC 9110 requires for If-Match, so weak tags never match.
func ifMatch(r *http.Request) func(model.Connection) error {
	header := r.Header.Values("If-Match")
	if len(header) == 0 {
		return func(model.Connection) error { return nil }
	}
	return func(c model.Connection) error {
		want := etag(c)
		for _, h := range header {
			for _, tag := range strings.Split(h, ",") {
				tag = strings.TrimSpace(tag)
				if tag == "*" || tag == want {
					return nil
				}
			}
		}
		return errPreconditionFailed
	}
}

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
