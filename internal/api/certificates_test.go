package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/model"
)

// certCreate is a create body for a certificate connection on scenario.
func (e *testEnv) certCreate(scenario string) map[string]any {
	return map[string]any{"instance_url": e.sim.InstanceURL(scenario), "client_id": simulator.ClientID, "credential_type": "certificate"}
}

// upload sends a certificate to the simulated app registration over the
// simulator's HTTP API, as a person following the README would with curl.
func (e *testEnv) upload(cert []byte) {
	e.t.Helper()
	res, err := http.Post(e.sim.URL+"/_sim/apps/"+simulator.ClientID+"/certificates", "application/x-pem-file", bytes.NewReader(cert))
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		e.t.Fatalf("upload to the simulator: %d", res.StatusCode)
	}
}

// download gets a certificate file and checks its headers.
func (e *testEnv) download(path, account, accept, wantType, wantName string) []byte {
	e.t.Helper()
	var headers []string
	if accept != "" {
		headers = []string{"Accept", accept}
	}
	res := e.do("GET", path, account, nil, headers...)
	if res.status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, res.status, res.body)
	}
	_, params, err := mime.ParseMediaType(res.header.Get("Content-Disposition"))
	if ct := res.header.Get("Content-Type"); ct != wantType || err != nil || params["filename"] != wantName {
		e.t.Errorf("GET %s: Content-Type %q, Content-Disposition %q; want %s and %s", path, ct, res.header.Get("Content-Disposition"), wantType, wantName)
	}
	return res.body
}

func (e *testEnv) testConnection(account, id string) model.TestResult {
	e.t.Helper()
	return decodeResult(e.t.(*testing.T), e.do("POST", "/connections/"+id+"/test", account, nil))
}

func (e *testEnv) testNext(account, id string) model.TestResult {
	e.t.Helper()
	return decodeResult(e.t.(*testing.T), e.do("POST", "/connection-tests", account, map[string]any{"connection_id": id, "credential": "next_certificate"}))
}

func (e *testEnv) connection(account, id string) map[string]any {
	e.t.Helper()
	return e.do("GET", "/connections/"+id, account, nil).json(e.t)
}

// privateKey opens the stored private key of a connection's certificate
// slot, to look for it where it must never be.
func (e *testEnv) privateKey(account, id string, slot model.CertificateSlot) []byte {
	e.t.Helper()
	c, err := e.st.Connection(context.Background(), account, uuid.MustParse(id))
	if err != nil {
		e.t.Fatal(err)
	}
	cert := c.Certificate
	if slot == model.SlotNext {
		cert = c.NextCertificate
	}
	key, err := checker.OpenKey(context.Background(), e.keys, c, slot, cert.Key)
	if err != nil {
		e.t.Fatal(err)
	}
	return key
}

// keyForms are the encodings of a private key someone could send or write.
func keyForms(key []byte) []string {
	return []string{"PRIVATE KEY", base64.StdEncoding.EncodeToString(key)[:64], base64.RawURLEncoding.EncodeToString(key)[:64],
		hex.EncodeToString(key)[:64]}
}

func failedWith(t *testing.T, res model.TestResult, code, step string) {
	t.Helper()
	if res.OK || res.Error == nil || res.Error.Code != code || deref(res.Error.SetupStep) != step {
		t.Fatalf("test result %+v: want %s / %s", res.Error, code, step)
	}
}

