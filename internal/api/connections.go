package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// connectionResponse is the connection resource (contract). It is separate
// from model.Connection so the sealed secret can never be marshalled. Its
// times are the store's, which are in UTC. Of client_secret and certificate,
// the one of the connection's credential_type is set and the other null.
type connectionResponse struct {
	ID              string                   `json:"id"`
	Name            string                   `json:"name"`
	InstanceURL     string                   `json:"instance_url"`
	ClientID        string                   `json:"client_id"`
	TenantID        *string                  `json:"tenant_id"`
	Cloud           model.Cloud              `json:"cloud"`
	CredentialType  model.CredentialType     `json:"credential_type"`
	ClientSecret    *secretStatus            `json:"client_secret"`
	Certificate     *certificateStatus       `json:"certificate"`
	NextCertificate *nextCertificateResponse `json:"next_certificate"`
	Status          model.Status             `json:"status"`
	StatusSince     *time.Time               `json:"status_since"`
	LastTest        json.RawMessage          `json:"last_test"`
	LastCheckedAt   *time.Time               `json:"last_checked_at"`
	NextCheckAt     *time.Time               `json:"next_check_at"`
	CreatedAt       time.Time                `json:"created_at"`
	UpdatedAt       time.Time                `json:"updated_at"`
}

// secretStatus reports that a secret is stored, never what it is.
type secretStatus struct {
	Set       bool              `json:"set"`
	UpdatedAt time.Time         `json:"updated_at"`
	ExpiresAt *time.Time        `json:"expires_at"`
	State     model.SecretState `json:"state"`
}

func toConnectionResponse(c model.Connection, now time.Time) connectionResponse {
	last := c.LastTest
	if len(last) == 0 {
		last = json.RawMessage("null")
	}
	r := connectionResponse{
		ID: c.ID, Name: c.Name, InstanceURL: c.InstanceURL, ClientID: c.ClientID, TenantID: c.TenantID,
		Cloud: c.Cloud, CredentialType: c.CredentialType, Status: c.Status, StatusSince: c.StatusSince, LastTest: last,
		LastCheckedAt: c.LastCheckedAt, NextCheckAt: c.NextCheckAt, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Certificate: toCertificateStatus(c.Certificate, now),
	}
	if c.Secret.Ciphertext != nil {
		r.ClientSecret = &secretStatus{Set: true, UpdatedAt: c.SecretUpdatedAt, ExpiresAt: c.SecretExpiresAt, State: c.SecretState(now)}
	}
	if c.NextCertificate != nil {
		r.NextCertificate = toNextCertificateResponse(c, now)
	}
	return r
}

// writeConnection answers with c and its ETag.
func writeConnection(w http.ResponseWriter, status int, c model.Connection, now time.Time) error {
	w.Header().Set("ETag", etag(c.Version))
	return encode(w, status, toConnectionResponse(c, now))
}

// writeCreated answers a create, fresh or replayed, with the body made of the
// connection when it was created: a replay answers exactly what the first
// request got, Location and ETag included, even if the connection has
// changed since. Both come from what is kept: the id of the created
// connection, and the version every new connection has.
func writeCreated(w http.ResponseWriter, id string, body []byte, replayed bool) error {
	h := w.Header()
	h.Set("Location", "/connections/"+id)
	h.Set("ETag", etag(store.InitialVersion))
	if replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	return writeBody(w, http.StatusCreated, body)
}

// createdID reads the id of the connection in the body of a create, which
// is all a replay keeps of it.
func createdID(body []byte) (string, error) {
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		return "", fmt.Errorf("read the id of a created connection: %w", err)
	}
	return created.ID, nil
}

func handleConnectionCreate(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		o, err := decodeObject(w, r)
		if err != nil {
			return err
		}
		f := parseConnectionFields(o, opts.AllowLoopback, opts.Now())
		credentialType := parseCredentialType(o)
		if err := o.finish(); err != nil {
			return err
		}
		account := principalFrom(r.Context()).Account
		id := uuid.NewString() // known before sealing: it is part of the associated data
		c := model.Connection{
			ID: id, Account: account, Name: defaultName(f.Instance.URL), InstanceURL: f.Instance.URL, Cloud: f.Instance.Cloud,
			ClientID: *f.ClientID, TenantID: f.tenant(), CredentialType: credentialType, Status: model.StatusUntested,
		}
		if credentialType == model.CredentialCertificate {
			c.Certificate, err = newCertificate(r.Context(), keys, account, id, model.SlotCurrent, opts.Now(), opts.CertificateValidity)
		} else {
			c.Secret, err = seal(r.Context(), keys, account, id, *f.ClientSecret)
			c.SecretExpiresAt = f.SecretExpiresAt
		}
		if err != nil {
			return err
		}
		if f.Name != nil && *f.Name != "" {
			c.Name = *f.Name
		}
		key, idempotent, err := idempotencyKey(r, o, opts.RequestHashKey)
		if err != nil {
			return err
		}
		render := func(c model.Connection) ([]byte, error) { return marshal(toConnectionResponse(c, opts.Now())) }
		if !idempotent {
			if c, err = st.CreateConnection(r.Context(), c, auditOf(r)); err != nil {
				return err
			}
			body, err := render(c)
			if err != nil {
				return err
			}
			return writeCreated(w, c.ID, body, false)
		}
		body, replayed, err := st.CreateConnectionOnce(r.Context(), c, auditOf(r), key, render)
		if err != nil {
			return err
		}
		if replayed {
			// The first request's connection, not the one made for this one.
			if id, err = createdID(body); err != nil {
				return err
			}
		}
		return writeCreated(w, id, body, replayed)
	})
}

