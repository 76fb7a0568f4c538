package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers the pgx5:// scheme
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dynconn/dynconn/migrations"
)

// SchemaVersion is the schema version this binary expects: the highest
// migration number in package migrations. It is derived from the embedded
// files, so adding a migration updates it; readiness compares it with
// DatabaseSchemaVersion.
var SchemaVersion = latestVersion(migrations.FS)

// latestVersion returns the highest version among the migration files in fsys,
// parsed as golang-migrate parses them. It panics when there is none, since a
// binary without its schema cannot work and should not start.
func latestVersion(fsys fs.FS) uint {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		panic(fmt.Sprintf("store: read migrations: %v", err))
	}
	var latest uint
	for _, e := range entries {
		m, err := source.Parse(e.Name())
		if err != nil {
			continue // not a migration file
		}
		latest = max(latest, m.Version)
	}
	if latest == 0 {
		panic("store: no migrations embedded")
	}
	return latest
}

// Migrate applies the embedded migrations to the database at databaseURL:
// direction "up" applies all pending ones, then River's (see migrateRiver),
// "down" reverts the latest one of ours (an operator undoing a release undoes
// one step, never the whole schema) and leaves River's schema alone.
// Nothing to do is success. golang-migrate holds an advisory lock while it
// works, and so does migrateRiver, so replicas starting together take turns.
func Migrate(databaseURL string, direction string) (err error) {
	var run func(*migrate.Migrate) error
	switch direction {
	case "up":
		run = (*migrate.Migrate).Up
	case "down":
		run = func(m *migrate.Migrate) error {
			if v, _, err := m.Version(); errors.Is(err, migrate.ErrNilVersion) || err == nil && v == 0 {
				return migrate.ErrNoChange
			}
			return m.Steps(-1)
		}
	default:
		return fmt.Errorf("migrate: unknown direction %q (want up or down)", direction)
	}
	m, err := newMigrate(databaseURL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeMigrate(m)) }()
	if err := run(m); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate %s: %w", direction, err)
	}
	if direction == "up" {
		return migrateRiver(context.Background(), databaseURL)
	}
	return nil
}

// MigrationVersion returns the database's schema version as golang-migrate
// records it, and whether a migration failed half-way (dirty). A database
// without migrations is version 0.
func MigrationVersion(databaseURL string) (version uint, dirty bool, err error) {
	m, err := newMigrate(databaseURL)
	if err != nil {
		return 0, false, err
	}
	defer func() { err = errors.Join(err, closeMigrate(m)) }()
	version, dirty, err = m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("migration version: %w", err)
	}
	return version, dirty, nil
}

// newMigrate returns a golang-migrate instance over the embedded files and the
// pgx/v5 driver.
func newMigrate(databaseURL string) (*migrate.Migrate, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Not err: url.Error quotes the whole URL, password included.
		return nil, errors.New("migrate: database url is not a valid postgres:// url (for a unix socket, use ?host=/dir)")
	}
	u.Scheme = "pgx5" // the pgx/v5 driver's scheme; it turns it back into postgres://
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: open embedded migrations: %w", err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, u.String())
	if err != nil {
		return nil, fmt.Errorf("migrate: open database: %w", err)
	}
	return m, nil
}

// closeMigrate closes both sides of m and reports either error.
func closeMigrate(m *migrate.Migrate) error {
	srcErr, dbErr := m.Close()
	if err := errors.Join(srcErr, dbErr); err != nil {
		return fmt.Errorf("migrate: close: %w", err)
	}
	return nil
}

// DatabaseSchemaVersion returns the schema version recorded in the database
// (golang-migrate's schema_migrations table) and whether it is dirty. A
// database that was never migrated is version 0. Readiness calls it every
// second, so it is one small query.
func (s *Store) DatabaseSchemaVersion(ctx context.Context) (version uint, dirty bool, err error) {
	const q = `SELECT version, dirty FROM schema_migrations LIMIT 1`
	var v int64
	err = s.pool.QueryRow(ctx, q).Scan(&v, &dirty)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil // migrated all the way down
	case errors.As(err, &pgErr) && pgErr.Code == "42P01":
		return 0, false, nil // undefined_table: never migrated
	case err != nil:
		return 0, false, fmt.Errorf("select schema version: %w", err)
	case v < 0:
		return 0, dirty, nil // golang-migrate's "no version"
	}
	return uint(v), dirty, nil
}
