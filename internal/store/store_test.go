package store_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
		ID:          id,
		Account:     account,
		Name:        "Contoso " + id[:8],
		InstanceURL: "https://org" + id[:8] + ".crm.dynamics.com",
		Cloud:       model.CloudPublic,
		ClientID:    uuid.NewString(),
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
	got, err := s.Connection(context.Background(), account, id)
	if err != nil {
		t.Fatalf("Connection(%q, %q): %v", account, id, err)
	}
	return got
}

func ptr[T any](v T) *T { return &v }

func TestCreateConnection(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()

	t.Run("stores every field and fills in defaults", func(t *testing.T) {
		in := newConnection(account)
		in.TenantID = ptr(uuid.NewString())
		expires := time.Date(2027, 1, 2, 3, 4, 5, 123456000, time.UTC)
		in.SecretExpiresAt = &expires
		before := time.Now()

		got := create(t, s, in)

		if got.CreatedAt.Before(before.Add(-time.Minute)) || !got.CreatedAt.Equal(got.UpdatedAt) || !got.CreatedAt.Equal(got.SecretUpdatedAt) {
			t.Errorf("times not now(): created %v updated %v secret updated %v", got.CreatedAt, got.UpdatedAt, got.SecretUpdatedAt)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
		}
		want := in
		want.Status = model.StatusUntested
		want.Version = 1
		want.CreatedAt, want.UpdatedAt, want.SecretUpdatedAt = got.CreatedAt, got.UpdatedAt, got.SecretUpdatedAt
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CreateConnection returned (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(got, get(t, s, account, in.ID)); diff != "" {
			t.Errorf("Connection differs from what CreateConnection returned (-create +get):\n%s", diff)
		}
	})

	t.Run("keeps given times, status and last test", func(t *testing.T) {
		in := newConnection(account)
		in.CreatedAt = time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
		in.UpdatedAt = in.CreatedAt.Add(time.Hour)
		in.SecretUpdatedAt = in.CreatedAt.Add(2 * time.Hour)
		in.Status = model.StatusConnected
		in.LastTest = json.RawMessage(`{"ok": true}`) // as jsonb prints it

		got := create(t, s, in)
		in.Version = 1
		if diff := cmp.Diff(in, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("invalid cloud is refused by the database", func(t *testing.T) {
		in := newConnection(account)
		in.Cloud = "mars"
		if _, err := s.CreateConnection(ctx, in, testAudit); err == nil {
			t.Fatal("CreateConnection with cloud mars succeeded")
		}
	})
}

func TestCreateConnectionDuplicate(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	first := create(t, s, newConnection(account))

	t.Run("same instance and client returns ConflictError with existing id", func(t *testing.T) {
		dup := newConnection(account)
		dup.InstanceURL, dup.ClientID = first.InstanceURL, first.ClientID
		_, err := s.CreateConnection(ctx, dup, testAudit)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
		var conflict *store.ConflictError
		if !errors.As(err, &conflict) || conflict.ExistingID != first.ID {
			t.Fatalf("err = %#v, want *ConflictError{ExistingID: %q}", err, first.ID)
		}
		if err.Error() != "connection already exists" {
			t.Errorf("Error() = %q", err.Error())
		}
		if _, err := s.Connection(ctx, account, dup.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("duplicate was stored: Connection err = %v", err)
		}
	})

	t.Run("same instance and client in another account is allowed", func(t *testing.T) {
		c := newConnection(other)
		c.InstanceURL, c.ClientID = first.InstanceURL, first.ClientID
		create(t, s, c)
	})

	t.Run("same instance with another client is allowed", func(t *testing.T) {
		c := newConnection(account)
		c.InstanceURL = first.InstanceURL
		create(t, s, c)
	})
}

func TestConnectionNotFound(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	c := create(t, s, newConnection(account))

	for name, tc := range map[string]struct{ account, id string }{
		"unknown id":           {account, uuid.NewString()},
		"another account's id": {other, c.ID},
		"id that is no uuid":   {account, "not-a-uuid"},
		"empty id":             {account, ""},
		"sql in id":            {account, "' OR '1'='1"},
	} {
		t.Run(name+" returns ErrNotFound", func(t *testing.T) {
			_, err := s.Connection(context.Background(), tc.account, tc.id)
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}

	t.Run("upper-case id finds the row", func(t *testing.T) {
		get(t, s, account, strings.ToUpper(c.ID))
	})
}

func TestConnectionsPagination(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()

	// Seven rows; three share one created_at, so only the id orders them.
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for _, offset := range []int{0, 1, 1, 1, 2, 3, 4} {
		c := newConnection(account)
		c.CreatedAt = base.Add(time.Duration(offset) * time.Microsecond)
		create(t, s, c)
		want = append(want, fmt.Sprintf("%d/%s", offset, c.ID))
	}
	create(t, s, newConnection(other)) // must not show up
	slices.Sort(want)                  // offset, then id: the order Connections promises

	var got []string
	cursor := ""
	for page := 0; ; page++ {
		items, next, err := s.Connections(ctx, account, store.Page{Limit: 3, Cursor: cursor}, store.Filter{})
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if wantLen := min(3, 7-3*page); len(items) != wantLen {
			t.Fatalf("page %d has %d items, want %d", page, len(items), wantLen)
		}
		for _, c := range items {
			if c.Account != account {
				t.Fatalf("page %d lists another account's connection %s", page, c.ID)
			}
			got = append(got, fmt.Sprintf("%d/%s", c.CreatedAt.Sub(base).Microseconds(), c.ID))
		}
		if next == "" {
			if page != 2 {
				t.Fatalf("next cursor empty after page %d, want after page 2", page)
			}
			break
		}
		if page == 2 {
			t.Fatalf("page 2 (the last) has next cursor %q", next)
		}
		cursor = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows over all pages (-want +got):\n%s", diff)
	}

	t.Run("exactly one full page has no next cursor", func(t *testing.T) {
		items, next, err := s.Connections(ctx, account, store.Page{Limit: 7}, store.Filter{})
		if err != nil || len(items) != 7 || next != "" {
			t.Errorf("got %d items, next %q, err %v; want 7, \"\", nil", len(items), next, err)
		}
	})

	t.Run("zero limit means the default", func(t *testing.T) {
		items, _, err := s.Connections(ctx, account, store.Page{}, store.Filter{})
		if err != nil || len(items) != 7 {
			t.Errorf("got %d items, err %v; want 7, nil", len(items), err)
		}
	})

	t.Run("account without connections gets an empty page", func(t *testing.T) {
		items, next, err := s.Connections(ctx, "nobody", store.Page{Limit: 3}, store.Filter{})
		if err != nil || len(items) != 0 || next != "" {
			t.Errorf("got %v, %q, %v; want no items, \"\", nil", items, next, err)
		}
	})
}

func TestConnectionsInvalidCursor(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, cursor := range map[string]string{
		"not base64":       "!!!",
		"no separator":     enc("2025-01-01T00:00:00Z"),
		"bad time":         enc("yesterday|" + uuid.NewString()),
		"bad id":           enc("2025-01-01T00:00:00Z|42"),
		"padded base64":    base64.URLEncoding.EncodeToString([]byte("2025-01-01T00:00:00.1Z|" + uuid.NewString())),
		"sql in the id":    enc("2025-01-01T00:00:00Z|' OR 1=1 --"),
		"empty both parts": enc("|"),
	} {
		t.Run(name+" returns ErrInvalidCursor", func(t *testing.T) {
			_, _, err := s.Connections(context.Background(), account, store.Page{Limit: 3, Cursor: cursor}, store.Filter{})
			if !errors.Is(err, store.ErrInvalidCursor) {
				t.Errorf("err = %v, want ErrInvalidCursor", err)
			}
		})
	}
}

func TestUpdateConnection(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	old := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

	t.Run("writes mutable fields and ignores id, account and created_at", func(t *testing.T) {
		in := newConnection(account)
		in.CreatedAt, in.UpdatedAt, in.SecretUpdatedAt = old, old, old
		c := create(t, s, in)

		tenant := uuid.NewString()
		got, err := s.UpdateConnection(ctx, account, c.ID, testAudit, func(c *model.Connection) error {
			c.ID, c.Account, c.CreatedAt = uuid.NewString(), other, time.Now()
			c.Name = "renamed"
			c.InstanceURL = "https://renamed.crm9.dynamics.com"
			c.Cloud = model.CloudGCC
			c.ClientID = uuid.NewString()
			c.TenantID = &tenant
			c.Status = model.StatusFailing
			c.LastTest = json.RawMessage(`{"ok":false}`)
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateConnection: %v", err)
		}
		if got.ID != c.ID || got.Account != account || !got.CreatedAt.Equal(old) {
			t.Errorf("id, account or created_at changed: %s %s %v", got.ID, got.Account, got.CreatedAt)
		}
		if !got.UpdatedAt.After(old) {
			t.Errorf("UpdatedAt = %v, want now", got.UpdatedAt)
		}
		if !got.SecretUpdatedAt.Equal(old) {
			t.Errorf("SecretUpdatedAt = %v, want unchanged %v: the secret did not change", got.SecretUpdatedAt, old)
		}
		if got.Name != "renamed" || got.Cloud != model.CloudGCC || *got.TenantID != tenant || got.Status != model.StatusFailing {
			t.Errorf("update not written: %+v", got)
		}
		if diff := cmp.Diff(got, get(t, s, account, c.ID)); diff != "" {
			t.Errorf("stored row differs from returned (-returned +stored):\n%s", diff)
		}
		if _, err := s.Connection(ctx, other, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("row moved to another account: err = %v", err)
		}
	})

	t.Run("new sealed secret sets secret_updated_at to now", func(t *testing.T) {
		in := newConnection(account)
		in.SecretUpdatedAt = old
		c := create(t, s, in)
		got, err := s.UpdateConnection(ctx, account, c.ID, testAudit, func(c *model.Connection) error {
			c.Secret = model.SealedSecret{Ciphertext: []byte("new"), WrappedDEK: []byte("dek"), KEKID: "k2"}
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateConnection: %v", err)
		}
		if !got.SecretUpdatedAt.Equal(got.UpdatedAt) {
			t.Errorf("SecretUpdatedAt = %v, want now (UpdatedAt %v)", got.SecretUpdatedAt, got.UpdatedAt)
		}
		if diff := cmp.Diff(model.SealedSecret{Ciphertext: []byte("new"), WrappedDEK: []byte("dek"), KEKID: "k2"}, got.Secret); diff != "" {
			t.Errorf("secret (-want +got):\n%s", diff)
		}
	})

	t.Run("given secret_updated_at is kept", func(t *testing.T) {
		c := create(t, s, newConnection(account))
		at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		got, err := s.UpdateConnection(ctx, account, c.ID, testAudit, func(c *model.Connection) error {
			c.Secret.Ciphertext = []byte("new")
			c.SecretUpdatedAt = at
			c.SecretExpiresAt = &at
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateConnection: %v", err)
		}
		if !got.SecretUpdatedAt.Equal(at) || !got.SecretExpiresAt.Equal(at) {
			t.Errorf("SecretUpdatedAt %v, SecretExpiresAt %v, want both %v", got.SecretUpdatedAt, got.SecretExpiresAt, at)
		}
	})

	t.Run("error from update aborts and is returned", func(t *testing.T) {
		c := create(t, s, newConnection(account))
		errStop := errors.New("stop")
		_, err := s.UpdateConnection(ctx, account, c.ID, testAudit, func(c *model.Connection) error {
			c.Name = "must not be written"
			return errStop
		})
		if err != errStop {
			t.Fatalf("err = %v, want errStop unwrapped", err)
		}
		if diff := cmp.Diff(c, get(t, s, account, c.ID)); diff != "" {
			t.Errorf("row changed (-before +after):\n%s", diff)
		}
	})

	t.Run("another account's id returns ErrNotFound and leaves the row", func(t *testing.T) {
		c := create(t, s, newConnection(account))
		called := false
		_, err := s.UpdateConnection(ctx, other, c.ID, testAudit, func(c *model.Connection) error {
			called = true
			c.Name = "hijacked"
			return nil
		})
		if !errors.Is(err, store.ErrNotFound) || called {
			t.Fatalf("err = %v, update called %v; want ErrNotFound, false", err, called)
		}
		if diff := cmp.Diff(c, get(t, s, account, c.ID)); diff != "" {
			t.Errorf("row changed (-before +after):\n%s", diff)
		}
	})

	t.Run("unknown or malformed id returns ErrNotFound", func(t *testing.T) {
		for _, id := range []string{uuid.NewString(), "nope"} {
			_, err := s.UpdateConnection(ctx, account, id, testAudit, func(*model.Connection) error { return nil })
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("id %q: err = %v, want ErrNotFound", id, err)
			}
		}
	})

	t.Run("taking another connection's instance and client returns ConflictError", func(t *testing.T) {
		a := create(t, s, newConnection(account))
		b := create(t, s, newConnection(account))
		_, err := s.UpdateConnection(ctx, account, b.ID, testAudit, func(c *model.Connection) error {
			c.InstanceURL, c.ClientID = a.InstanceURL, a.ClientID
			return nil
		})
		var conflict *store.ConflictError
		if !errors.As(err, &conflict) || conflict.ExistingID != a.ID || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("err = %#v, want *ConflictError{ExistingID: %q}", err, a.ID)
		}
		if diff := cmp.Diff(b, get(t, s, account, b.ID)); diff != "" {
			t.Errorf("row changed (-before +after):\n%s", diff)
		}
	})
}

// TestUpdateConnectionSerializes checks that concurrent updates of one row do
// not lose each other's changes: the row lock makes each read the last write.
func TestUpdateConnectionSerializes(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	in := newConnection(account)
	in.Name = ""
	c := create(t, s, in)

	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.UpdateConnection(ctx, account, c.ID, testAudit, func(c *model.Connection) error {
				c.Name += "x"
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := get(t, s, account, c.ID).Name; got != strings.Repeat("x", n) {
		t.Errorf("Name = %q, want %d x: an update was lost", got, n)
	}
}

func TestDeleteConnection(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := create(t, s, newConnection(account))

	if err := s.DeleteConnection(ctx, other, c.ID, testAudit, noCheck); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete from another account: err = %v, want ErrNotFound", err)
	}
	get(t, s, account, c.ID) // still there

	if err := s.DeleteConnection(ctx, account, "not-a-uuid", testAudit, noCheck); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("malformed id: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConnection(ctx, account, c.ID, testAudit, noCheck); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if _, err := s.Connection(ctx, account, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConnection(ctx, account, c.ID, testAudit, noCheck); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}

	// The pair is free again.
	again := newConnection(account)
	again.InstanceURL, again.ClientID = c.InstanceURL, c.ClientID
	create(t, s, again)
}

func TestRecordTestResult(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	c := create(t, s, newConnection(account))
	result := []byte(`{"ok": true, "checks": [{"name": "token", "status": "passed"}]}`)

	if err := s.RecordTestResult(ctx, other, c.ID, testAudit, store.TestRecord{Status: model.StatusConnected, Result: result, TestedVersion: c.Version}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another account: err = %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(c, get(t, s, account, c.ID)); diff != "" {
		t.Fatalf("another account's save changed the row (-before +after):\n%s", diff)
	}
	for _, id := range []string{uuid.NewString(), "nope"} {
		if err := s.RecordTestResult(ctx, account, id, testAudit, store.TestRecord{Status: model.StatusConnected, Result: result, TestedVersion: c.Version}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("id %q: err = %v, want ErrNotFound", id, err)
		}
	}

	if err := s.RecordTestResult(ctx, account, c.ID, testAudit, store.TestRecord{Status: model.StatusConnected, Result: result, TestedVersion: c.Version}); err != nil {
		t.Fatalf("RecordTestResult: %v", err)
	}
	got := get(t, s, account, c.ID)
	if got.Status != model.StatusConnected {
		t.Errorf("Status = %q, want connected", got.Status)
	}
	var want, stored any
	if err := json.Unmarshal(result, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got.LastTest, &stored); err != nil {
		t.Fatalf("LastTest %q: %v", got.LastTest, err)
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("LastTest (-want +got):\n%s", diff)
	}

	if err := s.RecordTestResult(ctx, account, c.ID, testAudit, store.TestRecord{Status: "bogus", Result: result, TestedVersion: got.Version}); err == nil {
		t.Error("status bogus was accepted")
	}
}

func TestKEKIDsInUse(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()

	ids, err := s.KEKIDsInUse(ctx)
	if err != nil || len(ids) != 0 {
		t.Fatalf("empty table: got %v, %v; want none", ids, err)
	}
	for _, k := range []struct{ account, kek string }{
		{account, "k2"}, {account, "k1"}, {other, "k3"}, {account, "k2"}, {other, "k1"},
	} {
		c := newConnection(k.account)
		c.Secret.KEKID = k.kek
		create(t, s, c)
	}
	ids, err = s.KEKIDsInUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"k1", "k2", "k3"}, ids); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDatabaseSchemaVersion(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	v, dirty, err := s.DatabaseSchemaVersion(context.Background())
	if err != nil || v != store.SchemaVersion || dirty {
		t.Errorf("got %d, %v, %v; want %d, false, nil", v, dirty, err, store.SchemaVersion)
	}
	if store.SchemaVersion < 1 {
		t.Errorf("SchemaVersion = %d", store.SchemaVersion)
	}
}

func TestMigrateDownAndUp(t *testing.T) {
	t.Parallel()
	dbURL := storetest.URL(t)
	ctx := context.Background()
	s, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	wantVersion := func(want uint) {
		t.Helper()
		v, dirty, err := store.MigrationVersion(dbURL)
		if err != nil || v != want || dirty {
			t.Fatalf("MigrationVersion = %d, %v, %v; want %d, false, nil", v, dirty, err, want)
		}
		v, dirty, err = s.DatabaseSchemaVersion(ctx)
		if err != nil || v != want || dirty {
			t.Fatalf("DatabaseSchemaVersion = %d, %v, %v; want %d, false, nil", v, dirty, err, want)
		}
	}

	wantVersion(store.SchemaVersion)
	if err := store.Migrate(dbURL, "up"); err != nil {
		t.Fatalf("up with nothing to do: %v", err)
	}
	for v := store.SchemaVersion; v > 0; v-- {
		if err := store.Migrate(dbURL, "down"); err != nil {
			t.Fatalf("down from %d: %v", v, err)
		}
		wantVersion(v - 1)
	}
	if _, err := s.KEKIDsInUse(ctx); err == nil {
		t.Fatal("connections table still exists after down")
	}
	if err := store.Migrate(dbURL, "down"); err != nil {
		t.Fatalf("down with nothing to do: %v", err)
	}
	if err := store.Migrate(dbURL, "up"); err != nil {
		t.Fatalf("up: %v", err)
	}
	wantVersion(store.SchemaVersion)
	create(t, s, newConnection(account))

	if err := store.Migrate(dbURL, "sideways"); err == nil {
		t.Error("direction sideways accepted")
	}
}

func TestDatabaseSchemaVersionOfEmptyDatabase(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `DROP TABLE schema_migrations`); err != nil {
		t.Fatal(err)
	}
	v, dirty, err := s.DatabaseSchemaVersion(ctx)
	if err != nil || v != 0 || dirty {
		t.Errorf("got %d, %v, %v; want 0, false, nil", v, dirty, err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := store.Open(ctx, storetest.URL(t))
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
			_, errs["Open"] = store.Open(ctx, dbURL)
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

// TestDependencies keeps the contract's dependency direction: store never
// imports api, crypto or dynamics.
func TestDependencies(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/dynconn/dynconn/internal/store").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for dep := range strings.FieldsSeq(string(out)) {
		for _, banned := range []string{"api", "crypto", "dynamics"} {
			if dep == "github.com/dynconn/dynconn/internal/"+banned {
				t.Errorf("store imports %s", dep)
			}
		}
	}
}
