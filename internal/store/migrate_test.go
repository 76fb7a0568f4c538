package store_test

import (
	"context"
	"testing"

	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

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
