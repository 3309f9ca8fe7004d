package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"rassylka/app/mail/mailsink"
	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

// TestCrashSafety runs the real worker binary on a run of 5,000 recipients
// with a slow SMTP server, kills it with SIGKILL twice mid-run, restarts
// it, and checks that every recipient ends with exactly one attempt and no
// address was mailed twice.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the worker binary")
	}
	const recipients = 5000
	ctx := context.Background()
	w := newSendingWorld(t, recipients, 3*time.Millisecond)
	db, sink, run, startWorker := w.db, w.sink, w.run, w.start
	killAt := func(cmd *exec.Cmd, received int) {
		t.Helper()
		waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if _, err := sink.Wait(waitCtx, received); err != nil {
			t.Fatalf("before the kill: %v", err)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("killed the worker after %d messages", len(sink.Messages()))
	}

	killAt(startWorker(), 600)
	killAt(startWorker(), 2600)
	last := startWorker()
	defer func() {
		_ = last.Process.Signal(syscall.SIGTERM)
		_ = last.Wait()
	}()

	r := w.waitFinished(t)

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
	if testing.Short() {
		t.Skip("builds and runs the worker binary")
	}
	const recipients = 3000
	ctx := context.Background()
	w := newSendingWorld(t, recipients, 5*time.Millisecond)
	first := w.start()
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
	if err := w.db.NewRaw(`SELECT count(*), count(*) FILTER (WHERE response LIKE 'interrupted%') FROM attempts WHERE run_id = ?`, w.run.ID).
		Scan(ctx, &attempts, &interrupted); err != nil {
		t.Fatal(err)
	}
	if sent >= recipients || attempts != sent || interrupted != 0 {
		t.Fatalf("stopped after %d of %d messages with %d attempts (%d interrupted): want it stopped early, every message recorded",
			sent, recipients, attempts, interrupted)
	}
	t.Logf("stopped after %d messages, all recorded", sent)

	last := w.start()
	defer func() {
		_ = last.Process.Signal(syscall.SIGTERM)
		_ = last.Wait()
	}()
	r := w.waitFinished(t)
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

// sendingWorld is a run of n recipients, not yet sent, and the worker
// binary to send it, started on demand (its output goes to a log file).
type sendingWorld struct {
	db    *bun.DB
	st    *store.Store
	sink  *mailsink.Server
	run   *model.Run
	logs  string
	start func() *exec.Cmd
}

func newSendingWorld(t *testing.T, recipients int, stall time.Duration) *sendingWorld {
	t.Helper()
	ctx := context.Background()
	db, dsn := testkit.DBWithURL(t)
	st := store.New(db)
	redisURL := testkit.RedisURL(t)
	sink := testkit.SMTP(t)
	sink.Stall(stall)

	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}

	// An owner with the clients and a mailing to all of them.
	now := time.Now()
	owner := &model.User{Email: "owner@example.com", EmailConfirmedAt: &now}
	if err := st.CreateUser(ctx, owner); err != nil {
		t.Fatal(err)
	}
	var rows []store.ImportRow
	for i := 0; i < recipients; i++ {
		rows = append(rows, store.ImportRow{Email: fmt.Sprintf("c%05d@example.com", i), FullName: fmt.Sprintf("C %d", i)})
	}
	if _, _, err := st.UpsertClients(ctx, owner.ID, rows); err != nil {
		t.Fatal(err)
	}
	ids, err := st.ClientIDs(ctx, owner.ID, "", recipients)
	if err != nil {
		t.Fatal(err)
	}
	msg := &model.Message{OwnerID: owner.ID, Subject: "Hi {{name}}", Body: "Hello"}
	if err := st.CreateMessage(ctx, msg); err != nil {
		t.Fatal(err)
	}
	start := now.Add(-time.Minute).UTC()
	m := &model.Mailing{OwnerID: owner.ID, MessageID: msg.ID, StartsAt: start, EndsAt: start.Add(time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated}
	if err := st.CreateMailing(ctx, m, ids); err != nil {
		t.Fatal(err)
	}
	conn, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(conn)
	defer client.Close()
	svc := &sending.Service{Store: st, Queue: task.Queue{Client: client}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	run, err := svc.StartManual(ctx, m.ID, nil)
	if err != nil {
		t.Fatal(err)
	}

	logs, err := os.Create(filepath.Join(t.TempDir(), "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	w := &sendingWorld{db: db, st: st, sink: sink, run: run, logs: logs.Name()}
	w.start = func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dsn, "REDIS_URL="+redisURL, "SMTP_URL="+sink.URL(), "WORKER_METRICS_ADDR=off",
			"MAIL_CONCURRENCY=4", "WORKER_CONCURRENCY=4", "LOG_LEVEL=warn", "BASE_URL=http://rassylka.test")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	return w
}

// waitFinished waits for the run to end (at most three minutes).
func (w *sendingWorld) waitFinished(t *testing.T) *model.Run {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r, err := w.st.RunByID(context.Background(), w.run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.FinishedAt != nil {
			return r
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(w.logs)
			t.Fatalf("the run did not finish: %+v\nworker log:\n%s", r, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// received counts the messages the server got per address.
func (w *sendingWorld) received() map[string]int {
	got := map[string]int{}
	for _, msg := range w.sink.Messages() {
		for _, to := range msg.To {
			got[to]++
		}
	}
	return got
}
