package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/secret"
	"github.com/dynconn/dynconn/internal/store"
)

// apiFunc is an HTTP handler that reports failure by returning an error
// instead of writing an error response itself.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

func handle(logger *slog.Logger, fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeProblem(w, r, logger, err)
		}
	})
}

// connectionResponse is the connection resource (contract). It is separate
// from model.Connection so the sealed secret can never be marshalled.
type connectionResponse struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	InstanceURL  string          `json:"instance_url"`
	ClientID     string          `json:"client_id"`
	TenantID     *string         `json:"tenant_id"`
	Cloud        model.Cloud     `json:"cloud"`
	ClientSecret secretStatus    `json:"client_secret"`
	Status       model.Status    `json:"status"`
	LastTest     json.RawMessage `json:"last_test"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
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
	return connectionResponse{
		ID: c.ID, Name: c.Name, InstanceURL: c.InstanceURL, ClientID: c.ClientID, TenantID: c.TenantID,
		Cloud: c.Cloud, Status: c.Status, LastTest: last, CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(),
		ClientSecret: secretStatus{Set: len(c.Secret.Ciphertext) > 0, UpdatedAt: c.SecretUpdatedAt.UTC(),
			ExpiresAt: utcPtr(c.SecretExpiresAt), State: c.SecretState(now)},
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

type listResponse[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func newListResponse[T any](items []T, next string) listResponse[T] {
	if items == nil {
		items = []T{}
	}
	r := listResponse[T]{Items: items}
	if next != "" {
		r.NextCursor = &next
	}
	return r
}

// auditOf says who makes a change in this request.
func auditOf(r *http.Request) store.Audit {
	return store.Audit{Actor: principalFrom(r.Context()).Subject, RequestID: requestIDFrom(r.Context())}
}

// writeConnection answers with c and its ETag.
func writeConnection(w http.ResponseWriter, status int, c model.Connection, now time.Time) error {
	w.Header().Set("ETag", etag(c))
	return encode(w, status, toConnectionResponse(c, now))
}

// seal encrypts a client secret for the row (account, id): the associated
// data binds the ciphertext to that row, so it can't be moved to another.
func seal(ctx context.Context, keys *crypto.Keyring, account, id string, s secret.String) (model.SealedSecret, error) {
	env, err := keys.Seal(ctx, []byte(s.Reveal()), crypto.AssociatedData(account, id))
	if err != nil {
		return model.SealedSecret{}, fmt.Errorf("seal client secret: %w", err)
	}
	return model.SealedSecret(env), nil
}

// open decrypts a connection's client secret.
func open(ctx context.Context, keys *crypto.Keyring, c model.Connection) (secret.String, error) {
	b, err := keys.Open(ctx, crypto.Envelope(c.Secret), crypto.AssociatedData(c.Account, c.ID))
	if err != nil {
		return "", fmt.Errorf("open client secret of connection %s: %w", c.ID, err)
	}
	return secret.String(b), nil
}

func handleConnectionCreate(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		o, err := decodeObject(w, r)
		if err != nil {
			return err
		}
		f := parseConnectionFields(o, opts.AllowLoopback, opts.Now())
		requireCreateFields(o)
		if err := o.finish(); err != nil {
			return err
		}
		account := principalFrom(r.Context()).Account
		id := uuid.NewString() // known before sealing: it is part of the associated data
		sealed, err := seal(r.Context(), keys, account, id, *f.ClientSecret)
		if err != nil {
			return err
		}
		c := model.Connection{
			ID: id, Account: account, Name: defaultName(f.Instance.URL), InstanceURL: f.Instance.URL, Cloud: f.Instance.Cloud,
			ClientID: *f.ClientID, Secret: sealed, SecretExpiresAt: f.SecretExpiresAt, Status: model.StatusUntested,
		}
		if f.Name != nil && *f.Name != "" {
			c.Name = *f.Name
		}
		if f.TenantID != nil && *f.TenantID != "" {
			c.TenantID = f.TenantID
		}
		key, idempotent, err := idempotencyKey(r, o)
		if err != nil {
			return err
		}
		if !idempotent {
			if c, err = st.CreateConnection(r.Context(), c, auditOf(r)); err != nil {
				return err
			}
			w.Header().Set("Location", "/connections/"+c.ID)
			return writeConnection(w, http.StatusCreated, c, opts.Now())
		}
		resp, replayed, err := st.CreateConnectionOnce(r.Context(), c, auditOf(r), key, func(c model.Connection) (store.StoredResponse, error) {
			body, err := json.Marshal(toConnectionResponse(c, opts.Now()))
			return store.StoredResponse{Status: http.StatusCreated, Location: "/connections/" + c.ID, Body: append(body, '\n')}, err
		})
		if err != nil {
			return err
		}
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.Header().Set("Location", resp.Location)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.Status)
		_, err = w.Write(resp.Body)
		return err
	})
}

func handleConnectionGet(logger *slog.Logger, st *store.Store, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		c, err := st.Connection(r.Context(), principalFrom(r.Context()).Account, chi.URLParam(r, "id"))
		if err != nil {
			return err
		}
		return writeConnection(w, http.StatusOK, c, opts.Now())
	})
}

// parsePage reads limit and cursor; limit is 1–200, default 50.
func parsePage(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Limit: 50, Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			return p, &validationError{fields: []fieldError{{Field: "limit", Code: "out_of_range", Message: "limit must be a whole number from 1 to 200."}}}
		}
		p.Limit = n
	}
	return p, nil
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
		account := principalFrom(r.Context()).Account
		check := ifMatch(r)
		c, err := st.UpdateConnection(r.Context(), account, chi.URLParam(r, "id"), auditOf(r), func(c *model.Connection) error {
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
// last test no longer describes the connection, so it becomes untested.
func applyUpdate(ctx context.Context, keys *crypto.Keyring, c *model.Connection, f connectionFields, now time.Time) error {
	credentialsChanged := false
	if f.Name != nil {
		c.Name = *f.Name
		if c.Name == "" {
			c.Name = defaultName(c.InstanceURL)
		}
	}
	if f.Instance != nil && f.Instance.URL != c.InstanceURL {
		c.InstanceURL, c.Cloud = f.Instance.URL, f.Instance.Cloud
		credentialsChanged = true
	}
	if f.ClientID != nil && *f.ClientID != c.ClientID {
		c.ClientID = *f.ClientID
		credentialsChanged = true
	}
	if f.TenantID != nil {
		var next *string
		if *f.TenantID != "" {
			next = f.TenantID
		}
		if !equalPtr(next, c.TenantID) {
			c.TenantID = next
			credentialsChanged = true
		}
	}
	if f.ClientSecret != nil {
		sealed, err := seal(ctx, keys, c.Account, c.ID, *f.ClientSecret)
		if err != nil {
			return err
		}
		c.Secret = sealed
		c.SecretUpdatedAt = now
		c.SecretExpiresAt = nil // a new secret has its own expiry
		credentialsChanged = true
	}
	if f.SecretExpiresAt != nil {
		c.SecretExpiresAt = f.SecretExpiresAt
	}
	if f.ClearSecretExpiry {
		c.SecretExpiresAt = nil
	}
	if credentialsChanged {
		c.Status = model.StatusUntested
		c.LastTest = nil
	}
	return nil
}

func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func handleConnectionDelete(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		if err := st.DeleteConnection(r.Context(), principalFrom(r.Context()).Account, chi.URLParam(r, "id"), auditOf(r), ifMatch(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// eventResponse is one audit event (contract).
type eventResponse struct {
	ID           string          `json:"id"`
	ConnectionID string          `json:"connection_id"`
	Actor        string          `json:"actor"`
	Action       string          `json:"action"`
	RequestID    string          `json:"request_id"`
	CreatedAt    time.Time       `json:"created_at"`
	Details      json.RawMessage `json:"details"`
}

func handleConnectionEvents(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		p, err := parsePage(r)
		if err != nil {
			return err
		}
		events, next, err := st.Events(r.Context(), principalFrom(r.Context()).Account, chi.URLParam(r, "id"), p)
		if err != nil {
			return err
		}
		items := make([]eventResponse, len(events))
		for i, e := range events {
			items[i] = eventResponse{ID: strconv.FormatInt(e.ID, 10), ConnectionID: e.ConnectionID, Actor: e.Actor,
				Action: e.Action, RequestID: e.RequestID, CreatedAt: e.CreatedAt, Details: e.Details}
		}
		return encode(w, http.StatusOK, newListResponse(items, next))
	})
}
