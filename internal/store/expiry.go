package store

import (
	"context"
	"fmt"

	"github.com/dynconn/dynconn/internal/model"
)

// Expiry notices (contract): connection.secret_expiring 30, 7 and 1 days
// before a connection's credential expires, each once per credential, and
// connection.secret_expired once it has. Which notice is due is the SQL
// function expiry_notice_due (migration 000005); the connection remembers the
// expiry it last notified for and the last notice (expiry_notice_for,
// expiry_notice_days), so a run that finds nothing new writes nothing, and a
// new expiry starts over.

// credentialExpiresAt is the hook for every credential that expires: the SQL
// expression, over a connections row, of when the credential a test would use
// expires. Today that is the client secret's expiry as the customer gave it.
// Certificate credentials make it the certificate's not_after for
// connections that use one (and hasCredentialExpiry agrees).
const credentialExpiresAt = `secret_expires_at`

// hasCredentialExpiry reports whether c's credential has an expiry, which is
// when credentialExpiresAt is not NULL.
func hasCredentialExpiry(c model.Connection) bool { return c.SecretExpiresAt != nil }

// sendExpiryNoticesSQL writes the notices that are due, for one connection
// ($1) or for all (NULL), and marks them sent, in one statement. Under READ
// COMMITTED the UPDATE re-checks its condition on a row that a concurrent run
// changed first, so two runs never send one notice twice.
const sendExpiryNoticesSQL = `
WITH due AS (
	SELECT id, ` + credentialExpiresAt + ` AS expires_at, expiry_notice_due(` + credentialExpiresAt + `) AS days
	FROM connections
	WHERE ($1::uuid IS NULL OR id = $1) AND ` + credentialExpiresAt + ` <= now() + interval '30 days'
), marked AS (
	UPDATE connections c SET expiry_notice_for = due.expires_at, expiry_notice_days = due.days
	FROM due
	WHERE c.id = due.id AND c.` + credentialExpiresAt + ` = due.expires_at
		AND (c.expiry_notice_for IS DISTINCT FROM due.expires_at OR c.expiry_notice_days > due.days)
	RETURNING c.id, c.account, due.expires_at, due.days
)
INSERT INTO events (public_id, account, type, connection_id, data)
SELECT event_public_id(), account,
	CASE WHEN days = 0 THEN '` + EventConnectionSecretExpired + `' ELSE '` + EventConnectionSecretExpiring + `' END, id,
	CASE WHEN days = 0 THEN jsonb_build_object('connection_id', id, 'expires_at', rfc3339(expires_at))
	ELSE jsonb_build_object('connection_id', id, 'expires_at', rfc3339(expires_at),
		'days_left', ceil(extract(epoch FROM expires_at - now()) / 86400)::int) END
FROM marked`

// sendExpiryNotices writes the expiry notices that are due for the
// connection with the given id, or for every connection when id is nil, and
// returns how many it wrote.
func sendExpiryNotices(ctx context.Context, q querier, id *string) (int64, error) {
	tag, err := q.Exec(ctx, sendExpiryNoticesSQL, id)
	if err != nil {
		return 0, fmt.Errorf("send expiry notices: %w", err)
	}
	return tag.RowsAffected(), nil
}

// SendExpiryNotices writes every expiry notice that is due, across all
// accounts, and returns how many. The daily job calls it.
func (s *Store) SendExpiryNotices(ctx context.Context) (int64, error) {
	return sendExpiryNotices(ctx, s.pool, nil)
}

// SendConnectionExpiryNotices writes the expiry notices that are due for one
// connection; re-checks call it.
func (s *Store) SendConnectionExpiryNotices(ctx context.Context, id string) (int64, error) {
	return sendExpiryNotices(ctx, s.pool, &id)
}
