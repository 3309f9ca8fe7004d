// Package store is the only place that queries PostgreSQL. One Store over
// bun.IDB, a file per entity; every user-scoped query takes the owner id
// explicitly so ownership cannot be forgotten. "Not found" is ErrNotFound,
// a unique or foreign-key clash is ErrConflict.
//
// It imports app/model and nothing of the web or the worker.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"
)

var (
	// ErrNotFound means no row matched (or it belongs to someone else).
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique constraint or a reference said no.
	ErrConflict = errors.New("conflict")
	// ErrChanged refuses a change made to an object as it was (its
	// UpdatedAt given): it has been changed since, by another form.
	ErrChanged = errors.New("changed since")
	// ErrDone answers a form that creates an object, sent again as it was
	// sent before (a double click without JavaScript, a post sent again
	// after its answer was lost): its first post created the object.
	// Nothing is written, and the object given is set to that one. (An
	// edit sent twice is simply done: it changes nothing the second time.)
	ErrDone = errors.New("done already by the same form")
)

// Store runs the application's queries over a database or a transaction.
type Store struct {
	db bun.IDB
}

// New returns a Store over db (a *bun.DB or a bun.Tx).
func New(db bun.IDB) *Store { return &Store{db: db} }

// StatementConns is how many connections a worker keeps beyond one per
// batch task (which holds its lock's connection while it runs), for the
// statements of all of them.
const StatementConns = 10

// Open connects to PostgreSQL at dsn. It does not dial until first use.
func Open(dsn string) *bun.DB {
	sqldb := sql.OpenDB(pgdriver.NewConnector(
		pgdriver.WithDSN(dsn),
		pgdriver.WithTimeout(10*time.Second),
		pgdriver.WithResetSessionFunc(checkConn),
	))
	sqldb.SetMaxOpenConns(20)
	sqldb.SetMaxIdleConns(10)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	return bun.NewDB(sqldb, pgdialect.New())
}

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.NewSelect().ColumnExpr("1").Scan(ctx, &one); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// InTx runs fn with a Store bound to one transaction, committed when fn
// returns nil and rolled back otherwise.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return fn(New(tx))
	})
}

// dbErr maps driver errors to the store's sentinel errors, keeping the
// original in the chain for logs.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	switch sqlState(err) {
	case "23505", "23503": // unique_violation, foreign_key_violation
		return fmt.Errorf("%s: %w: %w", op, ErrConflict, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// sqlState is the SQLSTATE code of a PostgreSQL error, "" for any other.
func sqlState(err error) string {
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		return pgErr.Field('C')
	}
	return ""
}

// LostConnection reports whether err says the connection to the database
// is gone: closed or reset, or the server shut down or restarting. What a
// session held (its advisory locks) went with it.
func LostConnection(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller's own end (a context's deadline is a net.Error too)
	}
	var ne net.Error // a reset, a timeout, a closed connection (net.ErrClosed)
	if errors.As(err, &ne) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	code := sqlState(err) // 08: connection exception; 57P0x: the server shut down or restarts
	return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "57P")
}

// formCreated finds what a form with key ("": none) created already, as
// it is posted now (same), for a post of that form about to create it
// again; nil when it created nothing like it. Posts of one form wait here
// for each other, until their transactions end: tx must be one.
func formCreated[T any](ctx context.Context, tx *Store, table string, ownerID int64, key string, same func(*T) (bool, error)) (*T, error) {
	if key == "" {
		return nil, nil
	}
	lock := table + ":" + strconv.FormatInt(ownerID, 10) + ":" + key
	if _, err := tx.db.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", lock); err != nil {
		return nil, dbErr("form's creations", err)
	}
	var created []T
	if err := tx.db.NewSelect().Model(&created).Where("owner_id = ? AND form_key = ?", ownerID, key).OrderExpr("id").Scan(ctx); err != nil {
		return nil, dbErr("form's creations", err)
	}
	for i := range created {
		if ok, err := same(&created[i]); err != nil || ok {
			return &created[i], err
		}
	}
	return nil, nil
}
