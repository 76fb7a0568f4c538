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

// credentialExpiresAt is the SQL expression, over the connections row called
// alias, of when the credential a test would use expires: the certificate's
// not_after for a certificate connection, else the client secret's expiry as
// the customer gave it.
func credentialExpiresAt(alias string) string {
	return `COALESCE(` + alias + `.cert_not_after, ` + alias + `.secret_expires_at)`
}

// hasCredentialExpiry reports whether c's credential has an expiry, which is
// when credentialExpiresAt is not NULL.
func hasCredentialExpiry(c model.Connection) bool { return c.CredentialExpiresAt() != nil }

// noticeWanted is the SQL condition that a notice is due for a credential
// that expires at expiresAt, days being expiry_notice_due of it, and has not
// been sent: the row's markers (of alias) name another expiry, or a notice
// further from it.
func noticeWanted(alias, expiresAt, days string) string {
	return days + ` IS NOT NULL AND (` + alias + `.expiry_notice_for IS DISTINCT FROM ` + expiresAt +
		` OR ` + alias + `.expiry_notice_days > ` + days + `)`
}

// noticeEventSelect is the select list of the events row of a notice, over a
// relation with the columns id, account, expires_at and days.
const noticeEventSelect = `event_public_id(), account,
	CASE WHEN days = 0 THEN '` + EventConnectionSecretExpired + `' ELSE '` + EventConnectionSecretExpiring + `' END, id,
	CASE WHEN days = 0 THEN jsonb_build_object('connection_id', id, 'expires_at', rfc3339(expires_at))
	ELSE jsonb_build_object('connection_id', id, 'expires_at', rfc3339(expires_at),
		'days_left', ceil(extract(epoch FROM expires_at - now()) / 86400)::int) END`

// sendExpiryNoticesSQL writes the notices that are due, for the connections
// that %s selects, and marks them sent, in one statement. Under READ
// COMMITTED the UPDATE re-checks its condition on a row that a concurrent run
// changed first, so two runs never send one notice twice.
var sendExpiryNoticesSQL = `
WITH due AS (
	SELECT id, ` + credentialExpiresAt("c") + ` AS expires_at, expiry_notice_due(` + credentialExpiresAt("c") + `) AS days
	FROM connections c
	WHERE %s AND ` + credentialExpiresAt("c") + ` <= now() + interval '30 days'
), marked AS (
	UPDATE connections c SET expiry_notice_for = due.expires_at, expiry_notice_days = due.days
	FROM due
	WHERE c.id = due.id AND ` + credentialExpiresAt("c") + ` = due.expires_at AND ` + noticeWanted("c", "due.expires_at", "due.days") + `
	RETURNING c.id, c.account, due.expires_at, due.days
)
INSERT INTO events (public_id, account, type, connection_id, data)
SELECT ` + noticeEventSelect + ` FROM marked`

// The two forms of sendExpiryNoticesSQL: for one connection, by its primary
// key, and for all.
var (
	sendConnectionExpiryNoticesSQL = fmt.Sprintf(sendExpiryNoticesSQL, `c.id = $1`)
	sendAllExpiryNoticesSQL        = fmt.Sprintf(sendExpiryNoticesSQL, `true`)
)

// sendExpiryNotices writes the expiry notices that are due for the
// connection with the given id, or for every connection when id is nil, and
// returns how many it wrote.
func sendExpiryNotices(ctx context.Context, q querier, id *string) (int64, error) {
	query, args := sendAllExpiryNoticesSQL, []any{}
	if id != nil {
		query, args = sendConnectionExpiryNoticesSQL, []any{*id}
	}
	tag, err := q.Exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("send expiry notices: %w", err)
	}
	return tag.RowsAffected(), nil
}

// SendExpiryNotices writes every expiry notice that is due, across all
// accounts, and returns how many. The daily job calls it; tests record them
// with their result (recordTest), and changes of a credential or its expiry
// in their transaction.
func (s *Store) SendExpiryNotices(ctx context.Context) (int64, error) {
	return sendExpiryNotices(ctx, s.pool, nil)
}
