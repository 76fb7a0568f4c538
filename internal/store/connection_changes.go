package store

import (
	"bytes"
	"time"

	"github.com/dynconn/dynconn/internal/model"
)

// What an update of a connection changed: which credentials it replaced, the
// names of the changed fields (for the audit trail and events), and whether
// it changed anything at all.

// unchanged reports whether after, an update of before with the same sealed
// secret, writes the same row: the same fields, status and last test.
func unchanged(before, after model.Connection, ch changes) bool {
	return len(changedFields(before, after, ch)) == 0 && before.Status == after.Status &&
		bytes.Equal(before.LastTest, after.LastTest) && before.Cloud == after.Cloud &&
		before.SecretUpdatedAt.Equal(after.SecretUpdatedAt) && equalTimePtr(before.SecretExpiredAt, after.SecretExpiredAt)
}

// changes says which credentials an update replaced.
type changes struct {
	secret, certificate, nextCertificate bool
}

func changesOf(before, after model.Connection) changes {
	return changes{
		secret:          secretChanged(before.Secret, after.Secret),
		certificate:     certificateChanged(before.Certificate, after.Certificate),
		nextCertificate: certificateChanged(before.NextCertificate, after.NextCertificate),
	}
}

// audit returns the event of an update: connection.certificate_activated when
// the certificate was replaced (renewal, or the move from a secret),
// connection.next_certificate_created when a pending one was made,
// connection.secret_rotated when the secret was replaced, else
// connection.updated; each with the names of the changed fields, never a
// value of a credential.
func (ch changes) audit(before, after model.Connection) (string, map[string]any) {
	details := map[string]any{"changed": changedFields(before, after, ch)}
	switch {
	case ch.certificate && after.Certificate != nil:
		details["thumbprint"] = after.Certificate.Thumbprint
		if before.Certificate != nil {
			details["previous_thumbprint"] = before.Certificate.Thumbprint
		}
		return ActionCertificateActivated, details
	case ch.nextCertificate && after.NextCertificate != nil:
		details["thumbprint"] = after.NextCertificate.Thumbprint
		return ActionNextCertificateCreated, details
	case ch.secret:
		return ActionSecretRotated, details
	default:
		return ActionUpdated, details
	}
}

// changedFields names, as the API does, the fields an update changed. It
// names client_secret and certificate, never their values.
func changedFields(before, after model.Connection, ch changes) []string {
	changed := []string{}
	add := func(name string, differ bool) {
		if differ {
			changed = append(changed, name)
		}
	}
	add("name", before.Name != after.Name)
	add("instance_url", before.InstanceURL != after.InstanceURL)
	add("client_id", before.ClientID != after.ClientID)
	add("tenant_id", !equalPtr(before.TenantID, after.TenantID))
	add("credential_type", before.CredentialType != after.CredentialType)
	add("client_secret", ch.secret)
	add("client_secret_expires_at", !equalTimePtr(before.SecretExpiresAt, after.SecretExpiresAt))
	add("certificate", ch.certificate)
	add("next_certificate", ch.nextCertificate)
	return changed
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func equalTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// secretChanged reports whether a and b are different sealed secrets.
func secretChanged(a, b model.SealedSecret) bool {
	return a.KEKID != b.KEKID || !bytes.Equal(a.Ciphertext, b.Ciphertext) || !bytes.Equal(a.WrappedDEK, b.WrappedDEK)
}

// certificateChanged reports whether a and b are different certificates, or
// one is absent: a certificate is known by its thumbprint.
func certificateChanged(a, b *model.Certificate) bool {
	if a == nil || b == nil {
		return a != b
	}
	return a.ThumbprintSHA256 != b.ThumbprintSHA256
}
