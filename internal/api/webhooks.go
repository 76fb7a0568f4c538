package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/webhook"
)

// maxDescriptionLength bounds a webhook's description.
const maxDescriptionLength = 500

// webhookResponse is the webhook resource (contract). It never holds the
// signing secret; only the create's response adds it.
type webhookResponse struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// EventTypes is null for every type, including types added later.
	EventTypes     []string  `json:"event_types"`
	Description    string    `json:"description"`
	Disabled       bool      `json:"disabled"`
	DisabledReason *string   `json:"disabled_reason"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// createdWebhookResponse is the answer to a create: the only time the
// secret is shown.
type createdWebhookResponse struct {
	webhookResponse
	Secret string `json:"secret"`
}

func toWebhookResponse(w model.Webhook) webhookResponse {
	r := webhookResponse{ID: w.ID, URL: w.URL, EventTypes: w.EventTypes, Description: w.Description,
		Disabled: w.Disabled(), CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
	if w.Disabled() {
		r.DisabledReason = &w.DisabledReason
	}
	return r
}

// webhookFields are the fields of a webhook create or update, parsed. A nil
// pointer means the field was absent.
type webhookFields struct {
	URL         *string
	EventTypes  *[]string // points to nil for null: every type
	Description *string
	Disabled    *bool
}

// parseWebhookFields reads every webhook field present in o, recording one
// error per invalid field.
func parseWebhookFields(o *object, allowLoopback bool) webhookFields {
	var f webhookFields
	if o.has("url") {
		s, ok := o.str("url")
		if ok || o.isNull("url") { // a value of the wrong type is already reported
			s = strings.TrimSpace(s)
			var ue *webhook.URLError
			switch err := webhook.CheckURL(s, allowLoopback); {
			case s == "":
				o.add("url", "required", "Enter the https URL that should receive the events.")
			case errors.As(err, &ue):
				o.add("url", ue.Code, ue.Message)
			default:
				f.URL = &s
			}
		}
	}
	if o.has("event_types") {
		types, ok := o.strList("event_types")
		switch {
		case o.isNull("event_types"):
			f.EventTypes = new([]string)
		case !ok:
		case len(types) == 0:
			o.add("event_types", "required", "List at least one event type, or leave event_types out (or null) to receive every type.")
		default:
			var unknown, list []string
			for _, t := range types {
				switch {
				case !slices.Contains(store.EventTypes, t):
					unknown = append(unknown, fmt.Sprintf("%q", t))
				case !slices.Contains(list, t):
					list = append(list, t)
				}
			}
			if len(unknown) > 0 {
				o.add("event_types", "unknown_event_type", fmt.Sprintf("Unknown event type %s. The types are %s.",
					strings.Join(unknown, ", "), strings.Join(store.EventTypes, ", ")))
			} else {
				f.EventTypes = &list
			}
		}
	}
	if s, ok := o.str("description"); ok || o.isNull("description") {
		s = strings.TrimSpace(s)
		if utf8.RuneCountInString(s) > maxDescriptionLength {
			o.add("description", "too_long", fmt.Sprintf("Use a description of at most %d characters.", maxDescriptionLength))
		} else {
			f.Description = &s
		}
	}
	return f
}

func handleWebhookCreate(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		o, err := decodeObject(w, r)
		if err != nil {
			return err
		}
		f := parseWebhookFields(o, opts.WebhookAllowLoopback)
		if !o.has("url") {
			o.add("url", "required", "Enter the https URL that should receive the events.")
		}
		if err := o.finish(); err != nil {
			return err
		}
		account := principalFrom(r.Context()).Account
		id := uuid.NewString() // known before sealing: it is part of the associated data
		sec := webhook.NewSecret()
		env, err := keys.Seal(r.Context(), []byte(sec.Reveal()), crypto.WebhookAssociatedData(account, id))
		if err != nil {
			return fmt.Errorf("seal webhook secret: %w", err)
		}
		hook := model.Webhook{ID: id, Account: account, URL: *f.URL, Secret: model.SealedSecret(env)}
		if f.EventTypes != nil {
			hook.EventTypes = *f.EventTypes
		}
		if f.Description != nil {
			hook.Description = *f.Description
		}
		hook, err = st.CreateWebhook(r.Context(), hook, auditOf(r))
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/webhooks/"+hook.ID)
		// The one place a webhook secret leaves the service.
		return encode(w, http.StatusCreated, createdWebhookResponse{toWebhookResponse(hook), sec.Reveal()})
	})
}

func handleWebhookList(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		p, err := parsePage(r)
		if err != nil {
			return err
		}
		hooks, next, err := st.Webhooks(r.Context(), principalFrom(r.Context()).Account, p)
		if err != nil {
			return err
		}
		items := make([]webhookResponse, len(hooks))
		for i, h := range hooks {
			items[i] = toWebhookResponse(h)
		}
		return encode(w, http.StatusOK, newListResponse(items, next))
	})
}

func handleWebhookGet(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := webhookID(r)
		if err != nil {
			return err
		}
		hook, err := st.Webhook(r.Context(), principalFrom(r.Context()).Account, id)
		if err != nil {
			return err
		}
		return encode(w, http.StatusOK, toWebhookResponse(hook))
	})
}

func handleWebhookUpdate(logger *slog.Logger, st *store.Store, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		o, err := decodeObject(w, r)
		if err != nil {
			return err
		}
		f := parseWebhookFields(o, opts.WebhookAllowLoopback)
		if v, ok := o.boolean("disabled"); ok {
			f.Disabled = &v
		}
		if err := o.finish(); err != nil {
			return err
		}
		// After the body, so that an invalid body is a 422 whatever the id.
		id, err := webhookID(r)
		if err != nil {
			return err
		}
		hook, err := st.UpdateWebhook(r.Context(), principalFrom(r.Context()).Account, id, auditOf(r), func(h *model.Webhook) error {
			if f.URL != nil {
				h.URL = *f.URL
			}
			if f.EventTypes != nil {
				h.EventTypes = *f.EventTypes
			}
			if f.Description != nil {
				h.Description = *f.Description
			}
			switch {
			case f.Disabled == nil:
			case !*f.Disabled:
				h.DisabledReason = ""
			case !h.Disabled():
				h.DisabledReason = model.DisabledByAPI
			}
			return nil
		})
		if err != nil {
			return err
		}
		return encode(w, http.StatusOK, toWebhookResponse(hook))
	})
}

func handleWebhookDelete(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := webhookID(r)
		if err != nil {
			return err
		}
		if err := st.DeleteWebhook(r.Context(), principalFrom(r.Context()).Account, id, auditOf(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// pingResponse names the webhook.ping event a ping enqueued.
type pingResponse struct {
	EventID string `json:"event_id"`
}

func handleWebhookPing(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := webhookID(r)
		if err != nil {
			return err
		}
		ev, err := st.PingWebhook(r.Context(), principalFrom(r.Context()).Account, id)
		if err != nil {
			return err
		}
		return encode(w, http.StatusAccepted, pingResponse{EventID: ev.PublicID})
	})
}

// deliveryResponse is one delivery of an event to an endpoint (contract).
type deliveryResponse struct {
	EventID       string     `json:"event_id"`
	Type          string     `json:"type"`
	Attempts      int        `json:"attempts"`
	Status        string     `json:"status"`
	HTTPStatus    *int       `json:"http_status"`
	Error         *string    `json:"error"`
	DurationMS    *int64     `json:"duration_ms"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

func handleWebhookDeliveries(logger *slog.Logger, st *store.Store) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		p, err := parsePage(r)
		if err != nil {
			return err
		}
		id, err := webhookID(r)
		if err != nil {
			return err
		}
		ds, next, err := st.Deliveries(r.Context(), principalFrom(r.Context()).Account, id, p)
		if err != nil {
			return err
		}
		items := make([]deliveryResponse, len(ds))
		for i, d := range ds {
			items[i] = deliveryResponse{EventID: d.EventID, Type: d.Type, Attempts: d.Attempts, Status: d.Status,
				HTTPStatus: d.HTTPStatus, Error: d.Error, DurationMS: d.DurationMS, NextAttemptAt: d.NextAttemptAt, UpdatedAt: d.UpdatedAt}
		}
		return encode(w, http.StatusOK, newListResponse(items, next))
	})
}
