package store

import (
	"encoding/json"
	"time"

	"github.com/dynconn/dynconn/internal/model"
)

// How a connections row maps to model.Connection and back: its columns, the
// struct pgx scans, and the arguments of a certificate's and a secret's
// columns.

// connectionColumns lists, in order, the columns that connectionRow scans.
const connectionColumns = `id, account, name, instance_url, cloud, client_id, tenant_id, credential_type,
	secret_ciphertext, secret_wrapped_dek, secret_kek_id, secret_updated_at, secret_expires_at,
	secret_expired_at, ` + certColumns + `, ` + nextCertColumns + `, next_cert_passed_at,
	status, status_since, last_test, last_checked_at, next_check_at, version, created_at, updated_at`

// certColumns and nextCertColumns are a certificate's columns in one slot,
// in the order of certArgs.
const (
	certColumns = `cert_der, cert_thumbprint, cert_thumbprint_sha256, cert_not_before, cert_not_after,
	cert_key_ciphertext, cert_key_wrapped_dek, cert_key_kek_id`
	nextCertColumns = `next_cert_der, next_cert_thumbprint, next_cert_thumbprint_sha256, next_cert_not_before,
	next_cert_not_after, next_cert_key_ciphertext, next_cert_key_wrapped_dek, next_cert_key_kek_id`
)

// connectionRow is a connections row as pgx scans it by column name.
type connectionRow struct {
	ID               string          `db:"id"`
	Account          string          `db:"account"`
	Name             string          `db:"name"`
	InstanceURL      string          `db:"instance_url"`
	Cloud            string          `db:"cloud"`
	ClientID         string          `db:"client_id"`
	TenantID         *string         `db:"tenant_id"`
	CredentialType   string          `db:"credential_type"`
	SecretCiphertext []byte          `db:"secret_ciphertext"`
	SecretWrappedDEK []byte          `db:"secret_wrapped_dek"`
	SecretKEKID      *string         `db:"secret_kek_id"`
	SecretUpdatedAt  *time.Time      `db:"secret_updated_at"`
	SecretExpiresAt  *time.Time      `db:"secret_expires_at"`
	SecretExpiredAt  *time.Time      `db:"secret_expired_at"`
	Status           string          `db:"status"`
	StatusSince      *time.Time      `db:"status_since"`
	LastTest         json.RawMessage `db:"last_test"`
	LastCheckedAt    *time.Time      `db:"last_checked_at"`
	NextCheckAt      *time.Time      `db:"next_check_at"`
	Version          int64           `db:"version"`
	CreatedAt        time.Time       `db:"created_at"`
	UpdatedAt        time.Time       `db:"updated_at"`

	CertDER              []byte     `db:"cert_der"`
	CertThumbprint       *string    `db:"cert_thumbprint"`
	CertThumbprintSHA256 *string    `db:"cert_thumbprint_sha256"`
	CertNotBefore        *time.Time `db:"cert_not_before"`
	CertNotAfter         *time.Time `db:"cert_not_after"`
	CertKeyCiphertext    []byte     `db:"cert_key_ciphertext"`
	CertKeyWrappedDEK    []byte     `db:"cert_key_wrapped_dek"`
	CertKeyKEKID         *string    `db:"cert_key_kek_id"`

	NextCertDER              []byte     `db:"next_cert_der"`
	NextCertThumbprint       *string    `db:"next_cert_thumbprint"`
	NextCertThumbprintSHA256 *string    `db:"next_cert_thumbprint_sha256"`
	NextCertNotBefore        *time.Time `db:"next_cert_not_before"`
	NextCertNotAfter         *time.Time `db:"next_cert_not_after"`
	NextCertKeyCiphertext    []byte     `db:"next_cert_key_ciphertext"`
	NextCertKeyWrappedDEK    []byte     `db:"next_cert_key_wrapped_dek"`
	NextCertKeyKEKID         *string    `db:"next_cert_key_kek_id"`
	NextCertPassedAt         *time.Time `db:"next_cert_passed_at"`
}

