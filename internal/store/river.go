package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// River (package jobs) keeps its queue in the same database, in tables of its
// own (river_job, river_leader, …) that rivermigrate creates and upgrades.
// They are part of the schema this binary needs, so Migrate applies them
// after ours and readiness checks them beside ours.

// RiverSchemaVersion is the version of River's schema this binary expects:
// the latest migration of the River release it was built with.
var RiverSchemaVersion = func() int {
	m, err := rivermigrate.New(riverpgxv5.New(nil), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(fmt.Sprintf("store: river migrations: %v", err))
	}
	all := m.AllVersions()
	return all[len(all)-1].Version
}()

// riverMigrateLock is the advisory lock key that serialises River's
// migrations across replicas: rivermigrate takes no lock of its own.
const riverMigrateLock = 0x64796e636f6e6e // "dynconn"

// migrateRiver applies River's pending migrations to the database at
// databaseURL, holding riverMigrateLock while it does.
func migrateRiver(ctx context.Context, databaseURL string) error {
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, riverMigrateLock); err != nil {
		return fmt.Errorf("migrate river: lock: %w", err)
	}
	// Unlocked before the connection goes back to the pool, which then closes.
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, riverMigrateLock)
	}()
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	return nil
}

// DatabaseRiverVersion returns the latest River migration applied to the
// database, 0 when there is none. Readiness calls it every second, so it is
// one small query.
func (s *Store) DatabaseRiverVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM river_migration WHERE line = 'main'`).Scan(&v)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01":
		return 0, nil // undefined_table: never migrated
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("select river schema version: %w", err)
	}
	return v, nil
}
