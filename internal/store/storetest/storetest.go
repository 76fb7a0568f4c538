// Package storetest gives tests a fresh, migrated PostgreSQL database each,
// cloned from a template that is migrated once per schema (pgtestdb). It is
// named like net/http/httptest: a helper for tests of store's users.
//
// The server comes from DATABASE_URL, which `make test` sets to a private
// cluster. Tests fail, never skip, without it: a skipped database test looks
// like a passing one.
package storetest

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver pgtestdb connects with
	"github.com/peterldowns/pgtestdb"
	"github.com/peterldowns/pgtestdb/migrators/golangmigrator"

	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/migrations"
)

// URL returns the URL of a fresh database cloned from the migrated template.
// Each call makes a new database, so tests may call t.Parallel. The database
// is dropped when the test ends, unless it failed: then pgtestdb keeps it and
// logs its URL for inspection. Close every connection to it before the test's
// cleanups run, or the drop fails the test.
func URL(t testing.TB) string {
	t.Helper()
	return pgtestdb.Custom(t, baseConfig(t), migrator{golangmigrator.New(".", golangmigrator.WithFS(migrations.FS))}).URL()
}

// New returns a Store on a fresh database from URL.
func New(t testing.TB) *store.Store {
	t.Helper()
	return store.New(NewPool(t))
}

// NewPool returns a pool on a fresh database from URL, for a test that also
// reads or breaks the database with SQL of its own beside store.New(pool).
// The pool is closed in t.Cleanup, which runs before pgtestdb drops the
// database.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(URL(t))
	if err != nil {
		t.Fatalf("storetest: parse url: %v", err)
	}
	cfg.AfterConnect = store.AfterConnect
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("storetest: create pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// migrator migrates the template with store.Migrate, the code `serve` runs
// (ours, then River's), instead of golangmigrator's own Migrate: that one
// uses golang-migrate's lib/pq driver, which defaults to sslmode=require and
// does not understand every URL that pgx does. The embedded GolangMigrator
// supplies the hash of our migration files that, with River's schema
// version, names the template.
type migrator struct {
	*golangmigrator.GolangMigrator
}

// Hash implements pgtestdb.Migrator.
func (m migrator) Hash() (string, error) {
	h, err := m.GolangMigrator.Hash()
	return h + "-river" + strconv.Itoa(store.RiverSchemaVersion), err
}

// Migrate implements pgtestdb.Migrator.
func (migrator) Migrate(_ context.Context, _ *sql.DB, template pgtestdb.Config) error {
	return store.Migrate(template.URL(), "up")
}

var _ pgtestdb.Migrator = migrator{}

// baseConfig returns pgtestdb's connection to the server from DATABASE_URL.
func baseConfig(t testing.TB) pgtestdb.Config {
	t.Helper()
	raw := os.Getenv("DATABASE_URL")
	if raw == "" {
		t.Fatal("DATABASE_URL is not set: run the tests with `make test`, which starts a private PostgreSQL")
	}
	conf, err := parseConfig(raw)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return conf
}

// parseConfig splits a postgres:// URL into pgtestdb's fields. pgtestdb
// formats its URLs as postgres://user:password@host:port/db?options without
// escaping, so a Unix socket directory (a host starting with "/") travels in
// the options as host=…, which pgx reads.
func parseConfig(raw string) (pgtestdb.Config, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Not err: it would quote the URL, password included.
		return pgtestdb.Config{}, errInvalidURL
	}
	password, _ := u.User.Password()
	conf := pgtestdb.Config{
		DriverName: "pgx",
		Host:       u.Hostname(),
		Port:       u.Port(),
		User:       u.User.Username(),
		Password:   password,
		Database:   strings.TrimPrefix(u.Path, "/"),
	}
	query := u.Query()
	if strings.HasPrefix(conf.Host, "/") {
		query.Set("host", conf.Host)
		conf.Host = ""
	}
	if conf.Database == "" {
		conf.Database = "postgres"
	}
	conf.Options = query.Encode()
	return conf, nil
}

// errInvalidURL is parseConfig's only error.
var errInvalidURL = errors.New("DATABASE_URL is not a valid postgres:// URL (for a Unix socket, use ?host=/dir), e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