// TestCertificateConnection is issue 11's first "done when": a certificate
// connection fails with certificate_not_uploaded until its certificate is
// uploaded to the app, then passes; Microsoft never sees a secret or the key.
func TestCertificateConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const acct = "acct-cert"

	bad := e.do("POST", "/connections", acct, with(e.certCreate("ok"), "client_secret", simulator.ClientSecret))
	if bad.status != http.StatusUnprocessableEntity || !strings.Contains(string(bad.body), `"field":"client_secret","code":"credential_conflict"`) {
		t.Errorf("certificate with a secret: %d %s", bad.status, bad.body)
	}
	if res := e.do("POST", "/connections", acct, with(e.certCreate("ok"), "credential_type", "password")); res.status != http.StatusUnprocessableEntity {
		t.Errorf("credential_type password: %d", res.status)
	}

	created := e.do("POST", "/connections", acct, e.certCreate("ok"))
	if created.status != http.StatusCreated {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	c := created.json(t)
	id := c["id"].(string)
	cert, _ := c["certificate"].(map[string]any)
	if c["credential_type"] != "certificate" || c["client_secret"] != nil || cert == nil || cert["state"] != "valid" || c["next_certificate"] != nil {
		t.Fatalf("created: %s", created.body)
	}
	notBefore, _ := time.Parse(time.RFC3339, cert["not_before"].(string))
	notAfter, _ := time.Parse(time.RFC3339, cert["not_after"].(string))
	if notAfter.Sub(notBefore) != 8760*time.Hour {
		t.Errorf("validity %v, want CERTIFICATE_VALIDITY's default 8760h", notAfter.Sub(notBefore))
	}

	// Before the upload: Microsoft's AADSTS700027, in the setup guide's terms.
	failedWith(t, e.testConnection(acct, id), dynamics.CodeCertificateNotUploaded, dynamics.StepUploadCertificate)

	pemFile := e.download("/connections/"+id+"/certificate", acct, "", mediaPEM, "dynconn-"+id+".pem")
	der := e.download("/connections/"+id+"/certificate", acct, "application/pkix-cert", mediaDER, "dynconn-"+id+".cer")
	fromPEM, err := credential.ParseCertificate(pemFile)
	if err != nil || !bytes.HasPrefix(pemFile, []byte("-----BEGIN CERTIFICATE-----")) || !bytes.Equal(fromPEM.DER, der) {
		t.Fatalf("the PEM (%v) and DER downloads differ", err)
	}
	if fromPEM.Thumbprint != cert["thumbprint"] || fromPEM.ThumbprintSHA256 != cert["thumbprint_sha256"] {
		t.Errorf("downloaded thumbprints %s / %s, resource %v / %v", fromPEM.Thumbprint, fromPEM.ThumbprintSHA256, cert["thumbprint"], cert["thumbprint_sha256"])
	}
	e.upload(pemFile)

	res := e.testConnection(acct, id)
	if !res.OK || res.Identity == nil || res.Identity.UserID != simulator.UserID || strings.Join(res.Identity.Roles, ",") != "API User" {
		t.Fatalf("after the upload: %+v", res)
	}
	if got := e.connection(acct, id)["status"]; got != "connected" {
		t.Errorf("status %v", got)
	}

	// What the simulator saw: signed assertions that verify with the
	// uploaded certificate, no secret, nothing of the private key.
	key := e.privateKey(acct, id, model.SlotCurrent)
	forms := e.sim.TokenRequests()
	if len(forms) != 2 {
		t.Fatalf("%d token requests, want 2", len(forms))
	}
	for _, f := range forms {
		if f.Has("client_secret") || f.Get("client_assertion_type") != credential.AssertionType {
			t.Errorf("token request with fields %v", f)
		}
		for _, leak := range keyForms(key) {
			if strings.Contains(f.Encode(), leak) {
				t.Errorf("the private key (%q) reached the simulator", leak[:10])
			}
		}
	}
	aud := e.sim.InstanceURL("ok") + "/" + simulator.TenantID + "/oauth2/v2.0/token"
	if signer, err := credential.Verify(forms[1].Get("client_assertion"), [][]byte{der}, aud, simulator.ClientID, time.Now()); err != nil ||
		signer.Thumbprint != fromPEM.Thumbprint {
		t.Errorf("the assertion does not verify with the uploaded certificate: %v", err)
	}
	for where, text := range map[string]string{"log": e.logs.String(), "responses": e.responses.String()} {
		for _, leak := range append(keyForms(key), forms[1].Get("client_assertion")) {
			if strings.Contains(text, leak) {
				t.Errorf("the %s hold %q", where, leak[:10])
			}
		}
	}

	// A certificate connection takes no secret.
	if res := e.do("PATCH", "/connections/"+id, acct, map[string]any{"client_secret": simulator.ClientSecret}); res.status != http.StatusUnprocessableEntity ||
		!strings.Contains(string(res.body), "credential_conflict") {
		t.Errorf("PATCH of a secret: %d %s", res.status, res.body)
	}
	// A secret connection has no certificate to download.
	secretID := e.do("POST", "/connections", "acct-secret", e.simCreate("ok")).json(t)["id"].(string)
	if res := e.do("GET", "/connections/"+secretID+"/certificate", "acct-secret", nil); res.status != http.StatusNotFound {
		t.Errorf("certificate of a secret connection: %d", res.status)
	}
	if res := e.do("GET", "/connections/"+id+"/certificate", "acct-other", nil); res.status != http.StatusNotFound {
		t.Errorf("another account's certificate: %d", res.status)
	}
}

