package sending_test

import (
	"context"
	"testing"
	"time"

	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/testkit"
)

// TestPostgresRestartMidRun stops PostgreSQL while a batch sends and
// starts it again; the batch, handed again to a worker as Asynq would,
// finishes with one attempt per recipient and no address mailed twice.
func TestPostgresRestartMidRun(t *testing.T) {
	pg := testkit.PostgresServer(t)
	db := store.Open(pg.URL)
	t.Cleanup(func() { db.Close() })
	w := newWorldOn(t, db, 40)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 4, 2
	w.sink.Stall(25 * time.Millisecond)
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- w.svc.ProcessBatch(ctx, run.ID, 0) }()
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := w.sink.Wait(waitCtx, 8); err != nil {
		t.Fatal(err)
	}
	pg.Stop()
	err = <-done
	t.Logf("the batch stopped with the database: %v", err)
	pg.Start()

	// Asynq retries the failed task; here, until the batch is done.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := w.svc.ProcessBatch(ctx, run.ID, 0)
		if b, berr := w.st.Batch(ctx, run.ID, 0); err == nil && berr == nil && b.DoneAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the batch did not finish after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	as := w.attempts(t, run.ID)
	seen := map[int64]bool{}
	for _, a := range as {
		if a.Status == model.AttemptPending || a.ClientID == nil || seen[*a.ClientID] {
			t.Fatalf("attempt %+v (pending, without client, or a second one)", a)
		}
		seen[*a.ClientID] = true
	}
	if len(as) != 40 {
		t.Fatalf("%d attempts for 40 recipients", len(as))
	}
	for addr, n := range received(w.sink) {
		if n != 1 {
			t.Errorf("%s received %d messages", addr, n)
		}
	}
	r, _ := w.st.RunByID(ctx, run.ID)
	if r.FinishedAt == nil || r.Succeeded+r.Failed != 40 {
		t.Fatalf("run %+v", r)
	}
}
