// Package migrations holds the SQL schema. The files are compiled into the
// binary, so `serve`, `migrate` and the tests all apply exactly the same SQL.
//
// Files are golang-migrate pairs: NNNNNN_name.up.sql and NNNNNN_name.down.sql.
// Never edit a file that has been released: add a new pair instead.
package migrations

import "embed"

// FS holds every *.sql file of this directory, at its root.
//
//go:embed *.sql
var FS embed.FS
