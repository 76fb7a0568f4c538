package api

import (
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/munnerz/goautoneg"

	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// Certificate credentials (design.md, "Certificate credentials"): the public
// certificate for the customer to upload, and the renewal of a certificate
// (or the move of a secret connection to certificates) through a pending
// next certificate that must pass a test before it is activated.

// Media types of a certificate download.
const (
	mediaPEM = "application/x-pem-file"
	mediaDER = "application/pkix-cert"
)

// certificateStatus shows a certificate as the Azure portal's Certificates
// tab does, so the customer can compare the two; never the private key.
type certificateStatus struct {
	Thumbprint       string            `json:"thumbprint"`
	ThumbprintSHA256 string            `json:"thumbprint_sha256"`
	NotBefore        time.Time         `json:"not_before"`
	NotAfter         time.Time         `json:"not_after"`
	State            model.SecretState `json:"state"`
}

func toCertificateStatus(c *model.Certificate, now time.Time) *certificateStatus {
	if c == nil {
		return nil
	}
	return &certificateStatus{Thumbprint: c.Thumbprint, ThumbprintSHA256: c.ThumbprintSHA256,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, State: c.State(now)}
}

// nextCertificateResponse is a pending certificate: a certificate, and when
// a test with it last passed (null until one has), which activation needs.
type nextCertificateResponse struct {
	certificateStatus
	TestPassedAt *time.Time `json:"test_passed_at"`
}

func toNextCertificateResponse(c model.Connection, now time.Time) *nextCertificateResponse {
	return &nextCertificateResponse{certificateStatus: *toCertificateStatus(c.NextCertificate, now), TestPassedAt: c.NextCertificatePassedAt}
}

var (
	errNoCertificate = newProblem(http.StatusNotFound, typeNotFound, "This connection has no certificate.",
		"It signs in with a client secret. To move it to a certificate, make one with POST /connections/{id}/certificate/next.")
	errNoNextCertificate = newProblem(http.StatusNotFound, typeNotFound, "This connection has no pending certificate.",
		"Make one with POST /connections/{id}/certificate/next.")
	errNextCertificateUntested = newProblem(http.StatusConflict, typeCertificateUntested,
		"The next certificate has not passed a test in the last hour.",
		`Upload it to the app registration (Certificates & secrets > Certificates), test it with POST /connection-tests and {"connection_id":"…","credential":"next_certificate"}, then activate it within the hour.`)
)

// handleCertificateGet serves the public certificate in slot: PEM by
// default, DER to a client that prefers application/pkix-cert, as a file
// named after the connection.
func handleCertificateGet(logger *slog.Logger, st *store.Store, slot model.CertificateSlot) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		c, err := st.Connection(r.Context(), principalFrom(r.Context()).Account, id)
		if err != nil {
			return err
		}
		cert, missing, name := c.Certificate, errNoCertificate, "dynconn-"+c.ID
		if slot == model.SlotNext {
			cert, missing, name = c.NextCertificate, errNoNextCertificate, name+"-next"
		}
		if cert == nil {
			return missing
		}
		// RFC 9110 lets a server ignore an Accept it cannot meet: anything
		// but a preference for DER gets the default, PEM.
		mediaType, body, ext := mediaPEM, credential.Certificate{DER: cert.DER}.PEM(), ".pem"
		if goautoneg.Negotiate(r.Header.Get("Accept"), []string{mediaPEM, mediaDER}) == mediaDER {
			mediaType, body, ext = mediaDER, cert.DER, ".cer"
		}
		h := w.Header()
		h.Set("Content-Type", mediaType)
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name + ext}))
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("Vary", "Accept")
		_, err = w.Write(body)
		return err
	})
}

// handleNextCertificateCreate makes a pending next certificate for the
// connection, replacing one that was pending (whose test, if any, no longer
// counts): 201 with its thumbprints.
func handleNextCertificateCreate(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		account := principalFrom(r.Context()).Account
		// Generated before the row is locked: a key pair takes tens of
		// milliseconds, which other writers of the row need not wait for.
		next, err := newCertificate(r.Context(), keys, account, id.String(), model.SlotNext, opts.Now(), opts.CertificateValidity)
		if err != nil {
			return err
		}
		c, err := st.UpdateConnection(r.Context(), account, id, auditOf(r), func(c *model.Connection) error {
			c.NextCertificate = next
			return nil
		})
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/connections/"+c.ID+"/certificate/next")
		return encode(w, http.StatusCreated, toNextCertificateResponse(c, opts.Now()))
	})
}

// handleNextCertificateActivate makes the pending certificate the
// connection's own, once a test with it passed within the last hour: its
// private key moves to the current slot, the old certificate's private key
// (or the client secret of a connection that moves to certificates) is
// erased, and the connection is untested until it is tested with it.
func handleNextCertificateActivate(logger *slog.Logger, st *store.Store, keys *crypto.Keyring, opts Options) http.Handler {
	return handle(logger, func(w http.ResponseWriter, r *http.Request) error {
		id, err := connectionID(r)
		if err != nil {
			return err
		}
		check := ifMatch(r)
		now := opts.Now()
		c, err := st.UpdateConnection(r.Context(), principalFrom(r.Context()).Account, id, auditOf(r), func(c *model.Connection) error {
			if err := check(*c); err != nil {
				return err
			}
			next := c.NextCertificate
			if next == nil {
				return errNoNextCertificate
			}
			if p := c.NextCertificatePassedAt; p == nil || now.Sub(*p) > model.NextCertificateTestValidity {
				return errNextCertificateUntested
			}
			key, err := resealKey(r.Context(), keys, *c, model.SlotNext, model.SlotCurrent, next.Key)
			if err != nil {
				return err
			}
			current := *next
			current.Key = key
			c.CredentialType, c.Certificate, c.NextCertificate = model.CredentialCertificate, &current, nil
			c.Secret, c.SecretUpdatedAt, c.SecretExpiresAt, c.SecretExpiredAt = model.SealedSecret{}, time.Time{}, nil, nil
			c.Status, c.LastTest = model.StatusUntested, nil
			return nil
		})
		if err != nil {
			return err
		}
		return writeConnection(w, http.StatusOK, c, now)
	})
}
