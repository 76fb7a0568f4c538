// Package webhook signs and sends one webhook delivery attempt, per
// Standard Webhooks v1 (microsoft-facts.md §12, design.md "Webhooks"), and
// checks endpoint URLs before they are stored. It knows no SQL and no
// schedule: package jobs decides when to send and records the outcome.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/dynconn/dynconn/internal/secret"
)

// SecretPrefix starts every signing secret, as Standard Webhooks libraries expect.
const SecretPrefix = "whsec_"

// secretBytes is the size of a signing key: the HMAC-SHA256 block is larger,
// but 256 bits is the strength of the hash.
const secretBytes = 32

// The Standard Webhooks headers (lower case, as the spec writes them).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// errSecret is a secret that is not "whsec_" and base64.
var errSecret = errors.New("webhook secret is not whsec_ followed by base64")

// NewSecret returns a new signing secret: "whsec_" + base64 of 32 random bytes.
func NewSecret() secret.String {
	key := make([]byte, secretBytes)
	_, _ = rand.Read(key) // never fails: crypto/rand crashes the program instead
	return secret.String(SecretPrefix + base64.StdEncoding.EncodeToString(key))
}

// Sign returns the webhook-signature header value for a message: "v1," and
// the base64 HMAC-SHA256, under the key that s encodes, of
// "{id}.{unix seconds}.{body}".
func Sign(s secret.String, id string, ts time.Time, body []byte) (string, error) {
	encoded, ok := strings.CutPrefix(s.Reveal(), SecretPrefix)
	if !ok {
		return "", errSecret
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(key) == 0 {
		return "", errSecret // the base64 error would quote the secret's bytes
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}
