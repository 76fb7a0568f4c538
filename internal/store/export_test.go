package store

import "github.com/jackc/pgx/v5/pgxpool"

// Pool returns the store's pool, so that the package's own tests can read
// and break the database with SQL of their own. Tests of other packages get
// the pool from storetest.NewPool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
