package store_test

import (
	"context"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
	"github.com/dynconn/dynconn/migrations"
)

// migrationVersions lists the versions of the embedded migrations, ascending.
func migrationVersions(t *testing.T) []uint {
	t.Helper()
	names, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	var versions []uint
	for _, name := range names {
		n, err := strconv.ParseUint(name[:strings.IndexByte(name, '_')], 10, 32)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		versions = append(versions, uint(n))
	}
	slices.Sort(versions)
	return versions
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
	s, err := store.Open(ctx, dbURL, nil)
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
	versions := migrationVersions(t) // numbers may have gaps
	for i := len(versions) - 1; i >= 0; i-- {
		if err := store.Migrate(dbURL, "down"); err != nil {
			t.Fatalf("down from %d: %v", versions[i], err)
		}
		if i > 0 {
			wantVersion(versions[i-1])
		} else {
			wantVersion(0)
		}
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

// TestFarFutureExpiryIsClearedAndRefused stores an expiry after the year 9999
// (which JSON cannot carry) as older binaries could, migrates up, and checks
// that migration 000008 cleared it and that the database refuses it now.
func TestFarFutureExpiryIsClearedAndRefused(t *testing.T) {
	t.Parallel()
	dbURL := storetest.URL(t)
	ctx := context.Background()
	s, err := store.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := create(t, s, newConnection(account))
	for { // back to before 000008
		v, _, err := store.MigrationVersion(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		if v < 8 {
			break
		}
		if err := store.Migrate(dbURL, "down"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE connections SET secret_expires_at = '10000-01-01 23:59:00+00' WHERE id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(dbURL, "up"); err != nil {
		t.Fatal(err)
	}
	got := get(t, s, account, c.ID)
	if got.SecretExpiresAt != nil || got.Version != c.Version+1 {
		t.Errorf("after the migration: expiry %v, version %d; want none, %d", got.SecretExpiresAt, got.Version, c.Version+1)
	}
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	next := newConnection(account)
	next.SecretExpiresAt = &far
	if _, err := s.CreateConnection(ctx, next, testAudit); err == nil {
		t.Error("a create with an expiry in the year 10000 was stored")
	}
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM connections`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d connections (err %v), want only the first", n, err)
	}
}

// TestRiverSchema: Migrate applies River's migrations after ours, and
// DatabaseRiverVersion reads what readiness compares.
func TestRiverSchema(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	v, err := s.DatabaseRiverVersion(ctx)
	if err != nil || v != store.RiverSchemaVersion || v < 1 {
		t.Fatalf("DatabaseRiverVersion = %d, %v; want %d", v, err, store.RiverSchemaVersion)
	}
	if _, err := s.Pool().Exec(ctx, `DROP TABLE river_migration`); err != nil {
		t.Fatal(err)
	}
	if v, err := s.DatabaseRiverVersion(ctx); err != nil || v != 0 {
		t.Errorf("without river_migration: %d, %v; want 0, nil", v, err)
	}
}
