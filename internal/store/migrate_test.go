package store_test

import (
	"context"
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
	"github.com/dynconn/dynconn/migrations"
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
	// Down steps to the previous migration, whose number may be more than
	// one lower while migrations written in parallel are still unmerged.
	versions := migrationVersions(t)
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

// migrationVersions returns the versions of the embedded migrations, ascending.
func migrationVersions(t *testing.T) []uint {
	t.Helper()
	ups, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	var versions []uint
	for _, name := range ups { // Glob sorts, and the numbers are zero-padded
		n, err := strconv.ParseUint(name[:strings.IndexByte(name, '_')], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", name, err)
		}
		versions = append(versions, uint(n))
	}
	if len(versions) == 0 || versions[len(versions)-1] != store.SchemaVersion {
		t.Fatalf("migration versions %v do not end at SchemaVersion %d", versions, store.SchemaVersion)
	}
	return versions
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
