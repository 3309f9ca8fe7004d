package main

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"rassylka/app/model"
)

// TestCrashSafety runs the real worker binary on a run of 5,000 recipients
// with a slow SMTP server, kills it with SIGKILL twice mid-run, restarts
// it, and checks that every recipient ends with exactly one attempt and no
// address was mailed twice.
func TestCrashSafety(t *testing.T) {
	const recipients = 5000
	ctx := context.Background()
	w, run := stalledRun(t, recipients, 3*time.Millisecond)
	db, sink := w.db, w.sink
	startWorker := func() *exec.Cmd { return w.worker(t, crashWorkerEnv...) }
	killAt := func(cmd *exec.Cmd, received int) {
		t.Helper()
		waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if _, err := sink.Wait(waitCtx, received); err != nil {
			b, _ := os.ReadFile(w.logs)
			t.Fatalf("before the kill: %v\nworker log:\n%s", err, b)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("killed the worker after %d messages", len(sink.Messages()))
	}

	killAt(startWorker(), 600)
	killAt(startWorker(), 2600)
	startWorker()
	r := w.waitFinished(t, run)

	var n, distinct, pending, success int
	err := db.NewRaw(`SELECT count(*), count(DISTINCT client_id), count(*) FILTER (WHERE status = 'pending'),
		count(*) FILTER (WHERE status = 'success') FROM attempts WHERE run_id = ?`, run.ID).Scan(ctx, &n, &distinct, &pending, &success)
	if err != nil {
		t.Fatal(err)
	}
	if n != recipients || distinct != recipients || pending != 0 {
		t.Fatalf("attempts %d (distinct %d, pending %d), want exactly one per each of %d recipients", n, distinct, pending, recipients)
	}
	got := w.received()
	for addr, k := range got {
		if k != 1 {
			t.Errorf("%s received %d messages", addr, k)
		}
	}
	if success > len(got) {
		t.Fatalf("%d attempts say success but only %d addresses received mail", success, len(got))
	}
	t.Logf("run %+v: %d received, %d attempts recorded success, %d failed as interrupted", r, len(got), success, r.Failed)
	if r.Succeeded+r.Failed+r.Skipped != recipients || r.Succeeded != success {
		t.Fatalf("run counts %+v do not match the attempts (%d success)", r, success)
	}
}

// TestStopMidRun stops the real worker with SIGTERM while it sends a run,
// its batches waiting in a statement: it stops claiming (the run is far
// from done when it exits), records every message it sent, and leaves
// nothing "interrupted"; a new worker sends the rest, each recipient once.
func TestStopMidRun(t *testing.T) {
	const recipients = 3000
	ctx := context.Background()
	w, run := stalledRun(t, recipients, 5*time.Millisecond)
	first := w.worker(t, crashWorkerEnv...)
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := w.sink.Wait(waitCtx, 400); err != nil {
		t.Fatal(err)
	}
	// The signal comes while the batches wait in a statement: their next
	// read of recipients waits for a lock, the chunk they sent not yet
	// recorded.
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "LOCK TABLE mailing_recipients IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	for n := -1; n != len(w.sink.Messages()); {
		n = len(w.sink.Messages())
		time.Sleep(300 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("the worker's exit: %v", err)
	}
	sent := len(w.sink.Messages())
	var attempts, interrupted int
	if err := w.db.NewRaw(`SELECT count(*), count(*) FILTER (WHERE response LIKE 'interrupted%') FROM attempts WHERE run_id = ?`, run.ID).
		Scan(ctx, &attempts, &interrupted); err != nil {
		t.Fatal(err)
	}
	if sent >= recipients || attempts != sent || interrupted != 0 {
		t.Fatalf("stopped after %d of %d messages with %d attempts (%d interrupted): want it stopped early, every message recorded",
			sent, recipients, attempts, interrupted)
	}
	t.Logf("stopped after %d messages, all recorded", sent)

	w.worker(t, crashWorkerEnv...)
	r := w.waitFinished(t, run)
	if r.Succeeded != recipients || r.Failed != 0 {
		t.Fatalf("run %+v", r)
	}
	got := w.received()
	for addr, k := range got {
		if k != 1 {
			t.Errorf("%s received %d messages", addr, k)
		}
	}
	if len(got) != recipients {
		t.Fatalf("%d addresses received mail, want %d", len(got), recipients)
	}
}

// crashWorkerEnv are the settings of the workers these tests start.
var crashWorkerEnv = []string{"WORKER_METRICS_ADDR=off", "MAIL_CONCURRENCY=4", "WORKER_CONCURRENCY=4", "LOG_LEVEL=warn",
	"BASE_URL=http://rassylka.test"}

// stalledRun is a world whose SMTP server takes stall over each message,
// with a run to n recipients started; skipped in -short runs, which do
// not build and run the worker.
func stalledRun(t *testing.T, n int, stall time.Duration) (*sendingWorld, *model.Run) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the worker binary")
	}
	w := newSendingWorld(t, n, "Hello {{name}}")
	w.sink.Stall(stall)
	return w, w.startRun(t)
}
