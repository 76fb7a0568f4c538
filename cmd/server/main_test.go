package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs the real program in-process and waits until /readyz says
// it is ready. It returns the base URL and a function that stops the server
// and returns run's error.
func startServer(t *testing.T, env map[string]string, logs io.Writer) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"server", "serve"}, func(k string) string { return env[k] }, io.Discard, logs)
	}()
	base := "http://" + env["LISTEN_ADDR"]
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-errc:
			cancel()
			t.Fatalf("server exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("server not ready after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop := func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(25 * time.Second):
			return errors.New("server did not stop within 25s")
		}
	}
	return base, stop
}

// TestSecretNeverLeaks runs create, read, update and list through the real
// program with debug logging, then searches the logs, every response and a
// pg_dump of the database for the plaintext secrets.
func TestSecretNeverLeaks(t *testing.T) {
	dbURL := storetest.URL(t)
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	const hs = "e2e-signing-secret-0123456789-0123456789"
	env := map[string]string{
		"DATABASE_URL": dbURL, "LISTEN_ADDR": freeAddr(t), "ENCRYPTION_KEYS": key,
		"AUTH_HS256_SECRET": hs, "LOG_LEVEL": "debug", "METRICS_ADDR": freeAddr(t),
		"DYNAMICS_ALLOW_LOOPBACK": "true",
	}
	sim := simulator.New(simulator.Options{})
	defer sim.Close()
	logs := &logtest.Buffer{}
	base, stop := startServer(t, env, logs)

	// The rotated secret is the simulator's, so the test below gets a token.
	secrets := []string{"Xy7Q~first.secret-value_0123456789abcd", simulator.ClientSecret}
	tok, err := auth.NewToken([]byte(hs), "acct-e2e", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var responses bytes.Buffer
	raw := func(bearer, method, path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		fmt.Fprintf(&responses, "%v\n%s\n", res.Header, b)
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
		}
		return b
	}
	callAs := func(bearer, method, path, body string) map[string]any {
		t.Helper()
		var m map[string]any
		_ = json.Unmarshal(raw(bearer, method, path, body), &m)
		return m
	}
	call := func(method, path, body string) map[string]any {
		t.Helper()
		return callAs(tok, method, path, body)
	}
	created := call("POST", "/connections", `{"instance_url":"`+sim.InstanceURL("ok")+`","client_id":"`+simulator.ClientID+`","client_secret":"`+secrets[0]+`\n"}`)
	id := created["id"].(string)
	call("GET", "/connections/"+id, "")
	call("PATCH", "/connections/"+id, `{"client_secret":"`+secrets[1]+`"}`)
	call("GET", "/connections", "")
	if res := call("POST", "/connections/"+id+"/test", ""); res["ok"] != true {
		t.Fatalf("test through the simulator failed: %v", res["error"])
	}
	call("POST", "/connection-tests", `{"connection_id":"`+id+`"}`)

	// A worker gets an access token; the connection then moves to a
	// certificate, and the worker gets a token signed for by its key.
	worker, err := auth.NewToken([]byte(hs), "acct-e2e", "worker", time.Hour, auth.ScopeToken)
	if err != nil {
		t.Fatal(err)
	}
	accessTokens := []string{callAs(worker, "POST", "/connections/"+id+"/token", "")["access_token"].(string)}
	call("POST", "/connections/"+id+"/certificate/next", "")
	if _, err := sim.UploadCertificate(simulator.ClientID, raw(tok, "GET", "/connections/"+id+"/certificate/next", "")); err != nil {
		t.Fatal(err)
	}
	if res := call("POST", "/connection-tests", `{"connection_id":"`+id+`","credential":"next_certificate"}`); res["ok"] != true {
		t.Fatalf("test of the next certificate failed: %v", res["error"])
	}
	if moved := call("POST", "/connections/"+id+"/certificate/next/activate", ""); moved["credential_type"] != "certificate" {
		t.Fatalf("activate: %v", moved)
	}
	accessTokens = append(accessTokens, callAs(worker, "POST", "/connections/"+id+"/token", "")["access_token"].(string))
	if accessTokens[0] == accessTokens[1] {
		t.Error("the token of the old credential was handed out after the move")
	}
	// A refused request that carries a secret must not echo it either.
	req, _ := http.NewRequest("POST", base+"/connections", strings.NewReader(`{"client_secret":"`+secrets[0]+`","clientId":1`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		responses.Write(b)
	}

	res, err := http.Get("http://" + env["METRICS_ADDR"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(metrics), `dynconn_http_requests_total{method="POST",route="/connections",status="201"} 1`) {
		t.Errorf("metrics lack the create:\n%s", metrics)
	}
	responses.Write(metrics)
	res, err = http.Get("http://" + env["METRICS_ADDR"] + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	profile, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(profile), "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine on the metrics listener: %d %.200s", res.StatusCode, profile)
	}

	if err := stop(); err != nil {
		t.Fatalf("run returned %v after SIGTERM-equivalent, want nil", err)
	}
	dump, err := exec.Command("pg_dump", "--data-only", dbURL).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, dump)
	}
	if !strings.Contains(string(dump), id) {
		t.Fatalf("pg_dump does not hold the connection %s: the search below would prove nothing", id)
	}
	if !strings.Contains(logs.String(), `"route":"/connections/{id}"`) {
		t.Fatalf("debug logs lack the access log lines: the search below would prove nothing\n%s", logs.String())
	}
	for _, s := range secrets {
		for where, text := range map[string]string{"logs": logs.String(), "responses": responses.String(), "pg_dump": string(dump)} {
			if strings.Contains(text, s) {
				t.Errorf("the plaintext secret appears in the %s", where)
			}
		}
	}
	for where, text := range map[string]string{"logs": logs.String(), "responses": responses.String(), "pg_dump": string(dump)} {
		if strings.Contains(text, "PRIVATE KEY") {
			t.Errorf("a private key appears in the %s", where)
		}
	}
	for _, at := range accessTokens {
		for where, text := range map[string]string{"logs": logs.String(), "pg_dump": string(dump)} {
			if strings.Contains(text, at) {
				t.Errorf("a worker's access token appears in the %s", where)
			}
		}
	}
	if strings.Contains(logs.String(), tok) {
		t.Error("the bearer token appears in the logs")
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL": "mysql://x", "LISTEN_ADDR": "nope", "ENCRYPTION_KEYS": "k1:not-base64!",
		"AUTH_HS256_SECRET": "short", "DYNAMICS_ALLOW_LOOPBACK": "perhaps", "LOG_LEVEL": "loud",
		"CORS_ALLOWED_ORIGINS": "https://app.example.com/",
		"RECHECK_INTERVAL":     "daily", "RECHECK_WORKERS": "0",
	}
	err := run(context.Background(), []string{"server", "serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run accepted a broken configuration")
	}
	for _, v := range []string{"DATABASE_URL", "LISTEN_ADDR", "ENCRYPTION_KEYS", "AUTH_HS256_SECRET", "DYNAMICS_ALLOW_LOOPBACK", "LOG_LEVEL",
		"CORS_ALLOWED_ORIGINS", "RECHECK_INTERVAL", "RECHECK_WORKERS"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error does not name %s:\n%v", v, err)
		}
	}
	if strings.Contains(err.Error(), "not-base64!") {
		t.Errorf("error echoes a secret value:\n%v", err)
	}
}

