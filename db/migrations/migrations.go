// Package migrations holds the SQL schema of Rassylka, embedded into the
// binaries and applied with bun/migrate.
//
// Files are named NNNN_name.tx.up.sql / NNNN_name.tx.down.sql: the ".tx" part
// makes bun run each file inside a transaction, so a failed migration leaves
// nothing half applied.
package migrations

import (
	"embed"

	"github.com/uptrace/bun/migrate"
)

//go:embed *.sql
var files embed.FS

// New returns the migration set discovered from the embedded SQL files.
func New() *migrate.Migrations {
	m := migrate.NewMigrations()
	if err := m.Discover(files); err != nil {
		// The files are compiled in; a discovery error is a programming error.
		panic("migrations: " + err.Error())
	}
	return m
}
