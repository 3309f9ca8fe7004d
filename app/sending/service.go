package sending

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // owners' zones on any host, as the web process has them

	rmail "rassylka/app/mail"
	"rassylka/app/metrics"
	"rassylka/app/model"
	"rassylka/app/stats"
	"rassylka/app/store"
)

// Reasons a run cannot start.
var (
	ErrDisabled   = errors.New("the mailing is disabled")
	ErrBlocked    = errors.New("the owner is blocked")
	ErrFinished   = errors.New("the mailing has finished")
	ErrRunActive  = errors.New("a run of the mailing is still sending")
	ErrNotDue     = errors.New("the occurrence is not due")
	ErrNoFailures = errors.New("the last run has no failures to retry")
	// ErrNoRest refuses "Send to the rest" when the last run reached
	// everyone it could, or those it left can no longer be mailed.
	ErrNoRest = errors.New("the last run left no one to send to")
	// ErrScheduledDue refuses "Send to the rest" while a scheduled send,
	// which mails everyone, is due.
	ErrScheduledDue = errors.New("a scheduled send is due")
	// ErrNoRecipients refuses a manual run of a mailing with no recipients
	// left (its clients deleted): it would only record an empty run.
	ErrNoRecipients = errors.New("the mailing has no recipients")
	// ErrRunSince refuses a run asked for from a page that showed an
	// earlier run as the latest (see Seen): one started since, by the same
	// form sent twice or from another tab.
	ErrRunSince = errors.New("a run of the mailing started since")
	// ErrJustSent refuses "Send now", asked for without saying which runs
	// were seen (see Seen), when the mailing's planned send started a
	// moment before (JustSent): the request, made as the mailing was
	// saved to start now, most likely meant that send, not a second one.
	ErrJustSent = errors.New("the planned send started a moment ago")
)

// JustSent is how recent a planned send makes "Send now" without Seen
// refused (ErrJustSent).
const JustSent = time.Minute

// Queue puts a run's work on the task queue; app/task implements it.
type Queue interface {
	// EnqueueBatches enqueues one task per batch, de-duplicated by run,
	// batch and generation, so enqueuing again is harmless. A new
	// generation enqueues a batch again even while an older task of it is
	// stuck in the queue (its worker died); the batch lock lets one run.
	EnqueueBatches(ctx context.Context, batches []model.RunBatch, generation string) error
	// PlanRun enqueues the start of the mailing's occurrence due at due,
	// de-duplicated by mailing and due time.
	PlanRun(ctx context.Context, mailingID int64, due time.Time) error
	// CancelRun removes a planned start that is no longer wanted (the
	// mailing was edited, disabled or deleted).
	CancelRun(ctx context.Context, mailingID int64, due time.Time) error
}

// Sender sends one message; *mail.Pool is the real one.
type Sender interface {
	Send(ctx context.Context, m rmail.Message) rmail.Result
}

// Service runs mailings.
type Service struct {
	Store   *store.Store
	Queue   Queue
	Sender  Sender // nil in the web process, which never sends
	Log     *slog.Logger
	BaseURL string
	Secret  string // signs unsubscribe links
	// Stats is told when a run changes an owner's figures (nil: no cache).
	Stats *stats.Service
	// Sends counts sends by outcome for the metrics (nil: not counted).
	Sends *metrics.Sends
	// BatchSize is how many recipients one batch task takes.
	BatchSize int
	// Chunk is how many attempts are claimed, sent and recorded together
	// (default: sixteen times Concurrency). It bounds what a crash can leave
	// with an unknown outcome, so it stays small.
	Chunk int
	// Concurrency is how many sends of a batch go at once.
	Concurrency int
	// HandOver is how long before its task's deadline a batch hands the
	// rest of its recipients to a new task (default DefaultHandOver).
	HandOver time.Duration
	// SalvageFor is how long a batch whose connection was lost mid-chunk
	// waits for the database to record what it sent (see salvage); 0: 30 s;
	// negative: it records nothing, as a worker that died.
	SalvageFor time.Duration
	// Stopping ends when the worker is told to stop (nil: never): batches
	// then stop claiming, record what they sent and hand the rest over.
	Stopping context.Context
	// RetryDelays are the waits before sending again after a temporary
	// failure (4xx, no connection); their number bounds the tries.
	RetryDelays []time.Duration
	Now         func() time.Time

	seen *int64 // see Seen
	// recorded, in tests, is what befalls the answer to a chunk's
	// statement on its way back (nil: nothing).
	recorded func(error) error
}

// Seen returns s for a run asked for by hand from a page that showed
// runID as the mailing's latest run (0: none): if another started since,
// the run is refused (ErrRunSince), so a form sent twice (a double click
// without JavaScript, a retried request) starts one run, not two, even
// when the first has ended meanwhile.
func (s *Service) Seen(runID int64) *Service {
	c := *s
	c.seen = &runID
	return &c
}

// Defaults of a Service.
const (
	DefaultBatchSize = 2000
	minChunk         = 8
	progressEvery    = time.Second
)

// DefaultRetryDelays are the waits between tries after a temporary failure.
var DefaultRetryDelays = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) location(ctx context.Context, st *store.Store, ownerID int64) (*time.Location, *model.User, error) {
	u, err := st.UserByID(ctx, ownerID)
	if err != nil {
		return nil, nil, err
	}
	return model.Location(u.TimeZone), u, nil
}

// StartScheduled starts the run of the mailing's occurrence that is due now
// (the latest one, if several were missed). Starting it twice, from any
// number of workers, makes one run.
func (s *Service) StartScheduled(ctx context.Context, mailingID int64) (*model.Run, error) {
	return s.start(ctx, mailingID, model.TriggerScheduled, nil, false)
}

// StartManual starts a run now ("Send now"), or with retryOf set, a run for
// the clients whose attempt in that run failed with a temporary or unknown
// error ("Retry failed").
func (s *Service) StartManual(ctx context.Context, mailingID int64, retryOf *int64) (*model.Run, error) {
	return s.start(ctx, mailingID, model.TriggerManual, retryOf, false)
}

// StartRest starts a run for the recipients the mailing's last run did
// not reach before it stopped (switched off, its owner blocked), and that
// may still be mailed ("Send to the rest"): those with no settled attempt
// since its full run (see store.RestToSend), which takes in those whose
// send failed for the time being.
func (s *Service) StartRest(ctx context.Context, mailingID int64) (*model.Run, error) {
	return s.start(ctx, mailingID, model.TriggerManual, nil, true)
}

