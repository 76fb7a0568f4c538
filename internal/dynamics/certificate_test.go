package dynamics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/model"
)

// certCreds makes a certificate valid from now for validity, and the
// credentials of the simulator's app that sign in with it.
func certCreds(t *testing.T, instance string, validity time.Duration) (Credentials, credential.Certificate) {
	t.Helper()
	cert, key, err := credential.Generate(uuid.New(), time.Now(), validity)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := credential.NewSigner(cert.DER, key)
	clear(key)
	if err != nil {
		t.Fatal(err)
	}
	cr := Credentials{InstanceURL: instance, ClientID: simulator.ClientID,
		Certificate: &Certificate{Signer: signer, Thumbprint: cert.Thumbprint, NotAfter: cert.NotAfter}}
	t.Cleanup(cr.Clear)
	return cr, cert
}

func TestCertificateSignsInWithAnAssertion(t *testing.T) {
	sim := newSim(t, simulator.Options{})
	c, logs := newClient(t, Options{AllowLoopback: true})
	cr, cert := certCreds(t, sim.URL, time.Hour)

	// Not uploaded yet: Microsoft's AADSTS700027, and the thumbprint to look for.
	res := c.Test(context.Background(), cr)
	tok := checkNamed(t, res, model.CheckToken)
	if tok.Code != CodeCertificateNotUploaded || *tok.SetupStep != StepUploadCertificate ||
		!strings.Contains(tok.Detail, cert.Thumbprint) || tok.Upstream == nil || tok.Upstream.ErrorCodes[0] != 700027 {
		t.Fatalf("before the upload: token check %+v", tok)
	}

	if _, err := sim.UploadCertificate(simulator.ClientID, cert.PEM()); err != nil {
		t.Fatal(err)
	}
	res = c.Test(context.Background(), cr)
	if !res.OK || res.Identity == nil || res.Identity.UserID != simulator.UserID {
		t.Fatalf("after the upload: %+v", res)
	}
	if d := checkNamed(t, res, model.CheckToken).Detail; !strings.Contains(d, "certificate "+cert.Thumbprint) {
		t.Errorf("token detail %q does not name the certificate", d)
	}
	for _, f := range sim.TokenRequests() {
		if f.Has("client_secret") || f.Get("client_assertion_type") != credential.AssertionType {
			t.Errorf("token request %v: want an assertion and no secret", f.Encode())
		}
		if f.Get("client_assertion") != "" && strings.Contains(logs.String(), f.Get("client_assertion")) {
			t.Error("the assertion was logged")
		}
	}
}

// An expired certificate is refused before anything is sent to the token endpoint.
func TestCertificateExpired(t *testing.T) {
	sim := newSim(t, simulator.Options{})
	now := time.Now()
	c, _ := newClient(t, Options{AllowLoopback: true, Now: func() time.Time { return now.Add(2 * time.Hour) }})
	cr, cert := certCreds(t, sim.URL, time.Hour)
	if _, err := sim.UploadCertificate(simulator.ClientID, cert.DER); err != nil {
		t.Fatal(err)
	}
	res := c.Test(context.Background(), cr)
	tok := checkNamed(t, res, model.CheckToken)
	if tok.Code != CodeCertificateExpired || *tok.SetupStep != StepUploadCertificate || !strings.Contains(tok.Detail, cert.Thumbprint) {
		t.Fatalf("token check %+v", tok)
	}
	if n := sim.Count("token"); n != 0 {
		t.Errorf("%d token requests for an expired certificate, want none", n)
	}
}