func handleConnectionGet(logger *slog.Logger, st *store.Store, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		c, err := st.Connection(r.Context(), principalFrom(r.Context()).Account, id)
		if err != nil {
			return err
		}
		return writeConnection(w, http.StatusOK, c, opts.Now())
	})
}

func handleConnectionList(logger *slog.Logger, st *store.Store, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		p, err := parsePage(r)
		if err != nil {
			return err
		}
		now := opts.Now()
		f := store.Filter{Now: now}
		switch s := model.SecretState(r.URL.Query().Get("secret_state")); s {
		case "":
		case model.SecretValid, model.SecretExpiring, model.SecretExpired, model.SecretUnknown:
			f.SecretState = s
		default:
			return &validationError{fields: []fieldError{{Field: "secret_state", Code: "out_of_range",
				Message: "secret_state must be valid, expiring, expired or unknown."}}}
		}
		switch s := model.Status(r.URL.Query().Get("status")); s {
		case "":
		case model.StatusUntested, model.StatusConnected, model.StatusFailing:
			f.Status = s
		default:
			return &validationError{fields: []fieldError{{Field: "status", Code: "out_of_range",
				Message: "status must be untested, connected or failing."}}}
		}
		cs, next, err := st.Connections(r.Context(), principalFrom(r.Context()).Account, p, f)
		if err != nil {
			return err
		}
		items := make([]connectionResponse, len(cs))
		for i, c := range cs {
			items[i] = toConnectionResponse(c, now)
		}
		return encode(w, http.StatusOK, newListResponse(items, next))
	})
}

func handleConnectionUpdate(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		o, err := decodeObject(w, r)
		if err != nil {
			return err
		}
		f := parseConnectionFields(o, opts.AllowLoopback, opts.Now())
		if err := o.finish(); err != nil {
			return err
		}
		// After the body, so that an invalid body is a 422 whatever the id.
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		check := ifMatch(r)
		c, err := st.UpdateConnection(r.Context(), principalFrom(r.Context()).Account, id, auditOf(r), func(c *model.Connection) error {
			if err := check(*c); err != nil {
				return err
			}
			return applyUpdate(r.Context(), keys, c, f, opts.Now())
		})
		if err != nil {
			return err
		}
		return writeConnection(w, http.StatusOK, c, opts.Now())
	})
}

// applyUpdate changes c as the request asks. When any credential changes the
// last test no longer describes the connection, so it becomes untested. A
// certificate connection takes no client secret: its certificate is renewed
// through certificate/next.
func applyUpdate(ctx context.Context, keys *crypto.Keyring, c *model.Connection, f connectionFields, now time.Time) error {
	if c.CredentialType == model.CredentialCertificate && (f.ClientSecret != nil || f.SecretExpiresAt != nil || f.ClearSecretExpiry) {
		return &validationError{fields: secretConflicts(f)}
	}
	tested := c.CredentialFingerprint()
	if f.Name != nil {
		c.Name = *f.Name
		if c.Name == "" {
			c.Name = defaultName(c.InstanceURL)
		}
	}
	if f.Instance != nil {
		c.InstanceURL, c.Cloud = f.Instance.URL, f.Instance.Cloud
	}
	if f.ClientID != nil {
		c.ClientID = *f.ClientID
	}
	if f.TenantID != nil {
		c.TenantID = f.tenant()
	}
	if f.ClientSecret != nil {
		sealed, err := seal(ctx, keys, c.Account, c.ID, *f.ClientSecret)
		if err != nil {
			return err
		}
		c.Secret = sealed
		c.SecretUpdatedAt = now
		c.SecretExpiresAt = nil // a new secret has its own expiry
	}
	if f.SecretExpiresAt != nil {
		c.SecretExpiresAt = f.SecretExpiresAt
	}
	if f.ClearSecretExpiry {
		c.SecretExpiresAt = nil
	}
	if c.CredentialFingerprint() != tested {
		c.Status = model.StatusUntested
		c.LastTest = nil
	}
	return nil
}

// secretConflicts are the 422 entries of a change of a certificate
// connection's client secret fields.
func secretConflicts(f connectionFields) []fieldError {
	var errs []fieldError
	add := func(field string) {
		errs = append(errs, fieldError{Field: field, Code: "credential_conflict", Message: "This connection signs in with a certificate and has no client secret. " +
			"To replace the certificate, make a next one (POST /connections/{id}/certificate/next), upload it, test it and activate it."})
	}
	if f.ClientSecret != nil {
		add("client_secret")
	}
	if f.SecretExpiresAt != nil || f.ClearSecretExpiry {
		add("client_secret_expires_at")
	}
	return errs
}

func handleConnectionDelete(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		if err := st.DeleteConnection(r.Context(), principalFrom(r.Context()).Account, id, auditOf(r), ifMatch(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
