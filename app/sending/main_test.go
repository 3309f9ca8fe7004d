package sending_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"rassylka/app/auth"
	"rassylka/app/mail"
	"rassylka/app/mail/mailsink"
	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

const baseURL = "https://mail.example.test"

// world is an owner with clients, a message and a mailing, a real queue,
// and a real SMTP server behind a connection pool.
type world struct {
	db      *bun.DB
	st      *store.Store
	svc     *sending.Service
	sink    *mailsink.Server
	queue   *asynq.Inspector
	redis   asynq.RedisClientOpt
	owner   *model.User
	msg     *model.Message
	mailing *model.Mailing
	clients []*model.Client
	pool    *mail.Pool
}

func newWorld(t *testing.T, recipients int) *world {
	t.Helper()
	return newWorldOn(t, testkit.DB(t), recipients)
}

// newWorldOn is newWorld on a given database.
func newWorldOn(t *testing.T, db *bun.DB, recipients int) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{db: db, st: store.New(db), sink: testkit.SMTP(t)}
	ro := testkit.RedisOptions(t)
	w.redis = asynq.RedisClientOpt{Addr: ro.Addr, DB: ro.DB}
	client := asynq.NewClient(w.redis)
	t.Cleanup(func() { client.Close() })
	w.queue = asynq.NewInspector(w.redis)
	t.Cleanup(func() { w.queue.Close() })

	sender, err := mail.NewSender(w.sink.URL(), "Shop <news@shop.example>", "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	w.pool = mail.NewPool(sender.WithTimeout(2*time.Second), 4, nil)
	t.Cleanup(w.pool.Close)
	w.svc = &sending.Service{
		Store: w.st, Queue: task.Queue{Client: client, Inspector: w.queue}, Sender: w.pool,
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		BaseURL: baseURL, Secret: "test-secret-test-secret-test-secret",
		BatchSize: 3, Chunk: 2, Concurrency: 4, RetryDelays: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond},
	}
	hash, _ := auth.HashPassword("irrelevant pass")
	now := time.Now()
	w.owner = &model.User{Email: "owner@shop.example", FullName: "Shop Owner", PasswordHash: &hash, EmailConfirmedAt: &now}
	if err := w.st.CreateUser(ctx, w.owner); err != nil {
		t.Fatal(err)
	}
	w.msg = &model.Message{OwnerID: w.owner.ID, Subject: "News for {{name}}", Body: "Dear {{name}} <{{email}}>, hello."}
	if err := w.st.CreateMessage(ctx, w.msg); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := 0; i < recipients; i++ {
		c := &model.Client{OwnerID: w.owner.ID, Email: fmt.Sprintf("r%02d@example.com", i), FullName: fmt.Sprintf("Reader %d", i)}
		if err := w.st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		w.clients = append(w.clients, c)
		ids = append(ids, c.ID)
	}
	start := now.Add(-time.Minute).UTC().Truncate(time.Second)
	w.mailing = &model.Mailing{OwnerID: w.owner.ID, MessageID: w.msg.ID, StartsAt: start, EndsAt: start.Add(time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated, NextRunAt: &start}
	if err := w.st.CreateMailing(ctx, w.mailing, ids); err != nil {
		t.Fatal(err)
	}
	return w
}

// drain processes every open batch of the run, like workers would.
func (w *world) drain(t *testing.T, runID int64) *model.Run {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		open, err := w.st.OpenBatches(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, b := range open {
			if b.RunID == runID {
				n++
				if err := w.svc.ProcessBatch(ctx, b.RunID, b.Seq); err != nil {
					t.Fatalf("batch %d: %v", b.Seq, err)
				}
			}
		}
		if n == 0 {
			break
		}
	}
	r, err := w.st.RunByID(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sendingUntil starts a run of w's mailing by hand, sends its first batch
// in the background, and returns once n mails have arrived; done says
// how the batch ended.
func (w *world) sendingUntil(t *testing.T, n int) (run *model.Run, done <-chan error) {
	t.Helper()
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- w.svc.ProcessBatch(ctx, run.ID, 0) }()
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := w.sink.Wait(waitCtx, n); err != nil {
		t.Fatal(err)
	}
	return run, ended
}

// drainSentOnce drains the run and checks that every one of its n
// recipients was mailed, once.
func (w *world) drainSentOnce(t *testing.T, runID int64, n int) {
	t.Helper()
	if r := w.drain(t, runID); r.Succeeded != n || r.Failed != 0 {
		t.Fatalf("run %+v", r)
	}
	got := received(w.sink)
	for addr, k := range got {
		if k != 1 {
			t.Errorf("%s received %d messages", addr, k)
		}
	}
	if len(got) != n {
		t.Fatalf("%d addresses received mail, want %d", len(got), n)
	}
}

// prepareFirstBatch prepares the statements of the run's first batch, as
// a worker taking it would (closed when the test ends).
func (w *world) prepareFirstBatch(t *testing.T, run *model.Run) *store.BatchStatements {
	t.Helper()
	ctx := context.Background()
	b, err := w.st.Batch(ctx, run.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	stmts, err := w.st.PrepareBatch(ctx, run, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stmts.Close() })
	return stmts
}

// claimNext reads the batch's next recipients after the client id after,
// up to n, and claims them, as a batch does before sending to them.
func claimNext(ctx context.Context, stmts *store.BatchStatements, after int64, n int) ([]store.Claim, error) {
	ids, err := stmts.Next(ctx, after, n)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	_, claims, err := stmts.Record(ctx, nil, ids)
	return claims, err
}

// stopSignal gives the service a stop signal, as the worker's SIGTERM, and
// returns what sends it.
func (w *world) stopSignal(t *testing.T) context.CancelFunc {
	stopping, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	w.svc.Stopping = stopping
	return stop
}

// claimFirst starts a manual run and claims its first n recipients as a
// batch would, without sending.
func (w *world) claimFirst(t *testing.T, n int) (*model.Run, *store.BatchStatements, []store.Claim) {
	t.Helper()
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	stmts := w.prepareFirstBatch(t, run)
	claims, err := claimNext(context.Background(), stmts, 0, n)
	if err != nil || len(claims) != n {
		t.Fatalf("claims %+v, %v", claims, err)
	}
	return run, stmts, claims
}

func (w *world) attempts(t *testing.T, runID int64) []model.Attempt {
	t.Helper()
	as, _, err := w.st.AttemptsOfMailing(context.Background(), w.mailing.ID, "", store.NewPage(1, 10000))
	if err != nil {
		t.Fatal(err)
	}
	var out []model.Attempt
	for _, a := range as {
		if a.RunID == runID {
			out = append(out, a)
		}
	}
	return out
}

// received counts the messages the server got per address.
func received(s *mailsink.Server) map[string]int {
	out := map[string]int{}
	for _, m := range s.Messages() {
		for _, to := range m.To {
			out[to]++
		}
	}
	return out
}

// busy is a temporary refusal of a recipient (tried again later).
var busy = &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
