package task_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"rassylka/app/mail"
	"rassylka/app/mail/mailsink"
	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

// taskWorld is a task handler over a real database, queue and SMTP server,
// with an owner, three clients and a message.
type taskWorld struct {
	h     *task.Handler
	st    *store.Store
	sink  *mailsink.Server
	owner *model.User
	msg   *model.Message
	ids   []int64
}

func newTaskWorld(t *testing.T) *taskWorld {
	t.Helper()
	ctx := context.Background()
	w := &taskWorld{st: store.New(testkit.DB(t)), sink: testkit.SMTP(t)}
	ro := testkit.RedisOptions(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: ro.Addr, DB: ro.DB})
	t.Cleanup(func() { client.Close() })
	sender, err := mail.NewSender(w.sink.URL(), "x@example.com", "example.com")
	if err != nil {
		t.Fatal(err)
	}
	pool := mail.NewPool(sender, 2, nil)
	t.Cleanup(pool.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w.h = &task.Handler{Store: w.st, Log: log, Sending: &sending.Service{Store: w.st, Queue: task.Queue{Client: client}, Sender: pool, Log: log, Concurrency: 2}}

	now := time.Now()
	w.owner = &model.User{Email: "o@example.com", EmailConfirmedAt: &now}
	if err := w.st.CreateUser(ctx, w.owner); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		c := &model.Client{OwnerID: w.owner.ID, Email: e}
		if err := w.st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		w.ids = append(w.ids, c.ID)
	}
	w.msg = &model.Message{OwnerID: w.owner.ID, Subject: "S", Body: "B"}
	if err := w.st.CreateMessage(ctx, w.msg); err != nil {
		t.Fatal(err)
	}
	return w
}

// mailing creates a mailing to the world's clients, its window from start
// for an hour, next due at start.
func (w *taskWorld) mailing(t *testing.T, start time.Time) *model.Mailing {
	t.Helper()
	m := &model.Mailing{OwnerID: w.owner.ID, MessageID: w.msg.ID, StartsAt: start, EndsAt: start.Add(time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated, NextRunAt: &start}
	if err := w.st.CreateMailing(context.Background(), m, w.ids); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMailingBatchTaskTwice hands the same batch task to the handler twice,
// as Asynq may after a lost acknowledgement: each recipient is mailed once.
func TestMailingBatchTaskTwice(t *testing.T) {
	ctx := context.Background()
	w := newTaskWorld(t)
	h, st, sink := w.h, w.st, w.sink
	now := time.Now()
	m := w.mailing(t, now.Add(-time.Minute))
	run, err := h.Sending.StartManual(ctx, m.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(task.MailingBatchPayload{RunID: run.ID, Seq: 0})
	for i := 0; i < 2; i++ {
		if err := h.HandleMailingBatch(ctx, asynq.NewTask(task.TypeMailingBatch, payload)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sink.Messages()); n != 3 {
		t.Fatalf("%d messages for 3 recipients", n)
	}
	r, _ := st.RunByID(ctx, run.ID)
	if r.Succeeded != 3 || r.FinishedAt == nil {
		t.Fatalf("run %+v", r)
	}
	// A malformed payload is not retried; a planned run of a deleted mailing does nothing.
	if err := h.HandleMailingBatch(ctx, asynq.NewTask(task.TypeMailingBatch, []byte("{"))); err == nil {
		t.Fatal("bad payload accepted")
	}
	runTask, _ := task.NewMailingRunTask(task.MailingRunPayload{MailingID: 999999, DueUnix: now.Unix()})
	if err := h.HandleMailingRun(ctx, runTask); err != nil {
		t.Fatalf("run of a missing mailing: %v", err)
	}
}

// A planned start that fires a little before its time (the clocks of
// Redis and of the worker differ) waits for it and starts the run, rather
// than leave it to the reconciler's next minute.
func TestEarlyRunTaskWaitsForItsTime(t *testing.T) {
	w := newTaskWorld(t)
	due := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second)
	m := w.mailing(t, due)
	runTask, _ := task.NewMailingRunTask(task.MailingRunPayload{MailingID: m.ID, DueUnix: due.Unix()})
	if err := w.h.HandleMailingRun(context.Background(), runTask); err != nil {
		t.Fatal(err)
	}
	r, err := w.st.LatestRun(context.Background(), m.ID)
	if err != nil || r.DueAt == nil || !r.DueAt.Equal(due) || r.StartedAt.Before(due) {
		t.Fatalf("run %+v, %v: want it started at %s", r, err, due)
	}
}
