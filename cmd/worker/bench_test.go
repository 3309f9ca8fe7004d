package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	rmail "rassylka/app/mail"
	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

// BenchmarkWorkerThroughput sends a run through one real worker process
// (queue, batches, claimed and recorded attempts) to a local SMTP server
// that accepts everything, and in the same run a raw baseline: the same
// number of pooled SMTP connections sending the same messages with no
// database and no queue. It reports messages per second of both, their
// ratio, and the worker's peak resident memory:
//
//	scripts/test ./cmd/worker -run '^$' -bench WorkerThroughput -benchtime 1x
//
// Figures are recorded in docs/benchmarks.md.
func BenchmarkWorkerThroughput(b *testing.B) {
	for _, n := range []int{20000, 200000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchThroughput(b, n)
			}
		})
	}
}

const benchConns = 4

func benchThroughput(b *testing.B, n int) {
	ctx := context.Background()
	db, dsn := testkit.DBWithURL(b)
	st := store.New(db)
	redisURL := testkit.RedisURL(b)
	sink := testkit.SMTP(b)
	bin := filepath.Join(b.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build worker: %v\n%s", err, out)
	}

	// Raw baseline: pooled connections, the same messages, nothing else.
	sender, err := rmail.NewSender(sink.URL(), "News <news@example.com>", "example.com")
	if err != nil {
		b.Fatal(err)
	}
	pool := rmail.NewPool(sender, benchConns, nil)
	body := "Dear reader,\n" + strings.Repeat("Some news worth reading. ", 20) + "\n"
	began := time.Now()
	jobs := make(chan int)
	done := make(chan struct{})
	for w := 0; w < benchConns; w++ {
		go func() {
			for i := range jobs {
				addr := fmt.Sprintf("c%06d@example.com", i)
				res := pool.Send(ctx, rmail.Message{To: mail.Address{Name: "Reader", Address: addr}, Subject: "News", Text: body})
				if res.Class != rmail.Delivered {
					b.Errorf("baseline send: %+v", res)
				}
			}
			done <- struct{}{}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	for w := 0; w < benchConns; w++ {
		<-done
	}
	raw := float64(n) / time.Since(began).Seconds()
	pool.Close()
	sink.Reset()

	// The worker: an owner with n clients and a mailing to all of them.
	now := time.Now()
	owner := &model.User{Email: "owner@example.com", EmailConfirmedAt: &now}
	if err := st.CreateUser(ctx, owner); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 10000 {
		var rows []store.ImportRow
		for j := i; j < min(i+10000, n); j++ {
			rows = append(rows, store.ImportRow{Email: fmt.Sprintf("c%06d@example.com", j), FullName: "Reader"})
		}
		if _, _, err := st.UpsertClients(ctx, owner.ID, rows); err != nil {
			b.Fatal(err)
		}
	}
	ids, err := st.ClientIDs(ctx, owner.ID, "", n)
	if err != nil {
		b.Fatal(err)
	}
	msg := &model.Message{OwnerID: owner.ID, Subject: "News", Body: body}
	if err := st.CreateMessage(ctx, msg); err != nil {
		b.Fatal(err)
	}
	start := now.Add(-time.Minute).UTC()
	m := &model.Mailing{OwnerID: owner.ID, MessageID: msg.ID, StartsAt: start, EndsAt: start.Add(24 * time.Hour), Repeat: model.RepeatOnce, Status: model.StatusCreated}
	if err := st.CreateMailing(ctx, m, ids); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	conn, _ := asynq.ParseRedisURI(redisURL)
	client := asynq.NewClient(conn)
	defer client.Close()
	svc := &sending.Service{Store: st, Queue: task.Queue{Client: client}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dsn, "REDIS_URL="+redisURL, "SMTP_URL="+sink.URL(),
		"MAIL_CONCURRENCY="+strconv.Itoa(benchConns), "LOG_LEVEL=error")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	time.Sleep(time.Second) // let it start
	b.ResetTimer()
	began = time.Now()
	run, err := svc.StartManual(ctx, m.ID, nil)
	if err != nil {
		b.Fatal(err)
	}
	var peak int64
	for {
		r, err := st.RunByID(ctx, run.ID)
		if err != nil {
			b.Fatal(err)
		}
		peak = max(peak, peakRSS(cmd.Process.Pid))
		if r.FinishedAt != nil {
			if r.Succeeded != n {
				b.Fatalf("run %+v", r)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	worker := float64(n) / time.Since(began).Seconds()
	b.StopTimer()
	b.ReportMetric(raw, "raw-msg/s")
	b.ReportMetric(worker, "worker-msg/s")
	b.ReportMetric(worker/raw, "ratio")
	b.ReportMetric(float64(peak)/1024, "worker-peak-MB")
}

// peakRSS is a process's peak resident memory (VmHWM) in KiB.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}
