package simulator

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dynconn/dynconn/internal/credential"
)

// The simulated app registration's certificates (Certificates & secrets →
// Certificates in the Azure portal): a test or a person uploads the public
// certificate dynconn made, and the token endpoint then verifies client
// assertions signed with its key, as Entra does. Uploads go to
// /_sim/apps/{client_id}/certificates on any of the simulator's listeners:
//
//	POST   …/certificates               body: the certificate, PEM or DER → 201 with its thumbprints
//	GET    …/certificates               the uploaded certificates
//	DELETE …/certificates/{thumbprint}  remove one (SHA-1 or SHA-256, hex) → 204
//
// The simulator only ever sees public certificates and signed assertions.

// simPrefix is where the simulator's own API lives, apart from Microsoft's.
const simPrefix = "/_sim/apps/"

// ErrUnknownApp means the client id is not the simulated app's.
var ErrUnknownApp = errors.New("simulator: no app registration with this client id")

// maxRecorded bounds the token requests TokenRequests remembers.
const maxRecorded = 256

// UploadCertificate adds a certificate (PEM or DER) to the simulated app
// with clientID, as the portal's Upload certificate does, and returns it.
func (h *Handler) UploadCertificate(clientID string, cert []byte) (credential.Certificate, error) {
	if !strings.EqualFold(clientID, h.opts.ClientID) {
		return credential.Certificate{}, ErrUnknownApp
	}
	c, err := credential.ParseCertificate(cert)
	if err != nil {
		return credential.Certificate{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range h.uploaded {
		if u.ThumbprintSHA256 == c.ThumbprintSHA256 {
			return c, nil // the portal refuses a duplicate; keeping one is as good
		}
	}
	h.uploaded = append(h.uploaded, c)
	return c, nil
}

// RemoveCertificate deletes the certificate with the thumbprint (SHA-1 or
// SHA-256, hex, any case) from the simulated app, and reports whether there
// was one.
func (h *Handler) RemoveCertificate(clientID, thumbprint string) bool {
	if !strings.EqualFold(clientID, h.opts.ClientID) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, u := range h.uploaded {
		if strings.EqualFold(u.Thumbprint, thumbprint) || strings.EqualFold(u.ThumbprintSHA256, thumbprint) {
			h.uploaded = append(h.uploaded[:i], h.uploaded[i+1:]...)
			return true
		}
	}
	return false
}

// Certificates returns the certificates uploaded to the simulated app.
func (h *Handler) Certificates() []credential.Certificate {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]credential.Certificate(nil), h.uploaded...)
}

// TokenRequests returns the form of every token request received (the last
// 256), oldest first: what a test checks to see that no secret or key was
// sent where an assertion should have been.
func (h *Handler) TokenRequests() []url.Values {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]url.Values, len(h.recorded))
	for i, f := range h.recorded {
		out[i] = cloneValues(f)
	}
	return out
}

func (h *Handler) record(form url.Values) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recorded) >= maxRecorded {
		h.recorded = h.recorded[1:]
	}
	h.recorded = append(h.recorded, cloneValues(form))
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// checkAssertion verifies a token request's client assertion against the
// uploaded certificates, and answers as Entra does when it fails. It
// reports whether the request may go on.
func (h *Handler) checkAssertion(w http.ResponseWriter, r *http.Request, q request, tenant, clientID string) bool {
	form := r.PostForm
	if form.Get("client_assertion_type") != credential.AssertionType {
		h.entraError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'client_assertion_type'.", true)
		return false
	}
	audience := h.authorityBase(q) + "/" + tenant + "/oauth2/v2.0/token"
	uploaded := h.Certificates()
	ders := make([][]byte, len(uploaded))
	for i, c := range uploaded {
		ders[i] = c.DER
	}
	now := h.opts.Now()
	_, err := credential.Verify(form.Get("client_assertion"), ders, audience, clientID, now)
	var notFound *credential.KeyNotFoundError
	switch {
	case err == nil:
		return true
	case errors.As(err, &notFound):
		// microsoft-facts.md §11; the text after "Thumbprint of key used by
		// client" is as Microsoft Q&A threads quote it.
		h.entraError(w, r, http.StatusUnauthorized, "invalid_client", 700027,
			"The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '"+
				notFound.Thumbprint+"', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '"+
				clientID+"'. Review the documentation at https://docs.microsoft.com/en-us/graph/api/resources/application to configure the keys.]", true)
	case errors.Is(err, credential.ErrCertificateExpired):
		// UNCONFIRMED (microsoft-facts.md §11): Entra's answer for an
		// expired uploaded certificate; dynconn refuses to sign with one first.
		h.entraError(w, r, http.StatusUnauthorized, "invalid_client", 700027,
			"The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key used is expired.]", true)
	case errors.Is(err, credential.ErrSignature):
		h.entraError(w, r, http.StatusUnauthorized, "invalid_client", 700027,
			"Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value.]", true)
	case errors.Is(err, credential.ErrTimeRange):
		// UNCONFIRMED wording (microsoft-facts.md §11).
		h.entraError(w, r, http.StatusBadRequest, "invalid_client", 700024,
			"Client assertion is not within its valid time range. Current time: "+now.UTC().Format(time.RFC3339)+".", true)
	default: // malformed, or aud, iss, sub, jti, iat missing or wrong: UNCONFIRMED code and wording
		h.entraError(w, r, http.StatusBadRequest, "invalid_request", 50027,
			"Invalid JWT token. "+strings.TrimPrefix(err.Error(), "client assertion "), true)
	}
	return false
}

// serveApps is the simulator's own API for the app's certificates.
func (h *Handler) serveApps(w http.ResponseWriter, r *http.Request, path string) {
	clientID, rest, _ := strings.Cut(strings.TrimPrefix(path, simPrefix), "/")
	thumbprint, sub := strings.CutPrefix(rest, "certificates/")
	switch {
	case rest == "certificates" && r.Method == http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			simError(w, http.StatusRequestEntityTooLarge, "certificate larger than 64 KiB")
			return
		}
		c, err := h.UploadCertificate(clientID, body)
		switch {
		case errors.Is(err, ErrUnknownApp):
			simError(w, http.StatusNotFound, fmt.Sprintf("no app with client id %q (the simulated one is %s)", clientID, h.opts.ClientID))
		case err != nil:
			simError(w, http.StatusBadRequest, "not a certificate (PEM or DER): "+err.Error())
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_ = writeJSONBody(w, describeCertificate(c))
		}
	case rest == "certificates" && r.Method == http.MethodGet:
		if !strings.EqualFold(clientID, h.opts.ClientID) {
			simError(w, http.StatusNotFound, "no app with client id "+clientID)
			return
		}
		list := []map[string]string{}
		for _, c := range h.Certificates() {
			list = append(list, describeCertificate(c))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = writeJSONBody(w, list)
	case sub && r.Method == http.MethodDelete:
		if !h.RemoveCertificate(clientID, thumbprint) {
			simError(w, http.StatusNotFound, "no such certificate")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		simError(w, http.StatusNotFound, "use POST or GET "+simPrefix+"{client_id}/certificates, or DELETE …/certificates/{thumbprint}")
	}
}

// describeCertificate is how the simulator's API shows a certificate, as
// the portal's Certificates tab does.
func describeCertificate(c credential.Certificate) map[string]string {
	return map[string]string{
		"thumbprint": c.Thumbprint, "thumbprint_sha256": c.ThumbprintSHA256,
		"start_date": c.NotBefore.Format(time.RFC3339), "expires": c.NotAfter.Format(time.RFC3339),
	}
}

func simError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = writeJSONBody(w, map[string]string{"error": msg})
}
