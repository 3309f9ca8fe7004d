package sending_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/store"
)

// queuedBatches lists the batch tasks waiting in the queue, read from
// Redis itself (after a wipe, Asynq's list of queue names is gone too, and
// its inspector would not look).
func (w *world) queuedBatches(t *testing.T) []string {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: w.redis.Addr, DB: w.redis.DB})
	defer rdb.Close()
	pending, err := rdb.LRange(context.Background(), "asynq:{default}:pending", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, id := range pending {
		if strings.HasPrefix(id, "mailing-batch:") {
			ids = append(ids, id)
		}
	}
	return ids
}

func TestReconcilerStartsTheLatestDueOccurrenceOnce(t *testing.T) {
	w := newWorld(t, 5)
	ctx := context.Background()
	now := time.Now().UTC()
	// A daily mailing whose first two occurrences were missed (downtime).
	start := now.Add(-49 * time.Hour).Truncate(time.Minute)
	w.mailing.StartsAt, w.mailing.EndsAt, w.mailing.Repeat, w.mailing.NextRunAt = start, start.Add(10*24*time.Hour), model.RepeatDaily, &start
	if err := w.st.UpdateMailing(ctx, w.owner.ID, w.mailing, nil); err != nil {
		t.Fatal(err)
	}
	// Two workers' schedulers reconcile at the same moment.
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.svc.Reconcile(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	runs, err := latestRuns(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	wantDue := start.Add(48 * time.Hour)
	if len(runs) != 1 || runs[0].Trigger != model.TriggerScheduled || runs[0].DueAt == nil || !runs[0].DueAt.Equal(wantDue) {
		t.Fatalf("runs %+v, want one for the latest occurrence %v", runs, wantDue)
	}
	m, _ := w.st.MailingByID(ctx, store.Everyone(0), w.mailing.ID)
	if m.Status != model.StatusRunning || m.NextRunAt == nil || !m.NextRunAt.Equal(start.Add(72*time.Hour)) {
		t.Fatalf("mailing after the run started: status %s next %v", m.Status, m.NextRunAt)
	}
	if n := len(w.queuedBatches(t)); n != 2 { // 5 recipients, batches of 3
		t.Fatalf("%d batch tasks queued, want 2", n)
	}

	// Redis is wiped: the reconciler queues the unfinished run's batches again.
	rdb := redis.NewClient(&redis.Options{Addr: w.redis.Addr, DB: w.redis.DB})
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n := len(w.queuedBatches(t)); n != 0 {
		t.Fatalf("queue not wiped: %d", n)
	}
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(w.queuedBatches(t)); n != 2 {
		t.Fatalf("after the wipe %d batch tasks queued, want 2", n)
	}
	r := w.drain(t, runs[0].ID)
	if r.Succeeded != 5 || r.FinishedAt == nil {
		t.Fatalf("run %+v", r)
	}
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if runs, _ := latestRuns(ctx, w); len(runs) != 1 {
		t.Fatalf("a finished occurrence started again: %d runs", len(runs))
	}

	// The next day's occurrence comes; then the window closes.
	w.svc.Now = func() time.Time { return start.Add(72*time.Hour + time.Minute) }
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if runs, _ := latestRuns(ctx, w); len(runs) != 2 {
		t.Fatalf("next occurrence: %d runs", len(runs))
	}
	w.svc.Now = func() time.Time { return w.mailing.EndsAt.Add(time.Minute) }
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ = w.st.MailingByID(ctx, store.Everyone(0), w.mailing.ID)
	if m.Status != model.StatusFinished || m.NextRunAt != nil {
		t.Fatalf("after the end: status %s next %v", m.Status, m.NextRunAt)
	}
}

func TestPlannedRunTask(t *testing.T) {
	w := newWorld(t, 1)
	ctx := context.Background()
	future := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	w.mailing.StartsAt, w.mailing.EndsAt, w.mailing.NextRunAt = future, future.Add(time.Hour), &future
	if err := w.st.UpdateMailing(ctx, w.owner.ID, w.mailing, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // planning twice queues one task
		if err := w.svc.Plan(ctx, w.mailing.ID); err != nil {
			t.Fatal(err)
		}
	}
	tasks, err := w.queue.ListScheduledTasks("default")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || tasks[0].Type != "mailing:run" || !tasks[0].NextProcessAt.Equal(future) {
		t.Fatalf("scheduled tasks %+v", tasks)
	}
	// Run early (a stale or early task): nothing starts.
	if _, err := w.svc.StartScheduled(ctx, w.mailing.ID); err == nil {
		t.Fatal("an occurrence in the future started")
	}
	// Disabling or deleting the mailing cancels the plan.
	w.svc.Unplan(ctx, w.mailing.ID, &future)
	if tasks, err := w.queue.ListScheduledTasks("default"); err != nil || len(tasks) != 0 {
		t.Fatalf("scheduled tasks after cancel %+v, %v", tasks, err)
	}
}

// A due occurrence does not start while a run of the mailing still sends:
// it waits, and the reconciler starts it once that run has ended.
func TestScheduledOccurrenceWaitsForActiveRun(t *testing.T) {
	w := newWorld(t, 2)
	ctx := context.Background()
	// A repeating mailing: a run by hand of a one-off mailing takes the
	// place of its send (TestSendNowTakesTheOneOffSendsPlace).
	if _, err := w.db.ExecContext(ctx, "UPDATE mailings SET repeat = 'daily' WHERE id = ?", w.mailing.ID); err != nil {
		t.Fatal(err)
	}
	manual, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	runs, _ := latestRuns(ctx, w)
	if len(runs) != 1 {
		t.Fatalf("%d runs while one was sending, want 1", len(runs))
	}
	if m, _ := w.st.MailingByID(ctx, store.Everyone(0), w.mailing.ID); m.NextRunAt == nil || !m.NextRunAt.Equal(*w.mailing.NextRunAt) {
		t.Fatalf("the waiting occurrence was dropped: next %v", m.NextRunAt)
	}
	w.drain(t, manual.ID)
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	runs, _ = latestRuns(ctx, w)
	if len(runs) != 2 || runs[0].Trigger != model.TriggerScheduled {
		t.Fatalf("runs %+v, want the scheduled one after the manual one", runs)
	}
}

// The reconciler closes a run whose batches all ended but which was never
// closed, and queues again a batch whose task was archived.
func TestReconcilerRepairsRunsAndArchivedBatches(t *testing.T) {
	w := newWorld(t, 4)
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Batch 0's task failed every retry and was archived.
	id0 := "mailing-batch:" + strconv.FormatInt(run.ID, 10) + ":0:0"
	if err := w.queue.ArchiveTask("default", id0); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := w.queue.GetTaskInfo("default", id0); err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("archived batch after reconcile: %+v, %v", info, err)
	}
	// Every batch is sent, but the worker died before closing the run.
	for _, seq := range []int{0, 1} {
		b, err := w.st.Batch(ctx, run.ID, seq)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.st.LockBatch(ctx, run.ID, seq, func(locked *store.Store) error {
			stmts, err := locked.PrepareBatch(ctx, run, b)
			if err != nil {
				return err
			}
			defer stmts.Close()
			for {
				c, err := claimNext(ctx, stmts, 0, 10)
				if err != nil || len(c) == 0 {
					return err
				}
				rs := make([]store.AttemptResult, len(c))
				for i := range c {
					rs[i] = store.AttemptResult{ClientID: c[i].ClientID, Email: c[i].Email, Status: model.AttemptSuccess, Code: 250, Response: "250 ok", Tries: 1, At: time.Now()}
				}
				if _, _, err := stmts.Record(ctx, rs, nil); err != nil {
					return err
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.st.FinishBatch(ctx, run, b, false); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := w.st.RunByID(ctx, run.ID); r.FinishedAt != nil {
		t.Fatal("run closed before the reconciler ran")
	}
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ := w.st.RunByID(ctx, run.ID)
	if r.FinishedAt == nil || r.Succeeded != 4 {
		t.Fatalf("run after reconcile %+v", r)
	}
	if _, err := w.svc.StartManual(ctx, w.mailing.ID, nil); err != nil {
		t.Fatalf("a new run after the repaired one: %v", err)
	}
}

// A batch whose worker died mid-chunk while Redis lived on (its task
// still "active" there until Asynq finds the lease expired, two minutes or
// so) is queued again by the reconciler once no worker holds it and its
// claim has stood for a while: the run stood still meanwhile, another
// worker idle. A batch a worker holds, or a fresh claim, is left alone,
// and the batch is queued again once per claim.
func TestReconcilerQueuesABatchItsWorkerLeftMidChunk(t *testing.T) {
	w := newWorld(t, 6)
	w.svc.BatchSize = 2 // batches 0, 1 and 2
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	claim := func(seq int, c *model.Client, ago string) {
		t.Helper()
		if _, err := w.db.ExecContext(ctx, `UPDATE run_batches SET claimed = ARRAY[?::bigint], claimed_emails = ARRAY[?::text],
			claimed_at = now() - ?::interval WHERE run_id = ? AND seq = ?`, c.ID, c.Email, ago, run.ID, seq); err != nil {
			t.Fatal(err)
		}
	}
	// Batches 0 and 1 were left by a worker that died a minute ago; batch
	// 2 claimed a moment ago.
	claim(0, w.clients[0], "1 minute")
	claim(1, w.clients[2], "1 minute")
	claim(2, w.clients[4], "0 seconds")
	orphans := func() []string {
		t.Helper()
		var seqs []string
		for _, id := range w.queuedBatches(t) {
			if strings.Contains(id, ":orphan-") {
				seqs = append(seqs, strings.Split(id, ":")[2])
			}
		}
		slices.Sort(seqs)
		return seqs
	}
	locks := func() int {
		t.Helper()
		var n int
		if err := w.db.NewRaw(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// While a worker holds batch 0 (a slow chunk), it is no orphan; batch
	// 1, which no one holds, is.
	held, release, released := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(released)
		_ = w.st.LockBatch(ctx, run.ID, 0, func(*store.Store) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := orphans(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("queued again while batch 0 is held: batches %v, want 1 alone", got)
	}
	close(release)
	<-released
	for deadline := time.Now().Add(5 * time.Second); locks() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the batch's lock is still held")
		}
	}
	for range 2 { // once per claim
		if err := w.svc.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := orphans(); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("queued again: batches %v, want 0 and 1 once each", got)
	}
	// The batches taken up, the claims left (batch 2's too, made up here)
	// are recorded as interrupted and the rest is sent.
	if r := w.drain(t, run.ID); r.FinishedAt == nil || r.Succeeded != 3 || r.Failed != 3 {
		t.Fatalf("run %+v: want the claims left recorded as interrupted and the 3 others sent", r)
	}
}

// A daily mailing whose owner moves to another time zone keeps each day
// once: the occurrence planned in the old zone runs when due, standing for
// that day's, and the next days follow in the new zone.
func TestTimeZoneChangeKeepsEachDayOnce(t *testing.T) {
	// The start, 09:00 UTC on January 1, is 10:00 in Berlin: 08:00 UTC on
	// a summer day there.
	start := time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		from, to string
		at       []int    // hours (UTC) of June 11 and 12 the reconciler looks at
		want     []string // runs' due times, newest first
	}{
		// Eastward: the new zone's June 11 comes before the planned one.
		{"UTC", "Europe/Berlin", []int{8, 9, 23, 24 + 8}, []string{"06-12 08:00", "06-11 09:00", "06-10 09:00"}},
		// Westward: it comes after the planned one, and is not run again.
		{"Europe/Berlin", "UTC", []int{8, 9, 23, 24 + 9}, []string{"06-12 09:00", "06-11 08:00", "06-10 08:00"}},
	} {
		t.Run(c.from+"-to-"+c.to, func(t *testing.T) {
			w := newWorld(t, 1)
			ctx := context.Background()
			if err := w.st.UpdateProfile(ctx, w.owner.ID, store.Profile{FullName: w.owner.FullName, TimeZone: c.from}); err != nil {
				t.Fatal(err)
			}
			w.mailing.StartsAt, w.mailing.EndsAt, w.mailing.Repeat, w.mailing.NextRunAt = start, start.AddDate(1, 0, 0), model.RepeatDaily, &start
			if err := w.st.UpdateMailing(ctx, w.owner.ID, w.mailing, nil); err != nil {
				t.Fatal(err)
			}
			now := time.Date(2027, 6, 10, 23, 0, 0, 0, time.UTC)
			w.svc.Now = func() time.Time { return now }
			run, err := w.svc.StartScheduled(ctx, w.mailing.ID) // June 10's, the latest due
			if err != nil {
				t.Fatal(err)
			}
			w.drain(t, run.ID)
			if err := w.st.UpdateProfile(ctx, w.owner.ID, store.Profile{FullName: w.owner.FullName, TimeZone: c.to}); err != nil {
				t.Fatal(err)
			}
			for _, h := range c.at {
				now = time.Date(2027, 6, 11, h, 1, 0, 0, time.UTC)
				if err := w.svc.Reconcile(ctx); err != nil {
					t.Fatal(err)
				}
				if r, err := w.st.LatestRun(ctx, w.mailing.ID); err == nil && r.FinishedAt == nil {
					w.drain(t, r.ID)
				}
			}
			runs, err := latestRuns(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			var due []string
			for _, r := range runs {
				due = append(due, r.DueAt.UTC().Format("01-02 15:04"))
			}
			if !slices.Equal(due, c.want) {
				t.Fatalf("runs due at %v, want %v", due, c.want)
			}
		})
	}
}

// A daily run still sending when its owner moves east keeps sending until
// the occurrence planned next, not until the new zone's occurrence of the
// next day (an hour earlier): stopping there would skip its recipients for
// a day, as the planned occurrence runs an hour later.
func TestARunKeepsSendingUntilThePlannedNextAfterATimeZoneChange(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	start := time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC)
	w.mailing.StartsAt, w.mailing.EndsAt, w.mailing.Repeat, w.mailing.NextRunAt = start, start.AddDate(1, 0, 0), model.RepeatDaily, &start
	if err := w.st.UpdateMailing(ctx, w.owner.ID, w.mailing, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2027, 6, 10, 9, 1, 0, 0, time.UTC)
	w.svc.Now = func() time.Time { return now }
	run, err := w.svc.StartScheduled(ctx, w.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	// June 11's occurrence in Berlin is 08:00 UTC; the planned one, 09:00.
	if err := w.st.UpdateProfile(ctx, w.owner.ID, store.Profile{FullName: w.owner.FullName, TimeZone: "Europe/Berlin"}); err != nil {
		t.Fatal(err)
	}
	now = time.Date(2027, 6, 11, 8, 30, 0, 0, time.UTC)
	if r := w.drain(t, run.ID); r.Succeeded != 3 || r.Skipped != 0 {
		t.Fatalf("June 10's run resumed at 08:30 UTC on June 11, after a move to Berlin: %+v; want all 3 sent", r)
	}
}

// refusingQueue is a task queue that cannot take batches (Redis down).
type refusingQueue struct{ sending.Queue }

func (refusingQueue) EnqueueBatches(context.Context, []model.RunBatch, string) error {
	return errors.New("redis: connection refused")
}

// A run whose batches could not be queued has started all the same ("Send
// now" says so): the reconciler queues them, and the run sends.
func TestRunStartsWhenItsBatchesCannotBeQueued(t *testing.T) {
	w := newWorld(t, 2)
	ctx := context.Background()
	queue := w.svc.Queue
	w.svc.Queue = refusingQueue{queue}
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil || run == nil {
		t.Fatalf("start: %+v, %v", run, err)
	}
	if n := len(w.queuedBatches(t)); n != 0 {
		t.Fatalf("%d batch tasks queued by a queue that refused", n)
	}
	w.svc.Queue = queue
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(w.queuedBatches(t)); n != 1 { // 2 recipients, batches of 3
		t.Fatalf("%d batch tasks queued by the reconciler, want 1", n)
	}
	if r := w.drain(t, run.ID); r.Succeeded != 2 {
		t.Fatalf("run %+v", r)
	}
}

// A run whose last batch ended but which was never closed (the worker
// died between the two writes) is closed by the reconciler, and its end is
// logged with its counts once: not again when a batch of it is delivered
// again or the reconciler looks once more.
func TestReconcilerClosesARunLeftOpenAndLogsItsEndOnce(t *testing.T) {
	w := newWorld(t, 2)
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.drain(t, run.ID)
	if _, err := w.db.ExecContext(ctx, "UPDATE runs SET finished_at = NULL WHERE id = ?", run.ID); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	w.svc.Log = slog.New(slog.NewTextHandler(&logged, nil))
	for i := 0; i < 2; i++ {
		if err := w.svc.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); err != nil {
		t.Fatal(err)
	}
	if r, err := w.st.RunByID(ctx, run.ID); err != nil || r.FinishedAt == nil || r.Succeeded != 2 {
		t.Fatalf("run %+v, %v; want it finished with 2 sent", r, err)
	}
	want := "msg=\"run finished\" run_id=" + strconv.FormatInt(run.ID, 10)
	if n := strings.Count(logged.String(), want); n != 1 || !strings.Contains(logged.String(), "succeeded=2") {
		t.Errorf("%q logged %d times, want once with its counts:\n%s", want, n, logged.String())
	}
}

// latestRuns is the first page of the world's mailing's runs, newest first.
func latestRuns(ctx context.Context, w *world) ([]model.Run, error) {
	runs, _, err := w.st.RunsPage(ctx, w.mailing.ID, store.NewPage(1, 10))
	return runs, err
}

// A scheduled run whose worker died before it sent, resumed days later
// (several occurrences missed), does not mail its old occurrence and then
// the latest one in a row: it leaves its rest to the latest occurrence's
// run, and everyone gets one mail.
func TestARunResumedAfterItsNextOccurrenceLeavesTheRestToIt(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	start := time.Now().UTC().Add(-73 * time.Hour).Truncate(time.Minute)
	w.mailing.StartsAt, w.mailing.EndsAt, w.mailing.Repeat, w.mailing.NextRunAt = start, start.Add(10*24*time.Hour), model.RepeatDaily, &start
	if err := w.st.UpdateMailing(ctx, w.owner.ID, w.mailing, nil); err != nil {
		t.Fatal(err)
	}
	w.svc.Now = func() time.Time { return start.Add(time.Minute) }
	old, err := w.svc.StartScheduled(ctx, w.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	w.svc.Now = nil // three days later: the worker is back
	if r := w.drain(t, old.ID); r.Succeeded != 0 || r.Skipped != 3 {
		t.Errorf("the first occurrence's run, resumed three days later: %+v; want its recipients left to the latest occurrence", r)
	}
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	runs, err := latestRuns(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].DueAt == nil || !runs[0].DueAt.Equal(start.Add(72*time.Hour)) {
		t.Fatalf("runs %+v, want the latest occurrence's after the old one", runs)
	}
	w.drain(t, runs[0].ID)
	for _, c := range w.clients {
		if n := received(w.sink)[c.Email]; n != 1 {
			t.Errorf("%s got %d mails, want 1", c.Email, n)
		}
	}
}

// A repeating mailing switched off over its due time, or whose owner was
// blocked over it, does not make the missed send once switched on again,
// days late: it sends at its next occurrence. (After the workers' own
// downtime the latest missed one still runs: the test above.) A one-off
// mailing switched on inside its window still makes its one send.
func TestSwitchedOnAfterADueTimeSkipsTheMissedSend(t *testing.T) {
	w := newWorld(t, 2)
	ctx := context.Background()
	start := time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC) // a Monday
	w.mailing.StartsAt, w.mailing.EndsAt, w.mailing.Repeat, w.mailing.NextRunAt = start, start.AddDate(0, 3, 0), model.RepeatWeekly, &start
	if err := w.st.UpdateMailing(ctx, w.owner.ID, w.mailing, nil); err != nil {
		t.Fatal(err)
	}
	now := start.Add(time.Minute)
	w.svc.Now = func() time.Time { return now }
	first, err := w.svc.StartScheduled(ctx, w.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	w.drain(t, first.ID)
	next := func() time.Time {
		m, err := w.st.MailingByID(ctx, store.Everyone(0), w.mailing.ID)
		if err != nil || m.NextRunAt == nil {
			t.Fatalf("next send: %v, %v", m, err)
		}
		return *m.NextRunAt
	}
	latestIs := func(want int64, when string) {
		t.Helper()
		if err := w.svc.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if r, err := w.st.LatestRun(ctx, w.mailing.ID); err != nil || r.ID != want {
			t.Fatalf("%s: latest run %+v, %v; want run %d", when, r, err, want)
		}
	}

	// Switched off on Sunday, on again on Saturday.
	now = start.AddDate(0, 0, 6)
	if err := w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, true); err != nil {
		t.Fatal(err)
	}
	now = start.AddDate(0, 0, 7).Add(time.Minute)
	latestIs(first.ID, "due while switched off")
	now = start.AddDate(0, 0, 12).Add(12 * time.Hour)
	skipped, err := w.svc.SkipMissed(ctx, w.mailing.ID)
	if err != nil || skipped == nil || !skipped.First.Equal(start.AddDate(0, 0, 7)) || !skipped.Last.Equal(skipped.First) ||
		skipped.Next == nil || !skipped.Next.Equal(start.AddDate(0, 0, 14)) {
		t.Fatalf("skipped %+v, %v", skipped, err)
	}
	if err := w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, false); err != nil {
		t.Fatal(err)
	}
	latestIs(first.ID, "switched on after the due time")
	if got := next(); !got.Equal(start.AddDate(0, 0, 14)) {
		t.Fatalf("next send %v", got)
	}
	now = start.AddDate(0, 0, 14).Add(time.Minute)
	if err := w.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := w.st.LatestRun(ctx, w.mailing.ID)
	if err != nil || second.DueAt == nil || !second.DueAt.Equal(start.AddDate(0, 0, 14)) {
		t.Fatalf("the next occurrence's run: %+v, %v", second, err)
	}
	w.drain(t, second.ID)

	// The owner blocked over the next due time, then unblocked.
	if _, err := w.st.SetBlocked(ctx, 0, w.owner.ID, true); err != nil {
		t.Fatal(err)
	}
	now = start.AddDate(0, 0, 21).Add(time.Hour)
	latestIs(second.ID, "due while the owner was blocked")
	if err := w.svc.SkipMissedOf(ctx, w.owner.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.SetBlocked(ctx, 0, w.owner.ID, false); err != nil {
		t.Fatal(err)
	}
	latestIs(second.ID, "unblocked after the due time")
	if got := next(); !got.Equal(start.AddDate(0, 0, 28)) {
		t.Fatalf("next send after unblocking %v", got)
	}

	// Neither skips a send while the mailing could send: it is due now.
	now = start.AddDate(0, 0, 28).Add(time.Minute)
	if skipped, err := w.svc.SkipMissed(ctx, w.mailing.ID); err != nil || skipped != nil {
		t.Fatalf("skipped %v of a mailing switched on (%v)", skipped, err)
	}
	// Nor one that came due before it was switched off (waiting for a run
	// still sending, or for the workers): switched off and on again, it
	// still runs.
	if _, err := w.db.ExecContext(ctx, "UPDATE mailings SET disabled_at = ? WHERE id = ?", start.AddDate(0, 0, 28).Add(30*time.Second), w.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if skipped, err := w.svc.SkipMissed(ctx, w.mailing.ID); err != nil || skipped != nil {
		t.Fatalf("skipped %v, due before the mailing was switched off (%v)", skipped, err)
	}
	// But once another came due while it was off, that one is what would
	// run (only the latest missed occurrence runs): it is skipped, and
	// the one before it with it.
	now = start.AddDate(0, 0, 36)
	skipped, err = w.svc.SkipMissed(ctx, w.mailing.ID)
	if err != nil || skipped == nil || !skipped.First.Equal(start.AddDate(0, 0, 28)) || !skipped.Last.Equal(start.AddDate(0, 0, 35)) ||
		skipped.Next == nil || !skipped.Next.Equal(start.AddDate(0, 0, 42)) {
		t.Fatalf("a send due before it was switched off, and another while it was off: skipped %+v, %v", skipped, err)
	}
	if err := w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, false); err != nil {
		t.Fatal(err)
	}
	latestIs(second.ID, "switched on a week after a send due before it was switched off")
	if got := next(); !got.Equal(start.AddDate(0, 0, 42)) {
		t.Fatalf("next send %v", got)
	}
	// Nor the one send of a one-off mailing.
	once := start.AddDate(0, 0, 29)
	one := &model.Mailing{OwnerID: w.owner.ID, MessageID: w.mailing.MessageID, StartsAt: once, EndsAt: once.AddDate(0, 0, 7),
		Repeat: model.RepeatOnce, Status: model.StatusCreated, NextRunAt: &once}
	if err := w.st.CreateMailing(ctx, one, []int64{w.clients[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), one.ID, w.owner.ID, true); err != nil {
		t.Fatal(err)
	}
	now = once.Add(time.Hour)
	if skipped, err := w.svc.SkipMissed(ctx, one.ID); err != nil || skipped != nil {
		t.Fatalf("a one-off mailing's send skipped: %v (%v)", skipped, err)
	}
}
