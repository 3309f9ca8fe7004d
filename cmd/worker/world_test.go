package main

import (
	"context"
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

// sendingWorld is an owner with n clients and a mailing to all of them, the
// worker binary to send it, and an SMTP server to receive it.
type sendingWorld struct {
	db      *bun.DB
	st      *store.Store
	sink    *mailsink.Server
	mailing *model.Mailing
	svc     *sending.Service // starts runs, as the web process does
	bin     string           // the worker binary
	env     []string         // the worker's: the database, Redis and SMTP server above
	logs    string           // where the workers' output goes
}

func newSendingWorld(tb testing.TB, n int, body string) *sendingWorld {
	tb.Helper()
	db, dsn := testkit.DBWithURL(tb)
	return newSendingWorldOn(tb, db, dsn, testkit.RedisURL(tb), "", n, body, "")
}

// newSendingWorldOn is newSendingWorld on a given database and Redis, with
// prefix before the owner's and the clients' addresses (a database may
// hold several worlds) and the worker binary bin ("": built here).
func newSendingWorldOn(tb testing.TB, db *bun.DB, dsn, redisURL, prefix string, n int, body, bin string) *sendingWorld {
	tb.Helper()
	ctx := context.Background()
	st := store.New(db)
	w := &sendingWorld{db: db, st: st, sink: testkit.SMTP(tb), bin: bin, logs: filepath.Join(tb.TempDir(), "worker.log")}
	w.env = append(os.Environ(), "DATABASE_URL="+dsn, "REDIS_URL="+redisURL, "SMTP_URL="+w.sink.URL())
	if w.bin == "" {
		w.bin = filepath.Join(tb.TempDir(), "worker")
		if out, err := exec.Command("go", "build", "-o", w.bin, ".").CombinedOutput(); err != nil {
			tb.Fatalf("build worker: %v\n%s", err, out)
		}
	}

	now := time.Now()
	owner := &model.User{Email: prefix + "owner@example.com", EmailConfirmedAt: &now}
	if err := st.CreateUser(ctx, owner); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < n; i += 10000 {
		var rows []store.ImportRow
		for j := i; j < min(i+10000, n); j++ {
			rows = append(rows, store.ImportRow{Email: prefix + benchAddress(j), FullName: "Reader"})
		}
		if _, err := st.UpsertClients(ctx, owner.ID, rows); err != nil {
			tb.Fatal(err)
		}
	}
	ids, err := st.ClientIDs(ctx, owner.ID, "", n)
	if err != nil {
		tb.Fatal(err)
	}
	msg := &model.Message{OwnerID: owner.ID, Subject: "News", Body: body}
	if err := st.CreateMessage(ctx, msg); err != nil {
		tb.Fatal(err)
	}
	start := now.Add(-time.Minute).UTC()
	w.mailing = &model.Mailing{OwnerID: owner.ID, MessageID: msg.ID, StartsAt: start, EndsAt: start.Add(24 * time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated}
	if err := st.CreateMailing(ctx, w.mailing, ids); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
		tb.Fatal(err)
	}
	conn, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		tb.Fatal(err)
	}
	client := asynq.NewClient(conn)
	tb.Cleanup(func() { client.Close() })
	w.svc = &sending.Service{Store: st, Queue: task.Queue{Client: client}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return w
}

// startRun starts a run of the mailing ("Send now").
func (w *sendingWorld) startRun(tb testing.TB) *model.Run {
	tb.Helper()
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return run
}

// worker starts the worker binary with the world's environment and extra
// variables; it is stopped with SIGTERM when the test ends, if still up.
func (w *sendingWorld) worker(tb testing.TB, extra ...string) *exec.Cmd {
	tb.Helper()
	logs, err := os.OpenFile(w.logs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(w.bin)
	cmd.Env = append(append([]string{}, w.env...), extra...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait() // an error once it was waited for
		logs.Close()
	})
	return cmd
}

// waitFinished waits for the run to end (at most three minutes).
func (w *sendingWorld) waitFinished(tb testing.TB, run *model.Run) *model.Run {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r, err := w.st.RunByID(context.Background(), run.ID)
		if err != nil {
			tb.Fatal(err)
		}
		if r.FinishedAt != nil {
			return r
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(w.logs)
			tb.Fatalf("the run did not finish: %+v\nworker log:\n%s", r, b)
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
