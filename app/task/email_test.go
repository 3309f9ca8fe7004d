package task_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"

	"rassylka/app/mail"
	"rassylka/app/mail/mailsink"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

func newHandler(t *testing.T, sink *mailsink.Server) *task.Handler {
	t.Helper()
	sender, err := mail.NewSender(sink.URL(), "Rassylka <no-reply@rassylka.test>", "rassylka.test")
	if err != nil {
		t.Fatal(err)
	}
	return &task.Handler{
		Mailer: sender.WithTimeout(3 * time.Second),
		Store:  store.New(testkit.DB(t)),
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func deliverTask(t *testing.T) *asynq.Task {
	t.Helper()
	tk, err := task.NewEmailDeliverTask(task.EmailDeliverPayload{
		To: "ann@example.com", ToName: "Ann Ö", Subject: "Confirm your address", Text: "Open https://x.test/confirm/abc — привет",
	})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestEmailDeliver(t *testing.T) {
	sink := testkit.SMTP(t)
	h := newHandler(t, sink)

	if err := h.HandleEmailDeliver(context.Background(), deliverTask(t)); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if len(m.To) != 1 || m.To[0] != "ann@example.com" || m.From != "no-reply@rassylka.test" {
		t.Fatalf("envelope from %q to %v", m.From, m.To)
	}
	hdr := m.Header()
	if got, _ := hdr.AddressList("To"); len(got) != 1 || got[0].Name != "Ann Ö" || got[0].Address != "ann@example.com" {
		t.Errorf("To header = %v", got)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(hdr.Get("Subject"))
	if subj != "Confirm your address" {
		t.Errorf("Subject = %q", subj)
	}
	if id := hdr.Get("Message-ID"); !strings.HasSuffix(id, "@rassylka.test>") {
		t.Errorf("Message-ID = %q, want one on the BASE_URL host", id)
	}
	if _, err := hdr.Date(); err != nil {
		t.Errorf("Date header: %v", err)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(strings.ToLower(ct), "utf-8") {
		t.Errorf("Content-Type = %q, want UTF-8 plain text", ct)
	}
	if body := m.Body(); !strings.Contains(body, "https://x.test/confirm/abc — привет") {
		t.Errorf("body = %q", body)
	}
}

func TestEmailDeliverServerDownIsRetried(t *testing.T) {
	sink := testkit.SMTP(t)
	h := newHandler(t, sink)
	if err := sink.Down(); err != nil {
		t.Fatal(err)
	}
	err := h.HandleEmailDeliver(context.Background(), deliverTask(t))
	if err == nil {
		t.Fatal("deliver with the server down succeeded")
	}
	if errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("a down server must be retried, got SkipRetry: %v", err)
	}
	if err := sink.Up(); err != nil {
		t.Fatal(err)
	}
	if err := h.HandleEmailDeliver(context.Background(), deliverTask(t)); err != nil {
		t.Fatalf("deliver once the server is back: %v", err)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("received %d, want 1", n)
	}
}

func TestEmailDeliverRejectedIsRetried(t *testing.T) {
	sink := testkit.SMTP(t)
	h := newHandler(t, sink)
	sink.RejectData(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"})
	if err := h.HandleEmailDeliver(context.Background(), deliverTask(t)); err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("4xx answer: err = %v, want a retryable error", err)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("received %d, want 0", n)
	}
}

func TestEmailDeliverBadPayloadIsNotRetried(t *testing.T) {
	h := newHandler(t, testkit.SMTP(t))
	for _, payload := range []string{`{`, `{"to":"not an address","subject":"x","text":"y"}`, `{"to":"a@b.c","subject":"a\nBcc: x@y.z","text":"y"}`} {
		err := h.HandleEmailDeliver(context.Background(), asynq.NewTask(task.TypeEmailDeliver, []byte(payload)))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("payload %s: err = %v, want SkipRetry", payload, err)
		}
	}
	if _, err := task.NewEmailDeliverTask(task.EmailDeliverPayload{To: "a@b.c", Subject: "two\r\nlines"}); err == nil {
		t.Error("NewEmailDeliverTask accepted a subject with a line break")
	}
}

// TestEmailDeliverThroughQueue enqueues the task on a real Redis and lets an
// Asynq server deliver it, as the web and worker processes do.
func TestEmailDeliverThroughQueue(t *testing.T) {
	sink := testkit.SMTP(t)
	h := newHandler(t, sink)
	redisOpts := testkit.RedisOptions(t)
	conn := asynq.RedisClientOpt{Addr: redisOpts.Addr, DB: redisOpts.DB}

	srv := asynq.NewServer(conn, asynq.Config{Concurrency: 2, Queues: task.Queues, LogLevel: asynq.WarnLevel})
	mux := asynq.NewServeMux()
	h.Register(mux)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	client := asynq.NewClient(conn)
	t.Cleanup(func() { client.Close() })
	info, err := client.Enqueue(deliverTask(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Queue != task.QueueCritical {
		t.Errorf("queued on %q, want %q", info.Queue, task.QueueCritical)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	msgs, err := sink.Wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].To[0] != "ann@example.com" {
		t.Fatalf("delivered to %v", msgs[0].To)
	}
}

func TestPurgeTokensTwiceIsHarmless(t *testing.T) {
	h := newHandler(t, testkit.SMTP(t))
	for i := 0; i < 2; i++ {
		if err := h.HandlePurgeTokens(context.Background(), task.NewPurgeTokensTask()); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
}

func TestEmailDeliverPermanentRefusalIsNotRetried(t *testing.T) {
	sink := testkit.SMTP(t)
	h := newHandler(t, sink)
	sink.RejectRcpt(func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	})
	err := h.HandleEmailDeliver(context.Background(), deliverTask(t))
	if !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), "no such user") {
		t.Fatalf("550 answer: err = %v, want SkipRetry with the server's text", err)
	}
}

// A server that refuses the sender (a sign-in the settings lack) refuses
// every mail alike until its settings or ours change: the mail is tried
// again, not dropped.
func TestEmailDeliverSenderRefusalIsRetried(t *testing.T) {
	sink := testkit.SMTP(t)
	h := newHandler(t, sink)
	sink.RejectMail(&smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"})
	err := h.HandleEmailDeliver(context.Background(), deliverTask(t))
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("530 answer: err = %v, want a retryable error", err)
	}
}

func TestEmailDeliverStalledServerTimesOut(t *testing.T) {
	sink := testkit.SMTP(t)
	h := newHandler(t, sink)
	h.Mailer = h.Mailer.(*mail.Sender).WithTimeout(500 * time.Millisecond)
	sink.Stall(5 * time.Second)
	start := time.Now()
	err := h.HandleEmailDeliver(context.Background(), deliverTask(t))
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("stalled server: err = %v, want a retryable error", err)
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Fatalf("the send waited %v for a stalled server; the timeout did not apply", waited)
	}
}

// A name with a line break (from before names were kept to one line, or
// from a sign-in provider) does not stop the mail: it goes on one line.
func TestEmailDeliverNameOnOneLine(t *testing.T) {
	sink := testkit.SMTP(t)
	h := newHandler(t, sink)
	tk, err := task.NewEmailDeliverTask(task.EmailDeliverPayload{To: "ann@example.com", ToName: "Ann\r\nBcc: x@example.com", Subject: "S", Text: "T"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.HandleEmailDeliver(context.Background(), tk); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	if msgs := sink.Messages(); len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "ann@example.com" {
		t.Fatalf("received %+v", msgs)
	}
}

// Account mail is tried again at most five minutes apart, and for about a
// day in all; a batch at most a minute apart, whatever its tries; other
// tasks keep Asynq's backoff.
func TestRetryDelay(t *testing.T) {
	mail := deliverTask(t)
	var total time.Duration
	tries := mailMaxRetry(t, mail)
	for n := 1; n <= tries; n++ {
		d := task.RetryDelay(n, errors.New("down"), mail)
		if d <= 0 || d > 5*time.Minute {
			t.Fatalf("account mail's try %d waits %v", n, d)
		}
		total += d
	}
	if total < 20*time.Hour || total > 30*time.Hour {
		t.Errorf("account mail is tried for %v in all, want about a day", total)
	}
	batch, err := task.NewMailingBatchTask(task.MailingBatchPayload{RunID: 1, Seq: 1}, "0")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 10, mailMaxRetry(t, batch)} {
		if d := task.RetryDelay(n, errors.New("down"), batch); d <= 0 || d > time.Minute {
			t.Errorf("a batch's try %d waits %v, want at most the reconciler's minute", n, d)
		}
	}
	// A batch whose worker stopped (its lease expired) is taken up again
	// at once: it waited Asynq's backoff, 15 to 45 s, after the lease's.
	if d := task.RetryDelay(1, asynq.ErrLeaseExpired, batch); d > time.Second {
		t.Errorf("a batch whose worker stopped waits %v", d)
	}
	start, err := task.NewMailingRunTask(task.MailingRunPayload{MailingID: 1, DueUnix: time.Now().Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if d := task.RetryDelay(10, errors.New("down"), start); d < 10000*time.Second {
		t.Errorf("a run's start's 10th retry waits %v, want Asynq's backoff", d)
	}
}

// mailMaxRetry reads the task's MaxRetry as Asynq queues it.
func mailMaxRetry(t *testing.T, tk *asynq.Task) int {
	t.Helper()
	ro := testkit.RedisOptions(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: ro.Addr, DB: ro.DB})
	defer client.Close()
	info, err := client.Enqueue(tk)
	if err != nil {
		t.Fatal(err)
	}
	return info.MaxRetry
}
