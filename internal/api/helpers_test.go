package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynconn/dynconn/internal/logtest"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dynconn/dynconn"
	"github.com/dynconn/dynconn/internal/auth"
	"github.com/dynconn/dynconn/internal/checker"
	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// hsSecret signs the tests' tokens.
const hsSecret = "test-signing-secret-that-is-long-enough-0123456789"

// specRouter finds the operation of a request in openapi.yaml; every
// response a test receives is validated against it.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(dynconn.OpenAPI)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	doc.Servers = nil // match any host, such as httptest's
	return gorillamux.NewRouter(doc)
})

// testEnv is a real API server on a fresh database.
type testEnv struct {
	t   testing.TB
	srv *httptest.Server
	st  *store.Store
	// pool is st's, for tests that read or break the database with SQL.
	pool *pgxpool.Pool
	keys *crypto.Keyring
	logs *logtest.Buffer
	// sim stands in for Microsoft; connections whose instance_url is
	// sim.InstanceURL(scenario) meet that scenario.
	sim *simulator.Server
	// responses collects every response body, to search for secrets.
	responses *logtest.Buffer
}

// envConfig is what a test may change of a testEnv: the API's options and
// the checker's.
type envConfig struct {
	Options
	checker checker.Options
	sim     simulator.Options
}

func newEnv(t testing.TB, opts ...func(*envConfig)) *testEnv {
	t.Helper()
	keys, err := crypto.ParseKeyring(mustKey(t, "k1"), "")
	if err != nil {
		t.Fatal(err)
	}
	return newEnvWith(t, storetest.NewPool(t), keys, opts...)
}

// newEnvWith is a server on the database of pool, with keys.
func newEnvWith(t testing.TB, pool *pgxpool.Pool, keys *crypto.Keyring, opts ...func(*envConfig)) *testEnv {
	t.Helper()
	st := store.New(pool)
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v, err := auth.NewVerifier(context.Background(), auth.Config{HS256Secret: hsSecret, AccountClaim: "account_id"})
	if err != nil {
		t.Fatal(err)
	}
	o := envConfig{Options: Options{AllowLoopback: true}, sim: simulator.Options{SlowDelay: 200 * time.Millisecond}}
	for _, f := range opts {
		f(&o)
	}
	sim := simulator.New(o.sim)
	t.Cleanup(sim.Close)
	dyn := dynamics.NewClient(dynamics.Options{AllowLoopback: true, Logger: logger, StepTimeout: 2 * time.Second, Deadline: 4 * time.Second})
	t.Cleanup(dyn.CloseIdleConnections)
	chk := checker.New(st, keys, dyn, o.checker)
	srv := httptest.NewServer(NewServer(logger, st, keys, v, chk, o.Options))
	t.Cleanup(srv.Close)
	return &testEnv{t: t, srv: srv, st: st, pool: pool, keys: keys, logs: logs, sim: sim, responses: &logtest.Buffer{}}
}

// mustKey returns a keyring entry "id:base64" with a fresh key.
func mustKey(t testing.TB, id string) string {
	t.Helper()
	line, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, b64, _ := strings.Cut(line, ":")
	return id + ":" + b64
}

func token(t testing.TB, account string) string {
	t.Helper()
	tok, err := auth.NewToken([]byte(hsSecret), account, "user-"+account, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// do sends a request as account ("" sends none) with a JSON body (a string is
// sent as is) and checks the response against openapi.yaml.
func (e *testEnv) do(method, path, account string, body any, headers ...string) response {
	e.t.Helper()
	var rdr io.Reader
	if body != nil {
		b, ok := body.(string)
		if !ok {
			raw, err := json.Marshal(body)
			if err != nil {
				e.t.Fatal(err)
			}
			b = string(raw)
		}
		rdr = strings.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rdr)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if account != "" {
		req.Header.Set("Authorization", "Bearer "+token(e.t, account))
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = e.responses.Write(got)
	checkAgainstSpec(e.t, req, res, got)
	return response{status: res.StatusCode, header: res.Header, body: got}
}

// checkAgainstSpec fails the test when a response is not what openapi.yaml
// says: an undocumented status, a body that does not match its schema.
func checkAgainstSpec(t testing.TB, req *http.Request, res *http.Response, body []byte) {
	t.Helper()
	router, err := specRouter()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  res.StatusCode,
		Header:  res.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("%s %s → %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
}

// validCreate is a create body that passes validation.
func validCreate() map[string]any {
	return map[string]any{
		"instance_url":  "https://contoso.crm.dynamics.com",
		"client_id":     "22222222-2222-2222-2222-222222222222",
		"client_secret": "Abc8Q~pasted.secret-value_0123456789xyz",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == deleteField {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// deleteField removes a field in with.
var deleteField = &struct{}{}
