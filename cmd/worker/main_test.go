package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv(rawSendEnv)); err == nil {
		os.Exit(rawSendProcess(n)) // the throughput benchmark's baseline
	}
	if busy, err := strconv.Atoi(os.Getenv(loadEnv)); err == nil {
		loadProcess(busy) // a load beside the baseline
	}
	os.Exit(testkit.Main(m))
}

// TestWorkerDeliversAndStops runs the worker as main does, enqueues a mail
// as the web process does, and stops the worker as SIGTERM would.
func TestWorkerDeliversAndStops(t *testing.T) {
	_, dsn := testkit.DBWithURL(t)
	sink := testkit.SMTP(t)
	redisURL := testkit.RedisURL(t)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
	vars := map[string]string{"DATABASE_URL": dsn, "REDIS_URL": redisURL, "SMTP_URL": sink.URL(), "LOG_LEVEL": "warn",
		"WORKER_METRICS_ADDR": metricsAddr, "METRICS_TOKEN": "tok"}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return vars[k] }) }()

	conn, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(conn)
	defer client.Close()
	tk, err := task.NewEmailDeliverTask(task.EmailDeliverPayload{To: "bob@example.com", Subject: "Hello", Text: "Hi"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(tk); err != nil {
		t.Fatal(err)
	}
	waitCtx, stopWait := context.WithTimeout(ctx, 20*time.Second)
	defer stopWait()
	if _, err := sink.Wait(waitCtx, 1); err != nil {
		t.Fatalf("worker did not deliver: %v", err)
	}
	// Its metrics count the task, behind the token.
	req, _ := http.NewRequest(http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer tok")
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `rassylka_tasks_total{outcome="ok",type="email:deliver"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker metrics (%d):\n%s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker returned %v on shutdown", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("worker did not stop")
	}
}

func TestWorkerRefusesBehindSchema(t *testing.T) {
	vars := map[string]string{"DATABASE_URL": testkit.EmptyDB(t), "REDIS_URL": testkit.RedisURL(t)}
	err := run(context.Background(), func(k string) string { return vars[k] })
	if !errors.As(err, new(*store.ErrSchemaBehind)) {
		t.Fatalf("worker on an unmigrated database: %v, want ErrSchemaBehind", err)
	}
}

// A Redis that answers but refuses REDIS_URL (a database number it does
// not have) is a mistake in the configuration: the worker says so and
// exits, instead of running without doing anything. (One out of reach is
// waited for.)
func TestWorkerRefusesARedisThatRefuses(t *testing.T) {
	_, dsn := testkit.DBWithURL(t)
	vars := map[string]string{"DATABASE_URL": dsn, "REDIS_URL": "redis://" + testkit.RedisOptions(t).Addr + "/99999"}
	// Bounded: running on instead would end here, without the refusal.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, func(k string) string { return vars[k] })
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL") || !strings.Contains(err.Error(), "DB index") {
		t.Fatalf("worker on a Redis database that does not exist: %v, want a refusal of REDIS_URL", err)
	}
}

// A task that fails is in the worker's log, with its type and error:
// Asynq says nothing at the info level of a task it will retry, so an
// operator whose mail server was down saw no line while account mail
// waited. The payload stays out (account mail carries sign-in links).
func TestWorkerLogsAFailingTask(t *testing.T) {
	_, dsn := testkit.DBWithURL(t)
	sink := testkit.SMTP(t)
	if err := sink.Down(); err != nil {
		t.Fatal(err)
	}
	redisURL := testkit.RedisURL(t)
	vars := map[string]string{"DATABASE_URL": dsn, "REDIS_URL": redisURL, "SMTP_URL": sink.URL(), "WORKER_METRICS_ADDR": "off"}

	logs, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = logs // the worker logs to the stderr of when it starts
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return vars[k] }) }()
	defer func() {
		cancel()
		<-done
		os.Stderr = stderr
	}()

	conn, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(conn)
	defer client.Close()
	tk, err := task.NewEmailDeliverTask(task.EmailDeliverPayload{To: "bob@example.com", Subject: "Reset", Text: "https://x.example/password/reset/SECRET-TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(tk); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(logs.Name())
		out := string(b)
		if strings.Contains(out, "SECRET-TOKEN") {
			t.Fatalf("the log holds the mail's text:\n%s", out)
		}
		if line := lineWith(out, "task failed"); line != "" {
			if !strings.Contains(line, "email:deliver") || !strings.Contains(line, "refused") {
				t.Fatalf("log line %q, want the task's type and error", line)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line of the failing task:\n%s", out)
		}
	}
}

func lineWith(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}

// TestWorkerArguments runs the worker binary with arguments: asking for
// help prints the usage; anything else is refused at once, before a
// worker starts and sends the run that is waiting.
func TestWorkerArguments(t *testing.T) {
	w := newSendingWorld(t, 1, "Hello")
	w.startRun(t)
	runBin := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, w.bin, args...)
		cmd.Env = w.env
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("worker %v was still running after 20 s", args)
		}
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}

	for _, help := range []string{"--help", "-h", "help"} {
		stdout, _, code := runBin(help)
		if code != 0 || !strings.HasPrefix(stdout, "usage: worker") || !strings.Contains(stdout, "REDIS_URL") {
			t.Errorf("worker %s = exit %d, %q; want the usage", help, code, stdout)
		}
	}
	for _, bad := range [][]string{{"--halp"}, {"serve"}, {"--help", "now"}} {
		_, stderr, code := runBin(bad...)
		if code != 2 || !strings.Contains(stderr, `unexpected argument "`+bad[len(bad)-1]+`"`) || !strings.Contains(stderr, "usage: worker") {
			t.Errorf("worker %v = exit %d, %q; want it refused with the usage", bad, code, stderr)
		}
	}
	if got := len(w.sink.Messages()); got != 0 {
		t.Errorf("%d messages sent by a worker given arguments", got)
	}
}

// Account mail (a confirmation, a reset link a person waits for) does not
// wait behind a mailing's batches, even when they hold every task slot
// of the worker for a long while (here one slot, held by a batch paced
// at two messages a second).
func TestAccountMailIsNotHeldUpByARun(t *testing.T) {
	db, dsn := testkit.DBWithURL(t)
	redisURL := testkit.RedisURL(t)
	w := newSendingWorldOn(t, db, dsn, redisURL, "", 200, "Hello", "")
	w.startRun(t)
	w.worker(t, "WORKER_CONCURRENCY=1", "MAIL_RATE=2", "WORKER_METRICS_ADDR=off", "LOG_LEVEL=warn")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.sink.Wait(ctx, 2); err != nil { // the run's batch is sending
		t.Fatal(err)
	}
	conn, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(conn)
	defer client.Close()
	tk, err := task.NewEmailDeliverTask(task.EmailDeliverPayload{To: "waiting@example.com", Subject: "Your link", Text: "Hi"})
	if err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	if _, err := client.Enqueue(tk); err != nil {
		t.Fatal(err)
	}
	for {
		for _, m := range w.sink.Messages() {
			if len(m.To) == 1 && m.To[0] == "waiting@example.com" {
				t.Logf("account mail delivered %v after it was asked for, beside the run", time.Since(asked).Round(time.Millisecond))
				return
			}
		}
		if time.Since(asked) > 15*time.Second {
			t.Fatalf("account mail not delivered in 15 s while a run's batch held the worker (%d of the run's mails sent)", len(w.sink.Messages()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