// toModel converts r, with times in UTC (pgx returns them in time.Local).
func (r connectionRow) toModel() model.Connection {
	c := model.Connection{
		ID:             r.ID,
		Account:        r.Account,
		Name:           r.Name,
		InstanceURL:    r.InstanceURL,
		Cloud:          model.Cloud(r.Cloud),
		ClientID:       r.ClientID,
		TenantID:       r.TenantID,
		CredentialType: model.CredentialType(r.CredentialType),
		Secret: model.SealedSecret{
			Ciphertext: r.SecretCiphertext,
			WrappedDEK: r.SecretWrappedDEK,
			KEKID:      deref(r.SecretKEKID),
		},
		SecretExpiresAt: utc(r.SecretExpiresAt),
		SecretExpiredAt: utc(r.SecretExpiredAt),
		Certificate: certificate(r.CertDER, r.CertThumbprint, r.CertThumbprintSHA256, r.CertNotBefore, r.CertNotAfter,
			r.CertKeyCiphertext, r.CertKeyWrappedDEK, r.CertKeyKEKID),
		NextCertificate: certificate(r.NextCertDER, r.NextCertThumbprint, r.NextCertThumbprintSHA256, r.NextCertNotBefore,
			r.NextCertNotAfter, r.NextCertKeyCiphertext, r.NextCertKeyWrappedDEK, r.NextCertKeyKEKID),
		NextCertificatePassedAt: utc(r.NextCertPassedAt),
		Status:                  model.Status(r.Status),
		StatusSince:             utc(r.StatusSince),
		LastTest:                r.LastTest,
		LastCheckedAt:           utc(r.LastCheckedAt),
		NextCheckAt:             utc(r.NextCheckAt),
		Version:                 r.Version,
		CreatedAt:               r.CreatedAt.UTC(),
		UpdatedAt:               r.UpdatedAt.UTC(),
	}
	if r.SecretUpdatedAt != nil {
		c.SecretUpdatedAt = r.SecretUpdatedAt.UTC()
	}
	return c
}

// certificate is one slot's columns as a model.Certificate, nil when the
// slot is empty (the table's constraints make the columns all set or all NULL).
func certificate(der []byte, thumbprint, thumbprintSHA256 *string, notBefore, notAfter *time.Time,
	keyCiphertext, keyWrappedDEK []byte, keyKEKID *string) *model.Certificate {
	if der == nil {
		return nil
	}
	return &model.Certificate{
		DER: der, Thumbprint: deref(thumbprint), ThumbprintSHA256: deref(thumbprintSHA256),
		NotBefore: notBefore.UTC(), NotAfter: notAfter.UTC(),
		Key: model.SealedSecret{Ciphertext: keyCiphertext, WrappedDEK: keyWrappedDEK, KEKID: deref(keyKEKID)},
	}
}

// certArgs are the query arguments of c's columns, in the order of
// certColumns: all nil for a nil c, which empties the slot.
func certArgs(c *model.Certificate) []any {
	if c == nil {
		return make([]any, 8)
	}
	return []any{c.DER, c.Thumbprint, c.ThumbprintSHA256, c.NotBefore, c.NotAfter, c.Key.Ciphertext, c.Key.WrappedDEK, c.Key.KEKID}
}

// secretArgs are the arguments of the sealed secret's columns: all nil
// without a secret (a certificate connection).
func secretArgs(s model.SealedSecret) []any {
	if s.Ciphertext == nil {
		return []any{nil, nil, nil}
	}
	return []any{s.Ciphertext, s.WrappedDEK, s.KEKID}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// utc returns *t in UTC, or nil for nil.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// timeOrNow returns nil for the zero time, so that COALESCE($n, now()) lets
// the database fill it in.
func timeOrNow(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
