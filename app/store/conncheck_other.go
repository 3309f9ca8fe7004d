//go:build !unix

package store

import (
	"context"

	"github.com/uptrace/bun/driver/pgdriver"
)

// checkConn checks nothing where a read that does not wait is not at hand
// (conncheck.go).
func checkConn(context.Context, *pgdriver.Conn) error { return nil }
