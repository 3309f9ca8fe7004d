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
	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

// TestMailingBatchTaskTwice hands the same batch task to the handler twice,
// as Asynq may after a lost acknowledgement: each recipient is mailed once.
func TestMailingBatchTaskTwice(t *testing.T) {
	ctx := context.Background()
	st := store.New(testkit.DB(t))
	sink := testkit.SMTP(t)
	ro := testkit.RedisOptions(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: ro.Addr, DB: ro.DB})
	defer client.Close()
	sender, err := mail.NewSender(sink.URL(), "x@example.com", "example.com")
	if err != nil {
		t.Fatal(err)
	}
	pool := mail.NewPool(sender, 2, nil)
	defer pool.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &task.Handler{Store: st, Log: log, Sending: &sending.Service{Store: st, Queue: task.Queue{Client: client}, Sender: pool, Log: log, Concurrency: 2}}

	now := time.Now()
	owner := &model.User{Email: "o@example.com", EmailConfirmedAt: &now}
	if err := st.CreateUser(ctx, owner); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		c := &model.Client{OwnerID: owner.ID, Email: e}
		if err := st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	msg := &model.Message{OwnerID: owner.ID, Subject: "S", Body: "B"}
	if err := st.CreateMessage(ctx, msg); err != nil {
		t.Fatal(err)
	}
	start := now.Add(-time.Minute)
	m := &model.Mailing{OwnerID: owner.ID, MessageID: msg.ID, StartsAt: start, EndsAt: start.Add(time.Hour), Repeat: model.RepeatOnce, Status: model.StatusCreated}
	if err := st.CreateMailing(ctx, m, ids); err != nil {
		t.Fatal(err)
	}
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
