package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/store"
)

// Reading requests: JSON bodies one field at a time, path ids and paging.

// maxBodyBytes bounds every request body (contract: 413 above 64 KiB).
const maxBodyBytes = 64 << 10

// object is a request body decoded one level deep. Fields are decoded one by
// one so that every unknown field and every value of the wrong type becomes
// its own 422 entry, instead of the first one stopping the decoder.
type object struct {
	raw  map[string]json.RawMessage
	errs []fieldError
	seen map[string]bool
}

// decodeObject reads a JSON object body: 415 unless it is JSON, 413 when it
// is too large, 400 when it is not a single well-formed JSON object.
func decodeObject(w http.ResponseWriter, r *http.Request) (*object, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, newProblem(http.StatusUnsupportedMediaType, typeMediaType, "Send the body as JSON.",
			"Set the Content-Type header to application/json.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, newProblem(http.StatusBadRequest, typeMalformed, "The request body could not be read.", "")
	}
	var raw map[string]json.RawMessage // Unmarshal refuses anything after the object, too
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, malformed(err)
	}
	return &object{raw: raw, seen: map[string]bool{}}, nil
}

// malformed describes a JSON syntax error with its byte offset, never the
// body itself (it may hold a secret).
func malformed(err error) error {
	detail := "The body must be a JSON object."
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		detail = fmt.Sprintf("JSON syntax error at byte %d.", syn.Offset)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		detail = "The body is empty or ends too early."
	}
	return newProblem(http.StatusBadRequest, typeMalformed, "The request body is not valid JSON.", detail)
}

func (o *object) add(field, code, msg string) {
	o.errs = append(o.errs, fieldError{Field: field, Code: code, Message: msg})
}

// has reports whether the body holds the field, even as null.
func (o *object) has(field string) bool {
	_, ok := o.raw[field]
	return ok
}

// isNull reports whether the field is present with the value null.
func (o *object) isNull(field string) bool {
	v, ok := o.raw[field]
	return ok && string(bytes.TrimSpace(v)) == "null"
}

// str returns a string field; ok is false when it is absent, null, or of the
// wrong type (the last is recorded as an error).
func (o *object) str(field string) (string, bool) {
	o.seen[field] = true
	v, ok := o.raw[field]
	if !ok || o.isNull(field) {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		o.add(field, "invalid_type", "This field must be a text value in double quotes.")
		return "", false
	}
	return s, true
}

// boolean returns a true/false field, as str does.
func (o *object) boolean(field string) (bool, bool) {
	o.seen[field] = true
	v, ok := o.raw[field]
	if !ok || o.isNull(field) {
		return false, false
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		o.add(field, "invalid_type", "This field must be true or false.")
		return false, false
	}
	return b, true
}

// strList returns a field that is a list of text values, as str does.
func (o *object) strList(field string) ([]string, bool) {
	o.seen[field] = true
	v, ok := o.raw[field]
	if !ok || o.isNull(field) {
		return nil, false
	}
	var list []string
	if err := json.Unmarshal(v, &list); err != nil || list == nil {
		o.add(field, "invalid_type", "This field must be a list of text values, such as [\"connection.status_changed\"].")
		return nil, false
	}
	return list, true
}

// timestamp returns an RFC 3339 timestamp field, as str does.
func (o *object) timestamp(field string) (time.Time, bool) {
	s, ok := o.str(field)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		o.add(field, "invalid_timestamp", "Must be a date and time in RFC 3339 form, for example 2027-05-31T00:00:00Z.")
		return time.Time{}, false
	}
	return t, true
}

// reject reports fields that parseConnectionFields would take but this
// endpoint does not, as unknown fields.
func (o *object) reject(fields ...string) {
	for _, f := range fields {
		if o.has(f) {
			o.add(f, "unknown_field", fmt.Sprintf("This endpoint does not take %q.", f))
			delete(o.raw, f)
		}
	}
}

// finish reports unknown fields (so a typo such as clientId is caught rather
// than ignored) and returns every collected error, or nil.
func (o *object) finish() error {
	var unknown []string
	for k := range o.raw {
		if !o.seen[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		o.add(k, "unknown_field", fmt.Sprintf("Unknown field %q.%s", k, suggest(k)))
	}
	if len(o.errs) > 0 {
		return &validationError{fields: o.errs}
	}
	return nil
}

// suggest names the field a common typo meant.
func suggest(field string) string {
	known := map[string]string{
		"clientId": "client_id", "clientID": "client_id", "client-id": "client_id", "clientSecret": "client_secret",
		"client-secret": "client_secret", "instanceUrl": "instance_url", "instanceURL": "instance_url", "url": "instance_url",
		"resource_url": "instance_url", "resourceUrl": "instance_url", "tenantId": "tenant_id", "tenantID": "tenant_id",
		"client_secret_value": "client_secret", "clientSecretExpiresAt": "client_secret_expires_at",
	}
	if s, ok := known[field]; ok {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

// connectionID parses the {id} of a connection's path: once, here, so that
// everything below gets a uuid.
func connectionID(r *http.Request) (uuid.UUID, error) {
	return parseConnectionID(chi.URLParam(r, "id"))
}

// parseConnectionID parses a connection id. Anything that is not a uuid
// cannot name a connection, so it is answered as an unknown id is: 404.
func parseConnectionID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, store.ErrNotFound
	}
	return id, nil
}

// webhookID parses the {id} of a webhook's path; anything but a uuid is an
// unknown id: 404.
func webhookID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		return uuid.UUID{}, store.ErrWebhookNotFound
	}
	return id, nil
}

// parsePage reads limit and cursor; limit is 1–200, default 50.
func parsePage(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Limit: store.DefaultLimit, Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxLimit {
			return p, &validationError{fields: []fieldError{{Field: "limit", Code: "out_of_range", Message: "limit must be a whole number from 1 to 200."}}}
		}
		p.Limit = n
	}
	return p, nil
}
