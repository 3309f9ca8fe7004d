package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	migrations "rassylka/db/migrations"
)

// Schema applies and reports the SQL migrations in db/migrations.
type Schema struct {
	m *migrate.Migrator
}

// NewSchema returns the migrator for db. A migration is marked applied only
// once it has succeeded.
func NewSchema(db *bun.DB) *Schema {
	return &Schema{m: migrate.NewMigrator(db, migrations.New(), migrate.WithMarkAppliedOnSuccess(true))}
}

// Up applies every pending migration and returns their names.
func (s *Schema) Up(ctx context.Context) ([]string, error) {
	if err := s.m.Init(ctx); err != nil {
		return nil, fmt.Errorf("init migrations: %w", err)
	}
	if err := s.m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("lock migrations: %w", err)
	}
	defer s.m.Unlock(ctx) //nolint:errcheck // an unlock failure leaves nothing to do

	group, err := s.m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	return names(group.Migrations), nil
}

// Down rolls back the last applied migration and returns its name (none
// when nothing is applied).
func (s *Schema) Down(ctx context.Context) ([]string, error) {
	return s.down(ctx, 1)
}

// DownAll rolls back every applied migration, the last first, and returns
// their names in that order.
func (s *Schema) DownAll(ctx context.Context) ([]string, error) {
	return s.down(ctx, -1)
}

// down rolls back the last n applied migrations (all of them when n < 0),
// one by one: not bun's group, which for a database migrated at once is
// every table.
func (s *Schema) down(ctx context.Context, n int) ([]string, error) {
	if err := s.m.Init(ctx); err != nil {
		return nil, fmt.Errorf("init migrations: %w", err)
	}
	if err := s.m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("lock migrations: %w", err)
	}
	defer s.m.Unlock(ctx) //nolint:errcheck

	ms, err := s.m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	applied := ms.Applied() // the newest first
	if n >= 0 && n < len(applied) {
		applied = applied[:n]
	}
	var out []string
	for i := range applied {
		m := &applied[i]
		if m.Down != nil {
			if err := m.Down(ctx, s.m, m); err != nil {
				return out, fmt.Errorf("migrate down %s: %w", m.Name, err)
			}
		}
		if err := s.m.MarkUnapplied(ctx, m); err != nil {
			return out, fmt.Errorf("migrate down %s: %w", m.Name, err)
		}
		out = append(out, m.Name)
	}
	return out, nil
}

// Status lists every known migration and whether it is applied.
func (s *Schema) Status(ctx context.Context) (applied, pending []string, err error) {
	if err := s.m.Init(ctx); err != nil {
		return nil, nil, fmt.Errorf("init migrations: %w", err)
	}
	ms, err := s.m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("migration status: %w", err)
	}
	// Applied() lists the newest first; both are told oldest first.
	applied = names(ms.Applied())
	slices.Sort(applied)
	return applied, names(ms.Unapplied()), nil
}

// ErrSchemaBehind is returned by Check when migrations are pending.
type ErrSchemaBehind struct{ Pending []string }

func (e *ErrSchemaBehind) Error() string {
	return fmt.Sprintf("database schema is behind: %d migration(s) pending (%s); run `web migrate up`",
		len(e.Pending), strings.Join(e.Pending, ", "))
}

// Check returns *ErrSchemaBehind when the database lacks a migration.
func (s *Schema) Check(ctx context.Context) error {
	_, pending, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return &ErrSchemaBehind{Pending: pending}
	}
	return nil
}

// SchemaCurrent is Check for a readiness probe: it only reads (Check
// creates the migrations' tables when they are missing), and a database
// whose migrations' table is gone (rolled back whole) is an error too.
func (s *Store) SchemaCurrent(ctx context.Context) error {
	db, ok := s.db.(*bun.DB)
	if !ok {
		return fmt.Errorf("schema current: needs a database, not %T", s.db)
	}
	ms, err := migrate.NewMigrator(db, migrations.New()).MigrationsWithStatus(ctx)
	if err != nil {
		return fmt.Errorf("schema current: %w", err)
	}
	if pending := ms.Unapplied(); len(pending) > 0 {
		return &ErrSchemaBehind{Pending: names(pending)}
	}
	return nil
}

func names(ms migrate.MigrationSlice) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}