// TestScheduledRechecks runs the real program with RECHECK_INTERVAL=1s: it
// warns that the interval is short, re-checks a connection created through
// the API on its own, shows it in the resource, the feed and the metrics,
// and stops cleanly.
func TestScheduledRechecks(t *testing.T) {
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	const hs = "e2e-signing-secret-0123456789-0123456789"
	env := map[string]string{
		"DATABASE_URL": storetest.URL(t), "LISTEN_ADDR": freeAddr(t), "ENCRYPTION_KEYS": key,
		"AUTH_HS256_SECRET": hs, "METRICS_ADDR": freeAddr(t), "DYNAMICS_ALLOW_LOOPBACK": "true",
		"RECHECK_INTERVAL": "1s", "RECHECK_WORKERS": "2",
	}
	sim := simulator.New(simulator.Options{})
	defer sim.Close()
	logs := &logtest.Buffer{}
	base, stop := startServer(t, env, logs)
	tok, err := auth.NewToken([]byte(hs), "acct-e2e", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	req, _ := http.NewRequest("POST", base+"/connections", strings.NewReader(`{"instance_url":"`+sim.InstanceURL("ok")+
		`","client_id":"`+simulator.ClientID+`","client_secret":"`+simulator.ClientSecret+`"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	_ = json.NewDecoder(res.Body).Decode(&created)
	res.Body.Close()
	id, _ := created["id"].(string)

	deadline := time.Now().Add(60 * time.Second)
	var conn map[string]any
	for {
		conn = get(base + "/connections/" + id)
		if last, ok := conn["last_test"].(map[string]any); ok && last["trigger"] == "scheduled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled re-check within a minute: %v", conn)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if conn["status"] != "connected" || conn["last_checked_at"] == nil || conn["next_check_at"] == nil {
		t.Errorf("after a re-check: %v", conn)
	}
	var found bool
	for !found && time.Now().Before(deadline) {
		for _, e := range get(base + "/events?type=connection.status_changed")["items"].([]any) {
			data := e.(map[string]any)["data"].(map[string]any)
			found = found || data["connection_id"] == id && data["trigger"] == "scheduled" && data["to"] == "connected"
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !found {
		t.Error("GET /events lacks the scheduled status change")
	}
	// River reports a job's completion a moment after the job's work.
	want := []string{`dynconn_rechecks_total{outcome="connected"}`, `dynconn_job_run_seconds_count{kind="recheck_batch",result="completed"}`,
		`dynconn_connection_tests_total{outcome="ok",trigger="scheduled"}`}
	var missing []string
	for {
		res, err := http.Get("http://" + env["METRICS_ADDR"] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(res.Body)
		res.Body.Close()
		missing = missing[:0]
		for _, m := range want {
			if !strings.Contains(string(metrics), m) {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("metrics lack %v", missing)
	}
	if err := stop(); err != nil {
		t.Fatalf("run returned %v on shutdown", err)
	}
	if !strings.Contains(logs.String(), "RECHECK_INTERVAL is under a minute") {
		t.Error("no warning about the short interval")
	}
}

// TestMigrateVersion: `migrate up` applies ours and River's, and `migrate
// version` reports both beside this binary's.
func TestMigrateVersion(t *testing.T) {
	env := map[string]string{"DATABASE_URL": storetest.URL(t)}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"server", "migrate", "up"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("schema version %d (dirty: false); this binary's version is %d\njob queue (River) schema version %d; this binary's version is %d\n",
		store.SchemaVersion, store.SchemaVersion, store.RiverSchemaVersion, store.RiverSchemaVersion)
	if out.String() != want {
		t.Errorf("migrate up printed\n%s\nwant\n%s", out.String(), want)
	}
}