func (s *Service) start(ctx context.Context, mailingID int64, trigger model.Trigger, retryOf *int64, rest bool) (*model.Run, error) {
	now := s.now()
	var run *model.Run
	var batches []model.RunBatch
	var ownerID int64
	var replaced *time.Time // the planned send a manual run takes the place of
	err := s.Store.InTx(ctx, func(tx *store.Store) error {
		m, err := tx.LockMailing(ctx, mailingID)
		if err != nil {
			return err
		}
		ownerID = m.OwnerID
		loc, owner, err := s.location(ctx, tx, m.OwnerID)
		if err != nil {
			return err
		}
		switch {
		case m.Disabled():
			return ErrDisabled
		case owner.Blocked():
			return ErrBlocked
		case m.Status == model.StatusFinished || !now.Before(m.EndsAt):
			return ErrFinished
		}
		r := &model.Run{MailingID: m.ID, Trigger: trigger, StartedAt: now, RetryOf: retryOf}
		var next *time.Time
		if trigger == model.TriggerScheduled {
			due, ok := LatestDue(m.StartsAt, m.EndsAt, m.Repeat, loc, now)
			after := due // the next occurrence is the first after this
			// The planned occurrence runs once it is due even when the
			// owner's time zone changed since it was planned: the zone's
			// occurrences moved, and the latest of them may lie before it
			// (waiting for the next would skip a day, or a month). It
			// stands for the new zone's occurrence of the same period,
			// which must not run again: the next is the first half a
			// period after it.
			if p := m.NextRunAt; p != nil && !p.After(now) && !p.Before(m.StartsAt) && (!ok || due.Before(*p)) {
				due, ok, after = *p, true, p.Add(halfPeriod(m.Repeat))
			}
			if !ok || m.NextRunAt == nil || due.Before(*m.NextRunAt) {
				return ErrNotDue
			}
			r.DueAt = &due
			if n, ok := NextAfter(m.StartsAt, m.EndsAt, m.Repeat, loc, after); ok {
				next = &n
			}
		} else if m.Repeat != model.RepeatOnce || retryOf != nil || rest {
			next = m.NextRunAt
		} else if m.NextRunAt != nil {
			// A one-off mailing sent by hand before its send: the run
			// takes that send's place, which would mail everyone again.
			replaced = m.NextRunAt
		}
		// One run of a mailing sends at a time: a manual run is refused, and
		// a due occurrence waits (next_run_at stays, so the reconciler
		// starts it when the run before it ends, if still in the window).
		if active, err := tx.ActiveRun(ctx, m.ID); err == nil {
			sameOccurrence := r.DueAt != nil && active.DueAt != nil && active.DueAt.Equal(*r.DueAt)
			if !sameOccurrence { // the same one is found again by CreateRun
				run = active
				return ErrRunActive
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if trigger == model.TriggerManual {
			latest, err := tx.LatestRun(ctx, m.ID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			switch {
			case err != nil: // no run yet
			case s.seen != nil && latest.ID != *s.seen:
				run = latest
				return ErrRunSince
			case s.seen == nil && retryOf == nil && !rest && latest.Trigger == model.TriggerScheduled && now.Sub(latest.StartedAt) < JustSent:
				run = latest
				return ErrJustSent
			}
		}
		if rest {
			// A scheduled send due now mails everyone: the rest would get
			// this mailing twice in a row.
			if m.NextRunAt != nil && !m.NextRunAt.After(now) && m.NextRunAt.Before(m.EndsAt) {
				return ErrScheduledDue
			}
			full, _, err := tx.RestToSend(ctx, m.ID)
			if errors.Is(err, store.ErrNotFound) {
				return ErrNoRest
			} else if err != nil {
				return err
			}
			r.RestOf = &full.ID
		}
		created, err := tx.CreateRun(ctx, r)
		if err != nil {
			return err
		}
		run = r
		if created {
			if batches, err = tx.PlanBatches(ctx, r, s.batchSize()); err != nil {
				return err
			}
			if retryOf != nil && r.Total == 0 {
				return ErrNoFailures
			}
			if rest && r.Total == 0 {
				return ErrNoRest
			}
			if trigger == model.TriggerManual && r.Total == 0 {
				return ErrNoRecipients
			}
		}
		return tx.SetNextRun(ctx, m.ID, next, true)
	})
	if err != nil {
		return run, err
	}
	s.Stats.Changed(ctx, ownerID)
	if len(batches) > 0 {
		s.Log.InfoContext(ctx, "run started", "run_id", run.ID, "mailing_id", mailingID, "trigger", string(trigger),
			"recipients", run.Total, "batches", len(batches))
		if err := s.Queue.EnqueueBatches(ctx, batches, "0"); err != nil {
			// The run has started: the reconciler enqueues the open batches
			// of unfinished runs within its minute.
			s.Log.WarnContext(ctx, "enqueue batches (the reconciler will)", "run_id", run.ID, "error", err.Error())
		}
	}
	if replaced != nil {
		s.Unplan(ctx, mailingID, replaced)
	}
	if err := s.planNext(ctx, mailingID); err != nil {
		s.Log.WarnContext(ctx, "plan next run", "mailing_id", mailingID, "error", err.Error())
	}
	return run, nil
}

// Skipped is what SkipMissed skipped: the sends of a repeating mailing due
// from First to Last (the same one, or several), and its next send (nil:
// none left in its window).
type Skipped struct {
	First, Last time.Time
	Next        *time.Time
}

// SkipMissed moves a repeating mailing's next send past now when the
// occurrence that would run now came due while the mailing could not send
// (switched off, its owner blocked), to be called before it can again:
// switched on days later, it sends at its next occurrence, not at once
// with one it missed. (Only the latest missed occurrence ever runs, see
// LatestDue: one that came due while it could send, the workers down or
// a run still sending, still runs if no other came due since.) It
// returns what it skipped (nil: nothing). A one-off mailing is left as it
// is: its one send is still to come.
func (s *Service) SkipMissed(ctx context.Context, mailingID int64) (*Skipped, error) {
	now := s.now()
	var skipped *Skipped
	err := s.Store.InTx(ctx, func(tx *store.Store) error {
		m, err := tx.LockMailing(ctx, mailingID)
		if err != nil {
			return err
		}
		loc, owner, err := s.location(ctx, tx, m.OwnerID)
		if err != nil {
			return err
		}
		if m.Repeat == model.RepeatOnce || m.Status == model.StatusFinished || m.NextRunAt == nil || m.NextRunAt.After(now) {
			return nil
		}
		// What would run now: the latest occurrence due, or the planned
		// one when none came due after it.
		due := *m.NextRunAt
		if latest, ok := LatestDue(m.StartsAt, m.EndsAt, m.Repeat, loc, now); ok && latest.After(due) {
			due = latest
		}
		// Missed while it could not send: due since it was switched off,
		// or its owner blocked.
		missed := func(since *time.Time) bool { return since != nil && !due.Before(*since) }
		if !missed(m.DisabledAt) && !missed(owner.BlockedAt) {
			return nil
		}
		skipped = &Skipped{First: *m.NextRunAt, Last: due}
		if n, ok := NextAfter(m.StartsAt, m.EndsAt, m.Repeat, loc, now); ok {
			skipped.Next = &n
		}
		return tx.SetNextRun(ctx, m.ID, skipped.Next, false)
	})
	if err != nil || skipped == nil {
		return nil, err
	}
	s.Unplan(ctx, mailingID, &skipped.First)
	if err := s.planNext(ctx, mailingID); err != nil {
		s.Log.WarnContext(ctx, "plan next run", "mailing_id", mailingID, "error", err.Error())
	}
	return skipped, nil
}

// SkipMissedOf is SkipMissed for each of the owner's repeating mailings
// due, to be called before the owner is unblocked.
func (s *Service) SkipMissedOf(ctx context.Context, ownerID int64) error {
	ids, err := s.Store.RepeatsDueOf(ctx, ownerID, s.now())
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := s.SkipMissed(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Plan enqueues the mailing's next scheduled occurrence (after a save or a
// run). The reconciler does it too, so a failure here is not fatal.
func (s *Service) Plan(ctx context.Context, mailingID int64) error { return s.planNext(ctx, mailingID) }

// Unplan cancels the planned start of the occurrence due at due (the
// mailing's former next run). A plan left behind does nothing when it
// comes due, so a failure is only logged.
func (s *Service) Unplan(ctx context.Context, mailingID int64, due *time.Time) {
	if due == nil {
		return
	}
	if err := s.Queue.CancelRun(ctx, mailingID, *due); err != nil {
		s.Log.WarnContext(ctx, "cancel planned run", "mailing_id", mailingID, "error", err.Error())
	}
}

func (s *Service) planNext(ctx context.Context, mailingID int64) error {
	m, err := s.Store.MailingByID(ctx, store.Everyone(0), mailingID)
	if err != nil {
		return err
	}
	if m.NextRunAt == nil || m.Disabled() || m.Status == model.StatusFinished {
		return nil
	}
	return s.Queue.PlanRun(ctx, m.ID, *m.NextRunAt)
}

func (s *Service) batchSize() int {
	if s.BatchSize > 0 {
		return s.BatchSize
	}
	return DefaultBatchSize
}

// Reconcile makes the queue agree with the database: it finishes mailings
// whose window closed, starts every due run (the latest occurrence only),
// and enqueues again every batch of an unfinished run (after a Redis wipe
// or a crash between commit and enqueue). Running it from several workers
// at once is harmless.
func (s *Service) Reconcile(ctx context.Context) error {
	// The first generation's task id: a batch whose task is still queued or
	// running is left alone; one whose task is gone (a Redis wipe) is queued.
	return s.reconcile(ctx, "0")
}

// Resume is Reconcile for a worker that just started: its batch tasks get a
// generation of their own, so they are queued even while tasks of a worker
// that died are still held in the queue.
func (s *Service) Resume(ctx context.Context) error {
	return s.reconcile(ctx, "start-"+strconv.FormatInt(time.Now().UnixNano(), 36))
}

func (s *Service) reconcile(ctx context.Context, gen string) error {
	now := s.now()
	owners, err := s.Store.FinishEnded(ctx, now)
	if err != nil {
		return err
	}
	s.Stats.Changed(ctx, owners...)
	due, err := s.Store.DueMailings(ctx, now, 1000)
	if err != nil {
		return err
	}
	for _, m := range due {
		_, err := s.StartScheduled(ctx, m.ID)
		switch {
		case err == nil, errors.Is(err, ErrNotDue), errors.Is(err, ErrDisabled), errors.Is(err, ErrBlocked),
			errors.Is(err, ErrFinished), errors.Is(err, ErrRunActive):
		default:
			s.Log.ErrorContext(ctx, "start scheduled run", "mailing_id", m.ID, "error", err.Error())
		}
	}
	// A run whose batches are all done but which was never closed (the
	// worker died between the two writes) is closed here.
	idle, err := s.Store.IdleRuns(ctx)
	if err != nil {
		return err
	}
	for _, id := range idle {
		finished, err := s.Store.RefreshRunCounts(ctx, id)
		if err != nil {
			return err
		}
		s.logFinished(ctx, s.Store, id, finished)
	}
	open, err := s.Store.OpenBatches(ctx)
	if err != nil {
		return err
	}
	if len(open) > 0 {
		if err := s.Queue.EnqueueBatches(ctx, open, gen); err != nil {
			return err
		}
	}
	// A batch whose worker died mid-chunk while Redis lived on keeps its
	// task "active" there until Asynq finds its lease expired and retries
	// it, two minutes or so later: the run stood still meanwhile, another
	// worker idle. Such a batch (no worker holds its lock, its claim left
	// standing) is queued again under a generation of that claim, once.
	orphans, err := s.Store.OrphanedBatches(ctx, orphanAfter)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		b := []model.RunBatch{{RunID: o.RunID, Seq: o.Seq}}
		if err := s.Queue.EnqueueBatches(ctx, b, "orphan-"+strconv.FormatInt(o.ClaimedAt.UnixMicro(), 36)); err != nil {
			return err
		}
		if s.now().Sub(o.ClaimedAt) < orphanAfter+90*time.Second { // said by the first reconcile after it (each minute)
			s.Log.WarnContext(ctx, "batch left mid-chunk by a worker that stopped: queued again", "run_id", o.RunID, "seq", o.Seq)
		}
	}
	return nil
}

// orphanAfter is how long a claim stands with no worker holding its batch
// before the reconciler takes the batch for orphaned.
const orphanAfter = 20 * time.Second

// ProcessBatch sends one batch of a run: each recipient of its range gets
// exactly one attempt, claimed before the send and completed after it. It
// can be called again for the same batch at any time (a retried or
// resumed task): recipients that already have an attempt are not mailed
// again, and claims whose outcome was lost are recorded as failures with
// unknown outcome.
func (s *Service) ProcessBatch(ctx context.Context, runID int64, seq int) error {
	if s.stopping() {
		// Taken while the worker stops: the next worker resumes the batch.
		return errors.New("the worker is stopping")
	}
	err := s.Store.LockBatch(ctx, runID, seq, func(locked *store.Store) error { return s.processBatch(ctx, locked, runID, seq) })
	switch {
	case errors.Is(err, store.ErrBatchBusy):
		return nil // another worker sends it; the reconciler comes back if it dies
	case errors.Is(err, errHandOver):
		// The lock is released: a task of its own sends the rest.
		s.Log.InfoContext(ctx, "batch handed over", "run_id", runID, "seq", seq, "stopping", s.stopping())
		gen := "handover-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		return s.Queue.EnqueueBatches(context.WithoutCancel(ctx), []model.RunBatch{{RunID: runID, Seq: seq}}, gen)
	}
	return err
}

// errHandOver stops a batch whose task is about to time out, or whose
// worker is stopping: what it sent is recorded, and a new task takes the
// rest of the batch.
var errHandOver = errors.New("handing the batch over")

// DefaultHandOver is how long before its task's deadline a batch stops
// claiming and hands the rest to a new task: more than a chunk takes
// unless many of its recipients wait for retries; one that outlasts it is
// stopped by the deadline, and records what it sent all the same.
const DefaultHandOver = 10 * time.Minute

func (s *Service) stopping() bool { return s.Stopping != nil && s.Stopping.Err() != nil }

func (s *Service) handOver() time.Duration {
	if s.HandOver > 0 {
		return s.HandOver
	}
	return DefaultHandOver
}

// processBatch runs the batch's statements on db, the session holding its
// lock, except those of the concurrent sends (sendOne), which use the pool.
func (s *Service) processBatch(ctx context.Context, db *store.Store, runID int64, seq int) error {
	run, err := db.RunByID(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the mailing was deleted
	}
	if err != nil {
		return err
	}
	b, err := db.Batch(ctx, runID, seq)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if b.DoneAt != nil || run.FinishedAt != nil {
		finished, err := db.CloseRunIfDone(ctx, runID)
		s.logFinished(ctx, db, runID, finished)
		return err
	}
	lost, err := db.RecoverInterrupted(ctx, b)
	if err != nil {
		return err
	}
	if lost > 0 {
		s.Log.WarnContext(ctx, "sends interrupted, outcome unknown: recorded as failures, not sent again",
			"run_id", runID, "seq", seq, "recipients", lost)
	}
	m, err := db.Mailing(ctx, run.MailingID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// However the batch ends (done, handed over, stopped, failed), what it
	// wrote since its last look shows in the statistics.
	defer s.Stats.Changed(context.WithoutCancel(ctx), m.OwnerID)
	msg, err := db.MessageByID(ctx, store.Everyone(0), m.MessageID)
	if err != nil {
		return err
	}
	owner, err := db.UserByID(ctx, m.OwnerID)
	if err != nil {
		return err
	}
	letter := &Letter{Message: &msg.Message, FromName: owner.SenderName, ReplyTo: owner.ReplyTo}

	// A scheduled run sends its occurrence until the next one is due: one
	// resumed after downtime, or still sending a whole period later, then
	// leaves the rest to the next occurrence's run (only the latest missed
	// occurrence runs), rather than mail them twice in a row. The next
	// occurrence is the one planned when the run started (the owner's time
	// zone may have moved the zone's occurrences since, not the plan).
	var supersededAt time.Time
	switch {
	case run.Trigger != model.TriggerScheduled || run.DueAt == nil || m.Repeat == model.RepeatOnce:
	case m.NextRunAt != nil && m.NextRunAt.After(*run.DueAt):
		supersededAt = *m.NextRunAt
	default:
		loc, _, err := s.location(ctx, db, m.OwnerID)
		if err != nil {
			return err
		}
		if next, ok := NextAfter(m.StartsAt, m.EndsAt, m.Repeat, loc, *run.DueAt); ok {
			supersededAt = next
		}
	}

	stmts, err := db.PrepareBatch(ctx, run, b)
	if err != nil {
		return err
	}
	defer stmts.Close()
	var unadded store.RunCounts // results not yet added to the run's counters
	sendCtx := ctx              // ends when the worker stops, too: no new send starts then
	if s.Stopping != nil {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.Stopping, cancel)()
	}
	var stopped bool // by the mailing (switched off, its owner blocked, its window closed)
	err = s.sendRange(sendCtx, db, stmts, run, b, m, letter, supersededAt, &unadded, &stopped)
	// What was sent is counted even when the batch stops early (shutdown,
	// error), and before the batch ends: the run's end recounts.
	if addErr := db.AddRunCounts(context.WithoutCancel(ctx), run.ID, &unadded); err == nil {
		err = addErr
	}
	if err != nil {
		// The mailing deleted meanwhile took its runs and attempts along:
		// the chunk's outcomes have nowhere to go (their write fails on the
		// missing mailing), and there is nothing left to send or retry.
		if _, rerr := db.RunByID(context.WithoutCancel(ctx), runID); errors.Is(rerr, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if _, err := db.FinishBatch(ctx, run, b, stopped); err != nil {
		return err
	}
	finished, err := db.CloseRunIfDone(ctx, runID)
	s.logFinished(ctx, db, runID, finished)
	return err
}

// logFinished logs the end of a run with its counts, when finished says
// this process closed it (whichever path did: the last batch, a batch
// delivered again, the reconciler).
func (s *Service) logFinished(ctx context.Context, db *store.Store, runID int64, finished bool) {
	if !finished {
		return
	}
	if r, err := db.RunByID(ctx, runID); err == nil {
		s.Log.InfoContext(ctx, "run finished", "run_id", runID, "mailing_id", r.MailingID, "total", r.Total,
			"succeeded", r.Succeeded, "failed", r.Failed, "skipped", r.Skipped)
	}
}

// sendRange claims, sends and records the batch's recipients a chunk at a
// time, and sends again those told to try later when they are due, until
// none is left, the window closes or the mailing is switched off (which
// set stopped).
// Recipients are read ahead several chunks at a time; each chunk's
// outcomes are written by the statement that claims the next chunk. The
// results it writes are tallied in unadded, which it adds to the run's
// counters (the progress bar) about once a second rather than with every
// chunk: every batch of the run updating the one run row with each chunk
// would make them queue on its lock. A crash loses the tally of the last
// second from the counters until the run's end recounts them.
func (s *Service) sendRange(ctx context.Context, db *store.Store, stmts *store.BatchStatements, run *model.Run, b *model.RunBatch, m *model.Mailing, msg *Letter, supersededAt time.Time, unadded *store.RunCounts, stopped *bool) error {
	cursor := b.FromID
	var ahead []int64 // read, not claimed yet
	more := true      // the source may have recipients after the cursor
	var sent []store.AttemptResult
	progress := false       // this task has sent something, or has recipients waiting for a try
	var lastCheck time.Time // zero: check before the first chunk
	// The batch's statements run to their end even when ctx ends (the
	// driver would abandon the lock's connection mid-statement, and with it
	// the outcomes of the chunk just sent); ctx is looked at between them.
	dbCtx := context.WithoutCancel(ctx)
	// What a send writes between tries goes on the lock's connection too:
	// a worker that lost the batch (that connection broke, and another
	// worker may have resumed the batch and recorded the attempt as it
	// was) must not mark it pending again and send. The senders take the
	// connection in turn: it serves one statement at a time.
	// The tally of what was recorded before goes to the run's counters
	// first. (The loop does not touch unadded while the chunk sends.)
	var writing sync.Mutex
	writeAttempt := func(r, prev store.AttemptResult) (int64, bool, error) {
		writing.Lock()
		defer writing.Unlock()
		if err := db.AddRunCounts(dbCtx, run.ID, unadded); err != nil {
			return 0, false, err
		}
		return db.WriteAttempt(dbCtx, run.ID, m.ID, r, prev)
	}
	// Recipients a server told to try later, or that found no server,
	// wait for their next try without holding up the others: the batch
	// goes on with its next chunks and sends them again when they are
	// due. While most of a chunk's sends fail for the time being (the
	// server itself refuses or cannot be reached), the batch holds: it
	// claims nothing new until they are sent, so an outage costs time,
	// not the run's recipients, and a server that cannot be reached is
	// asked by one of them at a time (waitList.due).
	var waits waitList
	holding := false
	claimed := false     // the batch's row holds a claim
	var held []int64     // its recipients, as the last record left it
	handingOver := false // the task nears its deadline: the waiting recipients' tries come first
	for {
		// Waiting counts: a batch waiting for a server that cannot be
		// reached, since its start, still hands over before its deadline
		// (trying those waiting once more) rather than be cut off by it.
		progress = progress || len(sent) > 0 || waits.len() > 0
		stop, err := s.stopSending(ctx, dbCtx, db, run, m, supersededAt, progress, unadded, &lastCheck)
		if errors.Is(err, errHandOver) && !s.stopping() && waits.len() > 0 {
			// A task near its deadline claims no one new, and tries the
			// recipients waiting before it hands the rest over: their
			// tries take minutes at most, well within the hand-over's
			// margin, and the next task would leave them as they are.
			handingOver, stop, err = true, false, nil
		}
		var next []int64
		var due []waiting
		if err == nil && !stop {
			if !(holding && waits.len() > 0) && !handingOver {
				if len(ahead) == 0 && more {
					limit := readAhead * s.chunk()
					ahead, err = stmts.Next(dbCtx, cursor, limit)
					more = len(ahead) == limit
					if len(ahead) > 0 {
						cursor = ahead[len(ahead)-1]
					}
				}
				n := min(s.chunk(), len(ahead))
				next, ahead = ahead[:n], ahead[n:]
			}
			if err == nil {
				// Handing over, each waiting recipient has its last try
				// now: one at a time, they would outlast the task.
				due = waits.due(s.now(), holding && !handingOver, s.lastDelay())
			}
		}
		// The waiting recipients due are claimed with the next chunk: a
		// worker that dies while one is tried again leaves its attempt
		// pending, and a resumed batch finds it through the claim even
		// when its client was deleted meanwhile (and so lost its id).
		// Claiming checks again that each may still be mailed: one who
		// unsubscribed, bounced or was deleted since keeps its failure.
		claim := next
		if len(due) > 0 {
			claim = make([]int64, 0, len(next)+len(due))
			claim = append(claim, next...)
			for _, w := range due {
				claim = append(claim, w.claim.ClientID)
			}
		}
		// What was sent is written even when ctx ended or a statement
		// failed meanwhile: a sent message must not be forgotten (left
		// claimed, it would be recorded as interrupted).
		var claims []store.Claim
		if len(sent) > 0 || len(claim) > 0 || claimed {
			written, c, rerr := s.record(dbCtx, stmts, sent, claim)
			unadded.Add(written)
			if rerr != nil {
				if store.LostConnection(rerr) && s.salvage(dbCtx, run, b, sent, held, claim, stmts.ClaimStamp()) {
					rerr = fmt.Errorf("%w (what the chunk sent was recorded on a new connection)", rerr)
				}
				if errors.Is(err, errHandOver) {
					err = nil // what was sent is not recorded: the task is retried, not handed over
				}
				return errors.Join(err, rerr)
			}
			claims, claimed, sent = c, len(c) > 0, nil
			held = held[:0]
			for _, c := range claims {
				held = append(held, c.ClientID)
			}
		}
		if err != nil {
			return err
		}
		claims, due = splitDue(claims, due)
		if stop || (len(claims) == 0 && len(due) == 0 && len(ahead) == 0 && !more && waits.len() == 0) {
			// Sent, or the rest skipped (window closed, switched off). A
			// recipient still waiting for a try keeps the failure its
			// attempt says. Those the next occurrence's run mails are
			// not the stopped run's to reach.
			*stopped = stop && !s.superseded(supersededAt)
			return nil
		}
		if handingOver && len(claims) == 0 && len(due) == 0 && waits.len() == 0 {
			return errHandOver
		}
		if len(claims) == 0 && len(due) == 0 {
			if (len(ahead) > 0 || more) && !handingOver && !(holding && waits.len() > 0) {
				continue // no one of that chunk was left to mail: the next one
			}
			waits.sleep(ctx, s.now(), progressEvery) // until one is due, or the next look at the mailing
			continue
		}
		var unsent []int64
		var deferred int
		var reached bool
		watch := s.watch(ctx, dbCtx, db, &writing, m.ID, claims)
		sent, unsent, deferred, reached = s.sendChunk(watch.ctx, m, msg, claims, due, !handingOver, writeAttempt, &waits, watch)
		if watch.end() {
			lastCheck = time.Time{} // the mailing stopped: the next look says how
		}
		// Those not sent go first in the next claim, unless the batch
		// stops (then they have no attempt: skipped, or read again when
		// it resumes). The window's end may have moved: it is read again
		// before the batch stops for it.
		if len(unsent) > 0 {
			ahead = append(unsent, ahead...)
		}
		holding = 2*deferred > len(claims)+len(due)
		if reached {
			waits.wake() // those waiting for the server: it answers
		}
	}
}

// salvage records what a chunk sent when the batch's connection was lost
// (PostgreSQL restarted, the connection cut) while it sent, or while the
// statement recording it ran: the batch's lock went with that session,
// and the task fails. Left so, the batch, resumed, would record the whole
// claim as "interrupted: outcome unknown", sent or not. Instead the
// batch's lock is taken again on a connection of its own, waiting a while
// for the database to come back, and if the claim on the batch's row is
// still the one this task made (no worker has resumed the batch
// meanwhile), the chunk's outcomes are written and the claim cleared: the
// resumed batch then sends those not sent yet, as usual.
//
// held is the claim the chunk sent; asked the recipients the lost
// statement was to claim next, and askedAt the stamp it claimed them
// with. A claim with that stamp tells that the statement was made and
// only its answer lost: the chunk is recorded, and the recipients it
// claimed were never sent to, so the claim is cleared (they are sent when
// the batch resumes, not recorded as interrupted). (Their ids alone would
// not tell: a batch resumed by another worker meanwhile claims the very
// recipients this one asked for, and may have sent them.)
//
// It reports whether it did either; otherwise the resumed batch records
// the claim as it always has.
func (s *Service) salvage(ctx context.Context, run *model.Run, b *model.RunBatch, sent []store.AttemptResult, held, asked []int64, askedAt time.Time) bool {
	if len(held) == 0 && len(asked) == 0 || s.SalvageFor < 0 {
		return false
	}
	want := slices.Sorted(slices.Values(held))
	deadline := time.Now().Add(s.salvageFor())
	for {
		var written store.RunCounts
		var made bool // the lost statement was made
		err := s.Store.LockBatch(ctx, run.ID, b.Seq, func(locked *store.Store) error {
			claim, stamp, err := locked.BatchClaim(ctx, run.ID, b.Seq)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			switch slices.Sort(claim); {
			case len(want) > 0 && slices.Equal(claim, want):
			case len(claim) > 0 && stamp != nil && stamp.Equal(askedAt):
				sent, made = nil, true
			default:
				return errClaimMoved
			}
			stmts, err := locked.PrepareBatch(ctx, run, b)
			if err != nil {
				return err
			}
			defer stmts.Close()
			if written, _, err = stmts.Record(ctx, sent, nil); err != nil {
				return err
			}
			// What was recorded before and not yet added (unadded) is left
			// to the run's recount at its end: an addition whose answer
			// was lost with the connection may have been made.
			return locked.AddRunCounts(ctx, run.ID, &written)
		})
		switch {
		case err == nil && made:
			s.Log.WarnContext(ctx, "batch's connection lost with the answer to what it recorded: the recipients it claimed next resume",
				"run_id", run.ID, "seq", b.Seq, "recorded", len(held), "claimed", len(asked))
			return true
		case err == nil:
			s.countSends(written)
			s.Log.WarnContext(ctx, "batch's connection lost mid-chunk: what it sent is recorded, the rest resumes",
				"run_id", run.ID, "seq", b.Seq, "sent", len(sent), "claimed", len(held))
			return true
		case errors.Is(err, errClaimMoved), !time.Now().Before(deadline):
			return false
		}
		// The database is not back yet, or the lost session still holds
		// the lock (a cut connection's backend lingers until the server
		// notices): tried again, unless the worker stops meanwhile. (A
		// batch resumed meanwhile is told by its claim.)
		select {
		case <-time.After(time.Second):
		case <-s.stoppingDone():
			return false
		}
	}
}

// stoppingDone is closed once the worker is told to stop (never, without
// Stopping).
func (s *Service) stoppingDone() <-chan struct{} {
	if s.Stopping == nil {
		return nil
	}
	return s.Stopping.Done()
}

// errClaimMoved: the batch's claim is no longer the one a task made.
var errClaimMoved = errors.New("the batch's claim moved")

// salvageFor is how long salvage waits for the database.
func (s *Service) salvageFor() time.Duration {
	if s.SalvageFor > 0 {
		return s.SalvageFor
	}
	return 30 * time.Second
}

// splitDue parts what a chunk's claim returned into the new recipients
// and the waiting ones due that it claimed again (still mailable, at the
// address they were tried at); the others of due are left with the
// failure their attempt says.
func splitDue(claims []store.Claim, due []waiting) ([]store.Claim, []waiting) {
	if len(due) == 0 {
		return claims, nil
	}
	again := make(map[int64]string, len(due))
	for _, c := range claims {
		again[c.ClientID] = c.Email
	}
	isDue := make(map[int64]bool, len(due))
	var retry []waiting
	for _, w := range due {
		isDue[w.claim.ClientID] = true
		if email, ok := again[w.claim.ClientID]; ok && email == w.claim.Email {
			retry = append(retry, w)
		}
	}
	fresh := claims[:0:0]
	for _, c := range claims {
		if !isDue[c.ClientID] {
			fresh = append(fresh, c)
		}
	}
	return fresh, retry
}

// lastDelay is the wait before the last of a recipient's tries, and
// between those that find no server past them.
func (s *Service) lastDelay() time.Duration {
	if len(s.RetryDelays) == 0 {
		return 0
	}
	return s.RetryDelays[len(s.RetryDelays)-1]
}

// waiting is a recipient whose send failed for the time being, waiting for
// its next try; its attempt says the failure meanwhile.
type waiting struct {
	claim       store.Claim
	tries       int                 // made so far
	deferrals   int                 // of them, those the server answered "try later"
	unreachable bool                // the last one could not open a connection
	written     store.AttemptResult // the attempt as written (with its ID)
	due         time.Time
}

// waitList holds a batch's waiting recipients; its senders add to it.
type waitList struct {
	mu    sync.Mutex
	items []waiting
}

func (l *waitList) add(w waiting) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, w)
}

func (l *waitList) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.items)
}

// due takes the recipients whose next try is due at now. With probe (the
// batch holds), when each of them last found no server, it takes one
// only, and the others wait again, for wait or until wake: a server that
// cannot be reached is asked once, not once per recipient (with each try
// taking a connection's slot, up to the dial's timeout).
func (l *waitList) due(now time.Time, probe bool, wait time.Duration) []waiting {
	l.mu.Lock()
	defer l.mu.Unlock()
	var due []waiting
	kept := l.items[:0]
	for _, w := range l.items {
		if w.due.After(now) {
			kept = append(kept, w)
		} else {
			due = append(due, w)
		}
	}
	if probe && len(due) > 1 && !slices.ContainsFunc(due, func(w waiting) bool { return !w.unreachable }) {
		for _, w := range due[1:] {
			w.due = now.Add(wait)
			kept = append(kept, w)
		}
		due = due[:1]
	}
	l.items = kept
	return due
}

// wake makes due at once the recipients waiting for a server that could
// not be reached: it answers again.
func (l *waitList) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.items {
		if l.items[i].unreachable {
			l.items[i].due = time.Time{}
		}
	}
}

// sleep waits until the first recipient is due, at most max, or ctx ends.
func (l *waitList) sleep(ctx context.Context, now time.Time, max time.Duration) {
	l.mu.Lock()
	d := max
	for _, w := range l.items {
		d = min(d, w.due.Sub(now))
	}
	l.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// record writes the outcomes of a chunk and claims the next (none: the
// claim is cleared), and counts the sends for the metrics.
func (s *Service) record(ctx context.Context, stmts *store.BatchStatements, sent []store.AttemptResult, next []int64) (store.RunCounts, []store.Claim, error) {
	written, claims, err := stmts.Record(ctx, sent, next)
	if s.recorded != nil {
		err = s.recorded(err)
	}
	if err != nil {
		return written, nil, err
	}
	s.countSends(written)
	return written, claims, nil
}

// countSends tells the sends metric of the attempts written.
func (s *Service) countSends(written store.RunCounts) {
	s.Sends.Add(string(model.AttemptSuccess), written.Succeeded)
	s.Sends.Add(string(model.AttemptFailure), written.Failed-written.Bounced)
	s.Sends.Add("bounce", written.Bounced)
}

// readAhead is how many chunks of recipients a batch reads at a time.
const readAhead = 8

// stopSending reports whether the batch must stop claiming: the worker is
// stopping or the task is about to time out (errHandOver: a new task takes
// the rest), the task's context ended, the next occurrence of a scheduled
// run's mailing is due (supersededAt, zero: none), the window closed (its
// end read again first: the owner may have moved it), or (looked up about once a
// second, when the tally is added to the run's counters) the mailing was
// disabled or its owner blocked (the rest is skipped).
func (s *Service) stopSending(ctx, dbCtx context.Context, db *store.Store, run *model.Run, m *model.Mailing, supersededAt time.Time, progress bool, unadded *store.RunCounts, lastCheck *time.Time) (bool, error) {
	err := ctx.Err() // before Stopping, which ends first when it ends ctx
	if s.stopping() {
		return true, errHandOver
	}
	if err != nil {
		return true, err // the task's own end: it comes back and resumes here
	}
	if s.superseded(supersededAt) {
		return true, nil // the next occurrence is due: its run mails the rest
	}
	// The window's end is read again before the batch stops for it: the
	// owner may have moved it since the batch read the mailing.
	if s.now().Before(m.EndsAt) {
		// A batch that has sent something hands over before its task's
		// deadline (one that has not would only hand over again).
		if deadline, ok := ctx.Deadline(); ok && progress && time.Until(deadline) < s.handOver() {
			return true, errHandOver
		}
		if time.Since(*lastCheck) <= progressEvery {
			return false, nil
		}
	}
	if err := db.AddRunCounts(dbCtx, run.ID, unadded); err != nil {
		return false, err
	}
	endsAt, ok, err := db.SendableUntil(dbCtx, m.ID)
	if err != nil || !ok {
		return true, err
	}
	m.EndsAt = endsAt // no send is under way: the next ones try again until then
	if !s.now().Before(endsAt) {
		return true, nil
	}
	if !lastCheck.IsZero() {
		s.Stats.Changed(dbCtx, m.OwnerID) // the figures moved since the last look
	}
	*lastCheck = time.Now()
	return false, nil
}

// superseded reports whether a run's next occurrence, due at (zero: none
// to wait for), has come: the run stops, and that occurrence's run mails
// the rest.
func (s *Service) superseded(at time.Time) bool { return !at.IsZero() && !s.now().Before(at) }

func (s *Service) chunk() int {
	if s.Chunk > 0 {
		return s.Chunk
	}
	return max(16*s.Concurrency, minChunk)
}

// sendChunk sends to the claimed recipients and the waiting ones now due
// at once (bounded by Concurrency) and returns the outcomes it has; a
// recipient whose send fails for the time being joins waits (see
// sendOne). deferred counts the sends that failed for the time being;
// reached tells whether the server answered any. A claim not yet sent
// when ctx ends or the window closes gets no outcome (unsent: the batch
// claims it again, or stops).
func (s *Service) sendChunk(ctx context.Context, m *model.Mailing, msg *Letter, claims []store.Claim, due []waiting, outlast bool, write attemptWriter, waits *waitList, watch *chunkWatch) (done []store.AttemptResult, unsent []int64, deferred int, reached bool) {
	// Concurrency senders take the work in turn: a goroutine per claim
	// would grow a new stack for every message.
	n := len(claims) + len(due)
	results := make([]sendResult, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(max(1, s.Concurrency), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				var w *waiting
				var c store.Claim
				if i < len(claims) {
					c = claims[i]
				} else {
					w = &due[i-len(claims)]
					c = w.claim
				}
				if ctx.Err() != nil || !s.now().Before(m.EndsAt) || w == nil && watch.gone(c.ClientID) {
					// Not sent (the worker stops, or the window closed
					// while the chunk sent: a slow server would otherwise
					// take its sends past the end): a claim is claimed
					// again, or skipped if the batch stops; a waiting
					// recipient waits on (if the end moved), or keeps the
					// failure its attempt says when the batch stops. A
					// claim that may no longer be mailed (see watch) is
					// left out by the next claim.
					if w != nil && ctx.Err() == nil {
						waits.add(*w)
					}
					results[i] = sendResult{unsent: w == nil, left: w != nil}
					continue
				}
				if w != nil {
					results[i] = s.sendOne(ctx, m, msg, c, w, outlast, write, waits)
					continue
				}
				sctx, end := watch.sendContext(ctx, c.ClientID)
				results[i] = s.sendOne(sctx, m, msg, c, nil, outlast, write, waits)
				end()
			}
		}()
	}
	wg.Wait()
	done = make([]store.AttemptResult, 0, n)
	for i, r := range results {
		if r.deferred {
			deferred++
		}
		reached = reached || r.reached
		if r.unsent {
			unsent = append(unsent, claims[i].ClientID)
		}
		if !r.unsent && !r.parked && !r.left {
			done = append(done, r.AttemptResult)
		}
	}
	return done, unsent, deferred, reached
}

// chunkWatch looks at the mailing and at the chunk's recipients while the
// chunk sends (see watch).
type chunkWatch struct {
	ctx     context.Context // the chunk's sends: ended when the mailing stops
	cancel  context.CancelFunc
	stopped atomic.Bool // the mailing stopped (ctx ended for it)
	quit    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	left    map[int64]bool               // claims no longer to be mailed
	sends   map[int64]context.CancelFunc // the claims' sends under way, by client
}

// sendContext is the context of the send to a claimed client: ended when
// the client may no longer be mailed, so that a send still waiting for
// its turn (MAIL_RATE, a connection of the pool) is not made. end forgets
// it once the send is over.
func (w *chunkWatch) sendContext(ctx context.Context, clientID int64) (sctx context.Context, end func()) {
	sctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	if w.sends == nil {
		w.sends = map[int64]context.CancelFunc{}
	}
	w.sends[clientID] = cancel
	if w.left[clientID] {
		cancel() // found gone since the sender looked (see gone)
	}
	w.mu.Unlock()
	return sctx, func() {
		w.mu.Lock()
		delete(w.sends, clientID)
		w.mu.Unlock()
		cancel()
	}
}

// watch looks, about once a second while a chunk sends, at whether its
// mailing may still send and its recipients may still be mailed. A chunk
// at full pace sends in milliseconds and is never looked at; one that
// takes longer (a MAIL_RATE, a slow server: 64 sends at 2 a second take
// half a minute) would otherwise send on after its mailing was switched
// off or deleted, or its owner blocked (the chunk's sends not yet made are
// then left unsent: the batch stops, and they are skipped), and mail a
// recipient who unsubscribed, bounced or was deleted meanwhile (the next
// claim leaves such a recipient out), or at an address its owner has
// corrected since (the next claim takes the new one). The looks take the
// batch's connection in turn with the sends' writes. A look that finds
// the connection lost lets the chunk go on: whoever resumes the batch
// records its claim as interrupted and never sends it, and what the chunk
// sends is recorded on a new connection if it can be (see salvage);
// stopped, the recipients it had not reached would be recorded as
// interrupted too, unmailed, whenever that cannot be.
func (s *Service) watch(ctx, dbCtx context.Context, db *store.Store, writing *sync.Mutex, mailingID int64, claims []store.Claim) *chunkWatch {
	w := &chunkWatch{quit: make(chan struct{}), done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(ctx)
	go func() {
		defer close(w.done)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-w.quit:
				return
			case <-w.ctx.Done():
				return
			case <-t.C:
			}
			writing.Lock()
			endsAt, ok, err := db.SendableUntil(dbCtx, mailingID)
			var gone []int64
			if err == nil && ok && len(claims) > 0 {
				gone, err = db.Unmailable(dbCtx, claims)
			}
			writing.Unlock()
			if err != nil {
				continue // the chunk's own statements will meet the trouble
			}
			if !ok || !s.now().Before(endsAt) {
				w.stopped.Store(true)
				w.cancel()
				return
			}
			if len(gone) > 0 {
				// Under the lock the sends register under: a send is
				// either registered by now (and ended here) or finds its
				// recipient gone when it registers.
				w.mu.Lock()
				w.left = make(map[int64]bool, len(gone))
				for _, id := range gone {
					w.left[id] = true
					if cancel := w.sends[id]; cancel != nil {
						cancel() // waiting for its turn: not sent
					}
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// gone reports whether a claimed recipient may no longer be mailed.
func (w *chunkWatch) gone(clientID int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.left[clientID]
}

// end stops the watch once the chunk has sent, and reports whether the
// mailing stopped meanwhile.
func (w *chunkWatch) end() bool {
	close(w.quit)
	<-w.done
	w.cancel()
	return w.stopped.Load()
}

type sendResult struct {
	store.AttemptResult
	unsent   bool // never sent: ctx ended before the first try reached the server
	parked   bool // waiting for its next try (in the batch's waits)
	left     bool // a waiting recipient not tried again: its attempt stays as written
	deferred bool // its try failed for the time being
	reached  bool // the server answered
}

// attemptWriter writes a recipient's attempt between tries (see
// store.WriteAttempt) for the batch sending to it.
type attemptWriter func(r, prev store.AttemptResult) (id int64, written bool, err error)

// sendOne tries one recipient, claimed or waiting (w), once, and returns
// the outcome. One that failed for the time being is added to waits for
// its next try, while the window is open, instead: its attempt says the
// failure meanwhile. A server that answered "try later" is asked again
// at the retry delays, at most as many times as they are, as is a send
// whose connection broke; a server to which no connection can be opened
// is no fault of the recipient's, and with outlast it is waited for past
// them, at the last delay, for as long as the window is open: an outage
// (or a wrong SMTP password) costs time, not the run's recipients. Not
// when the batch hands over: its task is about to end.
func (s *Service) sendOne(ctx context.Context, m *model.Mailing, msg *Letter, c store.Claim, w *waiting, outlast bool, write attemptWriter, waits *waitList) sendResult {
	message := s.Compose(m, msg, c)
	var written store.AttemptResult // what was written of the attempt between tries (ID 0: nothing)
	try, deferrals := 1, 0
	if w != nil {
		// Pending again while the next try sends, so a crash then leaves
		// it unknown; not when someone else recorded it meanwhile.
		try, deferrals = w.tries+1, w.deferrals
		pending := w.written
		pending.Status, pending.At = model.AttemptPending, s.now()
		if _, ok, err := write(pending, w.written); err != nil || !ok {
			return sendResult{left: true}
		}
		written = pending
	}
	res := s.Sender.Send(ctx, message)
	if res.Class == rmail.Unreachable && ctx.Err() != nil {
		// Shutting down before talking to the server: nothing was sent.
		if w == nil {
			return sendResult{unsent: true}
		}
		return sendResult{AttemptResult: w.written}
	}
	out := sendResult{AttemptResult: store.AttemptResult{ID: written.ID, ClientID: c.ClientID, Email: c.Email,
		Code: res.Code, Response: res.Reply, Tries: try, At: s.now()}, reached: res.Class != rmail.Unreachable}
	switch res.Class {
	case rmail.Delivered:
		out.Status = model.AttemptSuccess
		return out
	case rmail.NoSuchUser:
		out.Status, out.Bounced = model.AttemptFailure, true
		return out
	case rmail.Permanent, rmail.Unknown:
		out.Status = model.AttemptFailure
		return out
	}
	out.Status, out.deferred = model.AttemptFailure, true
	if ctx.Err() != nil || len(s.RetryDelays) == 0 {
		return out
	}
	n := try - deferrals // the tries that found no server
	if res.Class == rmail.Temporary {
		deferrals++
		n = deferrals // the server's "try later"s
	}
	if n > len(s.RetryDelays) && !(outlast && res.NoServer) {
		return out
	}
	delay := s.RetryDelays[min(n, len(s.RetryDelays))-1]
	if !s.now().Add(delay).Before(m.EndsAt) {
		return out
	}
	// Between tries the attempt says what happened (not delivered), so a
	// crash meanwhile leaves the truth; it is pending again while the next
	// try sends, so a crash then leaves it unknown. Each write changes only
	// what this send wrote before: when another worker has recorded the
	// attempt meanwhile, this one stops trying.
	id, ok, err := write(out.AttemptResult, written)
	if err != nil || !ok {
		return out // the chunk's write records it, unless someone did
	}
	out.ID = id
	waits.add(waiting{claim: c, tries: try, deferrals: deferrals, unreachable: res.NoServer,
		written: out.AttemptResult, due: s.now().Add(delay)})
	return sendResult{parked: true, deferred: true}
}

// Letter is what a batch sends: the mailing's message, the name it goes
// from and where its owner's clients reply (their account's sender name
// and reply address; "": MAIL_FROM's name, no Reply-To).
type Letter struct {
	*model.Message
	FromName, ReplyTo string
}

// Compose builds one recipient's mail: {{name}} and {{email}} filled in, a
// visible unsubscribe link, the RFC 8058 one-click headers, and the
// owner's sender name and reply address.
func (s *Service) Compose(m *model.Mailing, msg *Letter, c store.Claim) rmail.Message {
	name := c.FullName
	link := s.BaseURL + "/u/" + rmail.UnsubscribeToken(s.Secret, c.ClientID, m.OwnerID, c.Email)
	body := rmail.WithFooter(rmail.Personalize(msg.Body, name, c.Email), link)
	return rmail.Message{
		To:       mail.Address{Name: name, Address: c.Email},
		Subject:  rmail.Personalize(msg.Subject, rmail.OneLine(name), c.Email), // a name must not break the subject line
		Text:     body,
		FromName: msg.FromName,
		ReplyTo:  msg.ReplyTo,
		Headers: map[string]string{
			"List-Unsubscribe":      "<" + link + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
	}
}
