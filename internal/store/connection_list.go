package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dynconn/dynconn/internal/model"
)

// Filter narrows a list of connections.
type Filter struct {
	// SecretState keeps only connections whose credential is in this state
	// at Now ("" keeps all): the secret's, or the certificate's for a
	// certificate connection. The rule is model.Connection.SecretState's and
	// model.Certificate.State's.
	SecretState model.SecretState
	// Status keeps only connections with this status ("" keeps all).
	Status model.Status
	// Now is the time secret states are judged at.
	Now time.Time
}

// stateFilter is one secret state as an SQL condition on the parameters
// from $6 on, and those parameters' values at a given time.
type stateFilter struct {
	cond string
	args func(now time.Time) []any
}

// secretStateSQL is those states as SQL. A certificate
// connection has a cert_not_after and no secret_expires_at or
// secret_expired_at, a secret connection no cert_not_after (the table's
// constraints), so COALESCE picks the credential's expiry.
var secretStateSQL = map[model.SecretState]stateFilter{
	model.SecretExpired: {`(secret_expired_at IS NOT NULL OR COALESCE(cert_not_after, secret_expires_at) <= $6)`,
		func(now time.Time) []any { return []any{now} }},
	model.SecretExpiring: {`(secret_expired_at IS NULL AND COALESCE(cert_not_after, secret_expires_at) > $6
		AND COALESCE(cert_not_after, secret_expires_at) <= $7)`,
		func(now time.Time) []any { return []any{now, now.Add(model.ExpiringWithin)} }},
	model.SecretValid: {`(secret_expired_at IS NULL AND COALESCE(cert_not_after, secret_expires_at) > $6)`,
		func(now time.Time) []any { return []any{now.Add(model.ExpiringWithin)} }},
	model.SecretUnknown: {`(secret_expired_at IS NULL AND COALESCE(cert_not_after, secret_expires_at) IS NULL)`,
		func(time.Time) []any { return nil }},
}

const listConnections = `
SELECT ` + connectionColumns + ` FROM connections
WHERE account = $1 AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid))
	AND ($5::text = '' OR status = $5) AND %s
ORDER BY created_at, id
LIMIT $2`

// Connections returns a page of the account's connections that pass f,
// oldest first (by created_at, then id for rows created in the same
// microsecond), and the cursor of the next page, "" on the last page.
// Pagination is by keyset, so rows created or deleted between pages neither
// repeat nor shift others.
//
// It returns ErrInvalidCursor if p.Cursor is not a cursor it returned.
func (s *Store) Connections(ctx context.Context, account string, p Page, f Filter) (items []model.Connection, nextCursor string, err error) {
	limit := p.limit()
	state := stateFilter{cond: "true", args: func(time.Time) []any { return nil }}
	if f.SecretState != "" {
		var ok bool
		if state, ok = secretStateSQL[f.SecretState]; !ok {
			return nil, "", fmt.Errorf("unknown secret state %q", f.SecretState)
		}
	}
	createdAt, afterID, err := keysetAfter(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	args := append([]any{account, limit + 1, createdAt, afterID, string(f.Status)}, state.args(f.Now)...)
	rows, _ := s.pool.Query(ctx, fmt.Sprintf(listConnections, state.cond), args...)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[connectionRow])
	if err != nil {
		return nil, "", fmt.Errorf("list connections: %w", err)
	}
	list, nextCursor = cut(list, limit, func(r connectionRow) string { return encodeCursor(r.CreatedAt, r.ID) })
	items = make([]model.Connection, len(list))
	for i, r := range list {
		items[i] = r.toModel()
	}
	return items, nextCursor, nil
}
