package store_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

const (
	account = "acct-1"
	other   = "acct-2"
)

// testAudit is who the tests' changes are by.
var testAudit = store.Audit{Actor: "tester", RequestID: "req-1"}

// noCheck lets every delete through.
func noCheck(model.Connection) error { return nil }

// newConnection returns a connection for account that no other call returns
// a duplicate of.
func newConnection(account string) model.Connection {
	id := uuid.NewString()
	return model.Connection{
		ID:             id,
		Account:        account,
		Name:           "Contoso " + id[:8],
		InstanceURL:    "https://org" + id[:8] + ".crm.dynamics.com",
		Cloud:          model.CloudPublic,
		ClientID:       uuid.NewString(),
		CredentialType: model.CredentialClientSecret,
		Secret: model.SealedSecret{
			Ciphertext: []byte("ciphertext-" + id),
			WrappedDEK: []byte("wrapped-" + id),
			KEKID:      "k1",
		},
	}
}

// create stores c and fails the test on error.
func create(t testing.TB, s *store.Store, c model.Connection) model.Connection {
	t.Helper()
	got, err := s.CreateConnection(context.Background(), c, testAudit)
	if err != nil {
		t.Fatalf("CreateConnection: %v", err)
	}
	return got
}

// get returns the connection and fails the test on error.
func get(t testing.TB, s *store.Store, account, id string) model.Connection {
	t.Helper()
	got, err := s.Connection(context.Background(), account, uuid.MustParse(id))
	if err != nil {
		t.Fatalf("Connection(%q, %q): %v", account, id, err)
	}
	return got
}

func ptr[T any](v T) *T { return &v }

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := store.Open(ctx, storetest.URL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var timeout, app string
	if err := s.Pool().QueryRow(ctx, `SELECT current_setting('statement_timeout'), current_setting('application_name')`).Scan(&timeout, &app); err != nil {
		t.Fatal(err)
	}
	if timeout != "5s" || app != "dynconn" {
		t.Errorf("statement_timeout %q, application_name %q; want 5s, dynconn", timeout, app)
	}
}

// TestErrorsHidePassword checks that a bad DATABASE_URL never puts the
// password into an error, which would end up in logs.
func TestErrorsHidePassword(t *testing.T) {
	t.Parallel()
	const password = "hunter2-do-not-print"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unreachable := "postgres://dynconn:" + password + "@127.0.0.1:1/dynconn?sslmode=disable&connect_timeout=2"
	for name, dbURL := range map[string]string{
		"unreachable server": unreachable,
		"bad port":           "postgres://dynconn:" + password + "@127.0.0.1:notaport/dynconn",
		"bad escape":         "postgres://dynconn:" + password + "%zz@127.0.0.1/dynconn",
		"unknown scheme":     "mysql://dynconn:" + password + "@127.0.0.1/dynconn",
	} {
		t.Run(name, func(t *testing.T) {
			errs := map[string]error{}
			_, errs["Open"] = store.Open(ctx, dbURL, nil)
			errs["Migrate"] = store.Migrate(dbURL, "up")
			_, _, errs["MigrationVersion"] = store.MigrationVersion(dbURL)
			for fn, err := range errs {
				if err == nil {
					t.Errorf("%s succeeded", fn)
					continue
				}
				if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), url.QueryEscape(password)) {
					t.Errorf("%s error reveals the password: %v", fn, err)
				}
			}
		})
	}
}