// clock is a test's settable clock for Options.Now.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time           { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(by time.Duration) { c.offset.Add(int64(by)) }

// TestCertificateRenewal: a next certificate fails its test until it is
// uploaded, cannot be activated before a test passed within the hour, and
// once activated is the one the connection signs in with.
func TestCertificateRenewal(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	e := newEnv(t, func(o *envConfig) { o.Now = clk.Now })
	const acct = "acct-renew"
	id := e.do("POST", "/connections", acct, e.certCreate("ok")).json(t)["id"].(string)
	old := e.download("/connections/"+id+"/certificate", acct, "", mediaPEM, "dynconn-"+id+".pem")
	e.upload(old)
	if res := e.testConnection(acct, id); !res.OK {
		t.Fatalf("first certificate: %+v", res.Error)
	}
	oldKey := e.privateKey(acct, id, model.SlotCurrent)

	if res := e.do("POST", "/connections/"+id+"/certificate/next/activate", acct, nil); res.status != http.StatusNotFound {
		t.Errorf("activate without a next certificate: %d", res.status)
	}
	if res := e.do("GET", "/connections/"+id+"/certificate/next", acct, nil); res.status != http.StatusNotFound {
		t.Errorf("next certificate before there is one: %d", res.status)
	}
	made := e.do("POST", "/connections/"+id+"/certificate/next", acct, nil)
	next := made.json(t)
	if made.status != http.StatusCreated || made.header.Get("Location") != "/connections/"+id+"/certificate/next" ||
		next["thumbprint"] == nil || next["test_passed_at"] != nil {
		t.Fatalf("next: %d %s", made.status, made.body)
	}
	if got := e.connection(acct, id)["next_certificate"].(map[string]any); got["thumbprint"] != next["thumbprint"] {
		t.Errorf("resource's next certificate %v", got)
	}

	untested := e.do("POST", "/connections/"+id+"/certificate/next/activate", acct, nil)
	if untested.status != http.StatusConflict || untested.json(t)["type"] != typeCertificateUntested ||
		!strings.Contains(untested.json(t)["detail"].(string), "next_certificate") {
		t.Errorf("activate before a test: %d %s", untested.status, untested.body)
	}
	failedWith(t, e.testNext(acct, id), dynamics.CodeCertificateNotUploaded, dynamics.StepUploadCertificate)
	if res := e.do("POST", "/connections/"+id+"/certificate/next/activate", acct, nil); res.status != http.StatusConflict {
		t.Errorf("activate after a failed test: %d", res.status)
	}

	e.upload(e.download("/connections/"+id+"/certificate/next", acct, "application/pkix-cert", mediaDER, "dynconn-"+id+"-next.cer"))
	if res := e.testNext(acct, id); !res.OK {
		t.Fatalf("next certificate after its upload: %+v", res.Error)
	}
	passed := e.connection(acct, id)["next_certificate"].(map[string]any)
	if passed["test_passed_at"] == nil {
		t.Errorf("no test_passed_at after a pass: %v", passed)
	}

	// A pass more than an hour old does not count.
	clk.advance(61 * time.Minute)
	if res := e.do("POST", "/connections/"+id+"/certificate/next/activate", acct, nil); res.status != http.StatusConflict {
		t.Errorf("activate an hour after the pass: %d", res.status)
	}
	clk.advance(-61 * time.Minute)

	activated := e.do("POST", "/connections/"+id+"/certificate/next/activate", acct, nil)
	a := activated.json(t)
	if activated.status != http.StatusOK || a["certificate"].(map[string]any)["thumbprint"] != next["thumbprint"] ||
		a["next_certificate"] != nil || a["status"] != "untested" || activated.header.Get("ETag") == "" {
		t.Fatalf("activate: %d %s", activated.status, activated.body)
	}
	// The old private key is gone, and the new one moved to the current slot.
	newKey := e.privateKey(acct, id, model.SlotCurrent)
	if bytes.Equal(newKey, oldKey) {
		t.Error("the old private key is still the current one")
	}
	// The customer removes the old certificate from the app: the
	// connection signs in with the new one.
	oldCert, _ := credential.ParseCertificate(old)
	if !e.sim.RemoveCertificate(simulator.ClientID, oldCert.Thumbprint) {
		t.Fatal("the old certificate was not uploaded")
	}
	if res := e.testConnection(acct, id); !res.OK {
		t.Fatalf("after the activation: %+v", res.Error)
	}
	var actions []string
	for _, ev := range e.do("GET", "/connections/"+id+"/events", acct, nil).json(t)["items"].([]any) {
		actions = append(actions, ev.(map[string]any)["action"].(string))
	}
	if got := strings.Join(actions, ","); !strings.HasPrefix(got, "connection.tested,connection.certificate_activated,connection.tested,connection.next_certificate_created,") {
		t.Errorf("events, newest first: %s", got)
	}
}

