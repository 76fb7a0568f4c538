package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/dynconn/dynconn/internal/model"
)

// etag is the entity tag of a connection at a version, which grows with
// every change (including a stored test result, since that changes the
// resource).
func etag(version int64) string {
	return `"v` + strconv.FormatInt(version, 10) + `"`
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
		want := etag(c.Version)
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
