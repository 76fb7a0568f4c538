package store_test

import (
	"context"
	"encoding/json"
	"errors"
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
		want.StatusSince = &got.CreatedAt
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
		in.StatusSince = &in.CreatedAt
		if diff := cmp.Diff(in, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(get(t, s, account, in.ID), got); diff != "" {
			t.Errorf("CreateConnection returned other than Connection reads (-get +create):\n%s", diff)
		}
	})

	t.Run("returns what the database made of the given values", func(t *testing.T) {
		in := newConnection(account)
		expires := time.Date(2027, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
		in.SecretExpiresAt = &expires
		in.LastTest = json.RawMessage(`{ "ok":true }`)
		in.LastCheckedAt, in.SecretExpiredAt = &expires, &expires // a create does not store these

		got := create(t, s, in)
		if want := time.Date(2027, 1, 2, 2, 4, 5, 123456000, time.UTC); *got.SecretExpiresAt != want {
			t.Errorf("SecretExpiresAt = %v, want %v (to the microsecond, in UTC)", *got.SecretExpiresAt, want)
		}
		if diff := cmp.Diff(get(t, s, account, in.ID), got); diff != "" {
			t.Errorf("CreateConnection returned other than Connection reads (-get +create):\n%s", diff)
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
		if _, err := s.Connection(ctx, account, uuid.MustParse(dup.ID)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("duplicate was stored: Connection err = %v", err)
		}
		var written int
		if err := s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_events WHERE connection_id = $1)
			+ (SELECT count(*) FROM events WHERE connection_id = $1)`, dup.ID).Scan(&written); err != nil || written != 0 {
			t.Errorf("the refused create wrote %d audit events and events (err %v), want none", written, err)
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

	// Malformed ids never reach the store: the API answers them 404.
	for name, tc := range map[string]struct {
		account string
		id      uuid.UUID
	}{
		"unknown id":           {account, uuid.New()},
		"another account's id": {other, uuid.MustParse(c.ID)},
	} {
		t.Run(name+" returns ErrNotFound", func(t *testing.T) {
			_, err := s.Connection(context.Background(), tc.account, tc.id)
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
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
		got, err := s.UpdateConnection(ctx, account, uuid.MustParse(c.ID), testAudit, func(c *model.Connection) error {
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
		if _, err := s.Connection(ctx, other, uuid.MustParse(c.ID)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("row moved to another account: err = %v", err)
		}
	})

	t.Run("new sealed secret sets secret_updated_at to now", func(t *testing.T) {
		in := newConnection(account)
		in.SecretUpdatedAt = old
		c := create(t, s, in)
		got, err := s.UpdateConnection(ctx, account, uuid.MustParse(c.ID), testAudit, func(c *model.Connection) error {
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
		got, err := s.UpdateConnection(ctx, account, uuid.MustParse(c.ID), testAudit, func(c *model.Connection) error {
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
		_, err := s.UpdateConnection(ctx, account, uuid.MustParse(c.ID), testAudit, func(c *model.Connection) error {
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
		_, err := s.UpdateConnection(ctx, other, uuid.MustParse(c.ID), testAudit, func(c *model.Connection) error {
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

	t.Run("unknown id returns ErrNotFound", func(t *testing.T) {
		_, err := s.UpdateConnection(ctx, account, uuid.New(), testAudit, func(*model.Connection) error { return nil })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})

	t.Run("taking another connection's instance and client returns ConflictError", func(t *testing.T) {
		a := create(t, s, newConnection(account))
		b := create(t, s, newConnection(account))
		_, err := s.UpdateConnection(ctx, account, uuid.MustParse(b.ID), testAudit, func(c *model.Connection) error {
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
			_, err := s.UpdateConnection(ctx, account, uuid.MustParse(c.ID), testAudit, func(c *model.Connection) error {
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

	if err := s.DeleteConnection(ctx, other, uuid.MustParse(c.ID), testAudit, noCheck); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete from another account: err = %v, want ErrNotFound", err)
	}
	get(t, s, account, c.ID) // still there

	if err := s.DeleteConnection(ctx, account, uuid.New(), testAudit, noCheck); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown id: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConnection(ctx, account, uuid.MustParse(c.ID), testAudit, noCheck); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if _, err := s.Connection(ctx, account, uuid.MustParse(c.ID)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConnection(ctx, account, uuid.MustParse(c.ID), testAudit, noCheck); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}

	// The pair is free again.
	again := newConnection(account)
	again.InstanceURL, again.ClientID = c.InstanceURL, c.ClientID
	create(t, s, again)
}