// TestSecretConnectionMovesToCertificate: a secret connection that takes a
// certificate keeps no trace of its secret, not even sealed.
func TestSecretConnectionMovesToCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const acct = "acct-move"
	id := e.do("POST", "/connections", acct, e.simCreate("ok")).json(t)["id"].(string)
	var sealedSecret []byte
	if err := e.pool.QueryRow(context.Background(), `SELECT secret_ciphertext FROM connections WHERE id = $1`, id).Scan(&sealedSecret); err != nil {
		t.Fatal(err)
	}
	if res := e.do("POST", "/connections/"+id+"/certificate/next", acct, nil); res.status != http.StatusCreated {
		t.Fatalf("next: %d %s", res.status, res.body)
	}
	e.upload(e.download("/connections/"+id+"/certificate/next", acct, "", mediaPEM, "dynconn-"+id+"-next.pem"))
	if res := e.testNext(acct, id); !res.OK {
		t.Fatalf("test of the next certificate: %+v", res.Error)
	}
	moved := e.do("POST", "/connections/"+id+"/certificate/next/activate", acct, nil).json(t)
	if moved["credential_type"] != "certificate" || moved["client_secret"] != nil || moved["certificate"] == nil {
		t.Fatalf("after the move: %v", moved)
	}
	var secretColumns int
	if err := e.pool.QueryRow(context.Background(), `SELECT num_nonnulls(secret_ciphertext, secret_wrapped_dek, secret_kek_id,
		secret_updated_at, secret_expires_at, secret_expired_at) FROM connections WHERE id = $1`, id).Scan(&secretColumns); err != nil || secretColumns != 0 {
		t.Errorf("%d secret columns are set after the move (%v), want none", secretColumns, err)
	}
	if res := e.testConnection(acct, id); !res.OK {
		t.Fatalf("the moved connection: %+v", res.Error)
	}

	// The whole database, as a backup would hold it.
	out, err := exec.Command("pg_dump", "--no-owner", e.pool.Config().ConnString()).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(out, []byte(id)) {
		t.Fatal("the dump does not hold the connection")
	}
	key := e.privateKey(acct, id, model.SlotCurrent)
	for what, leak := range map[string]string{
		"the secret": simulator.ClientSecret, "the sealed secret": hex.EncodeToString(sealedSecret),
		"a PEM private key": "PRIVATE KEY", "the private key": hex.EncodeToString(key)[:64],
	} {
		if bytes.Contains(out, []byte(leak)) {
			t.Errorf("the dump holds %s", what)
		}
	}
}

// TestCertificateExpired: a certificate made long ago has expired; the
// resource says so and a test refuses it without asking Microsoft.
func TestCertificateExpired(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	e := newEnv(t, func(o *envConfig) { o.Now = clk.Now })
	const acct = "acct-expired"
	clk.advance(-400 * 24 * time.Hour)
	id := e.do("POST", "/connections", acct, e.certCreate("ok")).json(t)["id"].(string)
	clk.advance(400 * 24 * time.Hour)
	e.upload(e.download("/connections/"+id+"/certificate", acct, "", mediaPEM, "dynconn-"+id+".pem"))
	failedWith(t, e.testConnection(acct, id), dynamics.CodeCertificateExpired, dynamics.StepUploadCertificate)
	if n := e.sim.Count("token"); n != 0 {
		t.Errorf("%d token requests for an expired certificate", n)
	}
	listed := e.do("GET", "/connections?secret_state=expired", acct, nil).json(t)["items"].([]any)
	if len(listed) != 1 || listed[0].(map[string]any)["certificate"].(map[string]any)["state"] != "expired" {
		t.Errorf("expired certificates listed: %v", listed)
	}
}
