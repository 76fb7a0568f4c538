// Package store keeps connections in PostgreSQL with pgx: plain SQL next to
// each method, no ORM. Every method that reads or writes a connection takes
// the account and filters by it, so one account can never reach another's rows.
//
// The store holds secrets only in sealed form (model.SealedSecret); sealing
// and opening them is package crypto's job, combined with the store by api.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"

	"github.com/dynconn/dynconn/internal/groupcommit"
)

// StatementTimeout bounds every statement on the pool's connections, so a
// stuck query cannot hold a connection (and a request) forever.
const StatementTimeout = 5 * time.Second

// pingTimeout bounds Open's first round trip, so a wrong host fails start-up
// quickly instead of hanging.
const pingTimeout = 5 * time.Second

// applicationName shows up in pg_stat_activity, for operators.
const applicationName = "dynconn"

// ErrNotFound means the connection does not exist or belongs to another
// account. The two are deliberately the same error: the API answers 404 for
// both, so nobody can learn that another account's id exists.
var ErrNotFound = errors.New("connection not found")

// ErrConflict means a connection with the same account, instance URL and
// client id already exists. Errors that wrap it are *ConflictError values,
// which name the existing connection.
var ErrConflict = errors.New("connection already exists")

// ErrInvalidCursor means a pagination cursor was not one that Connections
// returned.
var ErrInvalidCursor = errors.New("invalid cursor")

// ConflictError is returned when a create or an update would make a second
// connection with the same account, instance URL and client id.
// errors.Is(err, ErrConflict) reports true for it.
type ConflictError struct {
	// ExistingID is the id of the connection already holding that instance URL
	// and client id. It is empty in the rare case that the row was deleted
	// between the failed write and the look-up.
	ExistingID string
}

// Error implements error.
func (*ConflictError) Error() string { return ErrConflict.Error() }

// Is makes errors.Is(err, ErrConflict) true.
func (*ConflictError) Is(target error) bool { return target == ErrConflict }

// Store keeps connections in Postgres. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// creates is the statement that stores the creates that need no
	// transaction of their own, shared by those that come at once.
	creates *groupcommit.Batcher[createRow, createdRow]
}

// Open connects to the database at databaseURL (a postgres:// URL or a
// key=value connection string) and checks that it answers. The pool's
// sessions get a statement_timeout of StatementTimeout and the
// application_name "dynconn", and connection attempts a timeout of 5s,
// unless the URL sets them (statement_timeout, application_name,
// connect_timeout). The URL sets the pool's size too: pool_max_conns
// (default: 4 or the number of CPUs, whichever is more) and pgx's other
// pool_* parameters.
//
// A call waits at most AcquireTimeout for a pooled connection. While the
// database cannot be reached, calls fail with errors that Unavailable
// recognises, and logger (when not nil) hears once when that starts and once
// when it ends.
//
// Errors never contain the password: pgx redacts it from parse errors, and
// connect errors name only host, user and database.
func Open(ctx context.Context, databaseURL string, logger *slog.Logger) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	params := cfg.ConnConfig.RuntimeParams
	if _, ok := params["statement_timeout"]; !ok {
		params["statement_timeout"] = strconv.FormatInt(StatementTimeout.Milliseconds(), 10)
	}
	if _, ok := params["application_name"]; !ok {
		params["application_name"] = applicationName
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.ConnConfig.Tracer = &health{logger: logger}
	cfg.AfterConnect = AfterConnect
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	s := New(pool)
	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := s.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// AfterConnect prepares a new connection of a Store's pool; a pool made
// elsewhere for store.New should set it as its pgxpool.Config.AfterConnect.
// Unregistered, pgx sends a uuid.UUID through its driver.Valuer: as text,
// after a binary attempt that fails and formats an error, on every statement
// that names a connection. Registered, it is sent as its 16 bytes.
func AfterConnect(_ context.Context, conn *pgx.Conn) error {
	pgxuuid.Register(conn.TypeMap())
	return nil
}

// New returns a Store on an existing pool. The caller keeps ownership of the
// pool; Close closes it.
func New(pool *pgxpool.Pool) *Store {
	s := &Store{pool: pool}
	s.creates = groupcommit.New(maxCreateBatch, s.insertConnectionsBatch)
	return s
}

// Pool returns the store's pool, for River (package jobs), which keeps its
// queue in the same database, and for tests that read or break the database
// with SQL of their own.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() { s.pool.Close() }

// MaxConns is the pool's size (pool_max_conns in the database URL).
func (s *Store) MaxConns() int32 { return s.pool.Config().MaxConns }

// Ping reports an error if the database does not answer before ctx ends.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// querier is what the helpers need; both the pool and a pgx.Tx satisfy it, so
// a helper runs inside or outside a transaction alike.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ querier = (*pgxpool.Pool)(nil)
	_ querier = (pgx.Tx)(nil)
)

// uniqueInstanceClient is the constraint behind ErrConflict (see migrations).
const uniqueInstanceClient = "connections_account_instance_url_client_id_key"

// translate maps database errors to the package's errors: no rows becomes
// ErrNotFound and a violation of the unique (account, instance URL, client id)
// constraint becomes ErrConflict. Other errors are returned unchanged.
func translate(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == uniqueInstanceClient {
		return ErrConflict
	}
	return err
}
