package sending_test

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"

	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
	"rassylka/app/testkit"
)

// TestPostgresRestartMidRun stops PostgreSQL while a batch sends and
// starts it again; the batch, handed again to a worker as Asynq would,
// finishes with one attempt per recipient and no address mailed twice.
func TestPostgresRestartMidRun(t *testing.T) {
	// Back within the time the batch waits for it to record what it sent
	// (see salvage), or after it: the batch, resumed, then records its
	// claim as interrupted, as after a crash.
	t.Run("back within the wait", func(t *testing.T) { postgresRestartMidRun(t, 0, time.Second) })
	t.Run("back after it", func(t *testing.T) { postgresRestartMidRun(t, 300*time.Millisecond, 1500*time.Millisecond) })
}

func postgresRestartMidRun(t *testing.T, salvageFor, down time.Duration) {
	pg := testkit.PostgresServer(t)
	db := store.Open(pg.URL)
	t.Cleanup(func() { db.Close() })
	w := newWorldOn(t, db, 40)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 4, 2
	w.sink.Stall(25 * time.Millisecond)
	w.svc.SalvageFor = salvageFor
	ctx := context.Background()
	run, done := w.sendingUntil(t, 8)
	pg.Stop()
	time.Sleep(down)
	pg.Start()
	err := <-done
	t.Logf("the batch stopped with the database: %v", err)

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

// The batch's connection lost while a chunk sends (a connection cut, a
// restart that spared the worker's pool): what the chunk sent is recorded
// on a connection of its own, under the batch's lock taken again, and the
// batch resumes with the rest. Before, every recipient of the chunk was
// recorded as "interrupted: outcome unknown", offered to "Retry failed"
// though all had been mailed.
func TestConnectionLostMidChunkKeepsWhatWasSent(t *testing.T) {
	const n, pace = 12, 200 * time.Millisecond // one chunk: 2.4 s, one send at a time
	w := newWorld(t, n)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, n, 1
	w.sink.Stall(pace)
	ctx := context.Background()
	run, done := w.sendingUntil(t, 2)
	var cut int
	if err := w.db.NewRaw(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(ctx, &cut); err != nil || cut != 1 {
		t.Fatalf("cut %d batch connections: %v", cut, err)
	}
	if err := <-done; err == nil {
		t.Fatal("the batch ended well without its connection")
	}
	r := w.drain(t, run.ID)
	for _, a := range w.attempts(t, run.ID) {
		if a.Status != model.AttemptSuccess {
			t.Errorf("attempt %s %s %q, want every recipient mailed and recorded so", a.Email, a.Status, a.Response)
		}
	}
	if got := received(w.sink); len(got) != n {
		t.Errorf("%d of %d recipients mailed", len(got), n)
	} else {
		for addr, k := range got {
			if k != 1 {
				t.Errorf("%s received %d messages", addr, k)
			}
		}
	}
	if r.FinishedAt == nil || r.Succeeded != n || r.Failed != 0 {
		t.Errorf("run %+v: want all %d sent", r, n)
	}
}

// The batch's connection lost after a chunk's statement was made, with its
// answer: the chunk's outcomes are recorded, and the next chunk claimed,
// but the batch never learns which recipients it claimed, so sends none
// of them. The batch resumes with them: they are sent, not recorded as
// "interrupted: outcome unknown" (which they were before, though none had
// been sent). Lost with the first claim (no chunk sent yet) or a later one.
func TestConnectionLostWithARecordsAnswer(t *testing.T) {
	for _, lose := range []int{1, 2} {
		t.Run(fmt.Sprintf("statement %d", lose), func(t *testing.T) {
			const n = 12
			w := newWorld(t, n)
			w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 4, 1
			ctx := context.Background()
			var made atomic.Int32
			sending.SetRecorded(w.svc, func(err error) error {
				if err != nil || made.Add(1) != int32(lose) {
					return err
				}
				// Made and committed; its session is cut before the
				// batch reads the answer, as a connection lost then.
				var cut int
				if err := w.db.NewRaw(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'
					AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(ctx, &cut); err != nil || cut != 1 {
					t.Errorf("cut %d batch connections: %v", cut, err)
				}
				return io.ErrUnexpectedEOF
			})
			run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.svc.ProcessBatch(ctx, run.ID, 0); err == nil {
				t.Fatal("the batch ended well without the answer")
			}
			claim, _, err := w.st.BatchClaim(ctx, run.ID, 0)
			if err != nil || len(claim) != 0 {
				t.Errorf("the batch's claim after it: %v, %v; want it cleared", claim, err)
			}
			r := w.drain(t, run.ID)
			for _, a := range w.attempts(t, run.ID) {
				if a.Status != model.AttemptSuccess {
					t.Errorf("attempt %s %s %q, want every recipient mailed and recorded so", a.Email, a.Status, a.Response)
				}
			}
			got := received(w.sink)
			if len(got) != n {
				t.Errorf("%d of %d recipients mailed", len(got), n)
			}
			for addr, k := range got {
				if k != 1 {
					t.Errorf("%s received %d messages", addr, k)
				}
			}
			if r.FinishedAt == nil || r.Succeeded != n || r.Failed != 0 {
				t.Errorf("run %+v: want all %d sent", r, n)
			}
		})
	}
}

// A batch whose connection was lost while its statement ran, unmade, may
// find its recipients claimed by the batch resumed meanwhile (which
// claims the very ones it asked for, and may have sent them before it,
// too, was cut): that claim is not its to clear. Only the claim stamped
// as its statement stamped it is (the statement was made, its answer
// lost); the ids alone cannot tell the two apart.
func TestSalvageClearsOnlyItsOwnClaim(t *testing.T) {
	const n = 8
	w := newWorld(t, n)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 4, 1
	w.svc.SalvageFor = time.Second
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := w.st.OpenBatches(ctx)
	if err != nil || len(batches) != 1 {
		t.Fatalf("batches %v, %v", batches, err)
	}
	b := batches[0]
	var ids []int64
	if err := w.db.NewRaw("SELECT client_id FROM mailing_recipients WHERE mailing_id = ? ORDER BY client_id", w.mailing.ID).Scan(ctx, &ids); err != nil {
		t.Fatal(err)
	}
	held, asked := ids[:4], ids[4:]
	another := time.Now().UTC().Truncate(time.Microsecond)
	claim := func(at time.Time) {
		t.Helper()
		if _, err := w.db.ExecContext(ctx, `UPDATE run_batches SET claimed = ?, claimed_emails = ARRAY(SELECT email FROM clients WHERE id = ANY(?) ORDER BY id), claimed_at = now(), claim_stamp = ?
			WHERE run_id = ? AND seq = ?`, pgdialect.Array(asked), pgdialect.Array(asked), at, run.ID, b.Seq); err != nil {
			t.Fatal(err)
		}
	}
	// Claimed by another batch: left as it is, to be recorded as
	// interrupted when the batch resumes.
	claim(another)
	if sending.Salvage(ctx, w.svc, run, &b, nil, held, asked, another.Add(time.Millisecond)) {
		t.Error("salvage cleared a claim stamped otherwise than its statement")
	}
	if got, at, _ := w.st.BatchClaim(ctx, run.ID, b.Seq); len(got) != len(asked) || at == nil || !at.Equal(another) {
		t.Errorf("the other batch's claim after salvage: %v at %v", got, at)
	}
	// Its own statement's claim, made: cleared, to be sent.
	mine := another.Add(time.Second)
	claim(mine)
	if !sending.Salvage(ctx, w.svc, run, &b, nil, held, asked, mine) {
		t.Error("salvage left the claim its statement made")
	}
	if got, _, _ := w.st.BatchClaim(ctx, run.ID, b.Seq); len(got) != 0 {
		t.Errorf("its own claim after salvage: %v", got)
	}
}
