package store_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/testkit"
)

var tables = []string{"users", "identities", "tokens", "clients", "messages", "mailings", "mailing_recipients", "runs", "run_batches", "attempts", "attempt_counts", "unsubscribes"}

func TestMigrationsUpDownUp(t *testing.T) {
	ctx := context.Background()
	db := store.Open(testkit.EmptyDB(t))
	defer db.Close()
	schema := store.NewSchema(db)

	if err := schema.Check(ctx); !errors.As(err, new(*store.ErrSchemaBehind)) {
		t.Fatalf("Check on an empty database = %v, want ErrSchemaBehind", err)
	}
	applied, err := schema.Up(ctx)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if len(applied) == 0 {
		t.Fatal("up applied nothing")
	}
	assertTables(t, db, tables)
	if err := schema.Check(ctx); err != nil {
		t.Fatalf("Check after up: %v", err)
	}
	if again, err := schema.Up(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second up = %v, %v; want nothing to do", again, err)
	}

	// Down rolls back the last migration alone; DownAll the rest, the
	// last applied first.
	backwards := slices.Clone(applied)
	slices.Reverse(backwards)
	rolled, err := schema.Down(ctx)
	if err != nil || !slices.Equal(rolled, backwards[:1]) {
		t.Fatalf("down rolled back %v, %v; want %v", rolled, err, backwards[:1])
	}
	if _, pending, err := schema.Status(ctx); err != nil || !slices.Equal(pending, backwards[:1]) {
		t.Fatalf("status after down: pending %v, %v; want %v", pending, err, backwards[:1])
	}
	assertTables(t, db, tables)
	if again, err := schema.Up(ctx); err != nil || !slices.Equal(again, backwards[:1]) {
		t.Fatalf("up after down = %v, %v; want %v", again, err, backwards[:1])
	}
	rolled, err = schema.DownAll(ctx)
	if err != nil {
		t.Fatalf("down all: %v", err)
	}
	if !slices.Equal(rolled, backwards) {
		t.Fatalf("down all rolled back %v, want %v", rolled, backwards)
	}
	assertTables(t, db, nil)
	_, pending, err := schema.Status(ctx)
	if err != nil || len(pending) != len(applied) {
		t.Fatalf("status after down: pending %v, %v", pending, err)
	}

	if _, err := schema.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	assertTables(t, db, tables)
}

func assertTables(t *testing.T, db *bun.DB, want []string) {
	t.Helper()
	var got []string
	err := db.NewRaw(`SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name NOT LIKE 'bun_%' ORDER BY table_name`).Scan(context.Background(), &got)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("tables = %v, want %v", got, want)
	}
}

// Undoing the batch claims (0005) leaves no claimed recipient unrecorded:
// the version before reads only pending attempts, and would mail a claim
// left by a dead worker again.
func TestBatchClaimsDownRecordsLeftoverClaims(t *testing.T) {
	ctx := context.Background()
	db := testkit.DB(t)
	f := newFixture(t, db, "claims@example.com")
	if _, err := db.ExecContext(ctx, "INSERT INTO run_batches (run_id, seq, from_id, claimed, claimed_emails) VALUES (?, 0, 0, ?, ?)",
		f.run.ID, pgdialect.Array([]int64{f.client.ID}), pgdialect.Array([]string{f.client.Email})); err != nil {
		t.Fatal(err)
	}
	down, err := os.ReadFile("../../db/migrations/0005_batch_claims.tx.down.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, string(down)); err != nil {
		t.Fatalf("down: %v", err)
	}
	var a model.Attempt
	if err := db.NewSelect().Model(&a).Where("run_id = ?", f.run.ID).Scan(ctx); err != nil {
		t.Fatalf("attempt of the leftover claim: %v", err)
	}
	r, err := store.New(db).RunByID(ctx, f.run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != model.AttemptFailure || a.Response != "interrupted: outcome unknown" || a.Email != f.client.Email || r.Failed != 1 {
		t.Fatalf("attempt %+v, run failed %d", a, r.Failed)
	}
}
