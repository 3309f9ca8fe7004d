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
	db, dsn := testkit.DBWithURL(t)
	st := store.New(db)
	redisURL := testkit.RedisURL(t)
	sink := testkit.SMTP(t)
	sink.Stall(3 * time.Millisecond)

	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}

	// An owner with 5,000 clients and a mailing to all of them.
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
	startWorker := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dsn, "REDIS_URL="+redisURL, "SMTP_URL="+sink.URL(), "WORKER_METRICS_ADDR=off",
			"MAIL_CONCURRENCY=4", "WORKER_CONCURRENCY=4", "LOG_LEVEL=warn", "BASE_URL=http://rassylka.test")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
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

	deadline := time.Now().Add(3 * time.Minute)
	var r *model.Run
	for {
		if r, err = st.RunByID(ctx, run.ID); err != nil {
			t.Fatal(err)
		}
		if r.FinishedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("the run did not finish: %+v\nworker log:\n%s", r, b)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var n, distinct, pending, success int
	err = db.NewRaw(`SELECT count(*), count(DISTINCT client_id), count(*) FILTER (WHERE status = 'pending'),
		count(*) FILTER (WHERE status = 'success') FROM attempts WHERE run_id = ?`, run.ID).Scan(ctx, &n, &distinct, &pending, &success)
	if err != nil {
		t.Fatal(err)
	}
	if n != recipients || distinct != recipients || pending != 0 {
		t.Fatalf("attempts %d (distinct %d, pending %d), want exactly one per each of %d recipients", n, distinct, pending, recipients)
	}
	got := map[string]int{}
	for _, msg := range sink.Messages() {
		for _, to := range msg.To {
			got[to]++
		}
	}
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
