package store

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Page limits.
const (
	// DefaultLimit is the page size when Page.Limit is zero.
	DefaultLimit = 50
	// MaxLimit is the largest page size; larger limits are clamped to it.
	MaxLimit = 200
)

// Page selects a page of a list.
type Page struct {
	// Limit is the page size: 0 means DefaultLimit, and values outside
	// 1..MaxLimit are clamped. The API validates it before this.
	Limit int
	// Cursor is "" for the first page, else a nextCursor from the previous page.
	Cursor string
}

// limit returns p.Limit clamped to 1..MaxLimit, with 0 as DefaultLimit.
func (p Page) limit() int {
	switch {
	case p.Limit == 0:
		return DefaultLimit
	case p.Limit < 1:
		return 1
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// cut trims rows, which a list query fetched with a LIMIT of limit+1, to the
// page, and returns the cursor of the next page, made by cursor from the
// page's last row, or "" on the last page. The one row more than asked tells
// whether there is a next page, so the last page says so and the client
// never fetches an empty one.
func cut[T any](rows []T, limit int, cursor func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursor(rows[limit-1])
}

// cursorSep separates the two parts of a keyset cursor; neither a timestamp
// nor a uuid contains it.
const cursorSep = "|"

// encodeCursor returns the opaque cursor that continues after the row with
// createdAt and id, for lists in (created_at, id) order. Postgres keeps
// microseconds, which RFC 3339 with nanoseconds carries exactly.
func encodeCursor(createdAt time.Time, id string) string {
	raw := createdAt.UTC().Format(time.RFC3339Nano) + cursorSep + id
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor reverses encodeCursor, returning ErrInvalidCursor for anything
// that encodeCursor cannot have made.
func decodeCursor(cursor string) (time.Time, uuid.UUID, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, uuid.UUID{}, ErrInvalidCursor
	}
	ts, rawID, ok := strings.Cut(string(raw), cursorSep)
	if !ok {
		return time.Time{}, uuid.UUID{}, ErrInvalidCursor
	}
	createdAt, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, uuid.UUID{}, ErrInvalidCursor
	}
	id, err := uuid.Parse(rawID)
	if err != nil {
		return time.Time{}, uuid.UUID{}, ErrInvalidCursor
	}
	return createdAt, id, nil
}

// keysetAfter returns the query arguments that continue a (created_at, id)
// list after cursor: both nil for the first page ("").
func keysetAfter(cursor string) (*time.Time, *uuid.UUID, error) {
	if cursor == "" {
		return nil, nil, nil
	}
	t, id, err := decodeCursor(cursor)
	if err != nil {
		return nil, nil, err
	}
	return &t, &id, nil
}

// encodeIDCursor makes the opaque cursor of lists ordered by a descending
// identity column: the next page holds the ids below it.
func encodeIDCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("id:" + strconv.FormatInt(id, 10)))
}

// decodeIDCursor reverses encodeIDCursor; "" is 0, the first page.
func decodeIDCursor(cursor string) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) < 4 || string(raw[:3]) != "id:" {
		return 0, ErrInvalidCursor
	}
	id, err := strconv.ParseInt(string(raw[3:]), 10, 64)
	if err != nil || id <= 0 {
		return 0, ErrInvalidCursor
	}
	return id, nil
}
