package task

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"rassylka/app/model"
	"rassylka/app/sending"
)

// Task types of the send pipeline.
const (
	TypeMailingRun   = "mailing:run"       // start a scheduled occurrence
	TypeMailingBatch = "mailing:batch"     // send one batch of a run
	TypeReconcile    = "mailing:reconcile" // make the queue agree with the database
)

// MailingRunPayload names a mailing and the occurrence planned.
type MailingRunPayload struct {
	MailingID int64 `json:"mailing_id"`
	DueUnix   int64 `json:"due"`
}

// MailingBatchPayload names one batch of a run.
type MailingBatchPayload struct {
	RunID int64 `json:"run_id"`
	Seq   int   `json:"seq"`
}

// NewMailingRunTask starts the mailing's occurrence due at due, processed
// at that time and de-duplicated by mailing and due time.
func NewMailingRunTask(p MailingRunPayload) (*asynq.Task, error) {
	b, err := jsonPayload(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeMailingRun, b,
		asynq.Queue(QueueDefault), asynq.MaxRetry(10), asynq.Timeout(5*time.Minute),
		asynq.ProcessAt(time.Unix(p.DueUnix, 0)),
		asynq.TaskID(runTaskID(p.MailingID, p.DueUnix)),
	), nil
}

func runTaskID(mailingID, dueUnix int64) string {
	return "mailing-run:" + strconv.FormatInt(mailingID, 10) + ":" + strconv.FormatInt(dueUnix, 10)
}

// NewMailingBatchTask sends one batch, de-duplicated by run, batch and
// generation (see sending.Queue).
func NewMailingBatchTask(p MailingBatchPayload, generation string) (*asynq.Task, error) {
	b, err := jsonPayload(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeMailingBatch, b,
		asynq.Queue(QueueDefault), asynq.MaxRetry(25), asynq.Timeout(time.Hour),
		asynq.TaskID(BatchTaskID(p.RunID, p.Seq, generation)),
	), nil
}

// BatchTaskID is the queue id of a batch task.
func BatchTaskID(runID int64, seq int, generation string) string {
	return "mailing-batch:" + strconv.FormatInt(runID, 10) + ":" + strconv.Itoa(seq) + ":" + generation
}

// NewReconcileTask is the periodic reconciler.
func NewReconcileTask() *asynq.Task {
	return asynq.NewTask(TypeReconcile, nil, asynq.Queue(QueueDefault), asynq.MaxRetry(0), asynq.Timeout(time.Minute))
}

// earlyStart is how early a planned start may come and still wait for its
// time.
const earlyStart = 10 * time.Second

// HandleMailingRun starts a planned occurrence. A stale plan (the mailing
// was edited, disabled or deleted since) does nothing. A start that comes a
// little early (Redis's clock and the worker's differ; Asynq keeps whole
// seconds) waits for its time, rather than for the reconciler's next
// minute.
func (h *Handler) HandleMailingRun(ctx context.Context, t *asynq.Task) error {
	var p MailingRunPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	_, err := h.Sending.StartScheduled(ctx, p.MailingID)
	if wait := time.Until(time.Unix(p.DueUnix, 0)); errors.Is(err, sending.ErrNotDue) && wait > 0 && wait <= earlyStart {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err = h.Sending.StartScheduled(ctx, p.MailingID)
	}
	switch {
	case err == nil, errors.Is(err, sending.ErrNotDue), errors.Is(err, sending.ErrDisabled),
		errors.Is(err, sending.ErrBlocked), errors.Is(err, sending.ErrFinished), errors.Is(err, sending.ErrRunActive), isNotFound(err):
		return nil
	}
	return fmt.Errorf("start run of mailing %d: %w", p.MailingID, err)
}

// HandleMailingBatch sends a batch; see sending.Service.ProcessBatch for why
// it is safe to run again.
func (h *Handler) HandleMailingBatch(ctx context.Context, t *asynq.Task) error {
	var p MailingBatchPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	if err := h.Sending.ProcessBatch(ctx, p.RunID, p.Seq); err != nil {
		return fmt.Errorf("batch %d of run %d: %w", p.Seq, p.RunID, err)
	}
	return nil
}

// HandleReconcile runs the reconciler.
func (h *Handler) HandleReconcile(ctx context.Context, _ *asynq.Task) error {
	return h.Sending.Reconcile(ctx)
}

// Queue is the task queue as the send pipeline and the web use it.
type Queue struct {
	Client *asynq.Client
	// Inspector, when set, lets the queue replace a batch task that was
	// archived (it failed every retry) and cancel planned runs.
	Inspector *asynq.Inspector
}

// EnqueueBatches enqueues a task per batch; a batch already queued (same
// task id) is left alone, unless its task was archived: then it is queued
// afresh, since the batch is still open.
func (q Queue) EnqueueBatches(ctx context.Context, batches []model.RunBatch, generation string) error {
	for _, b := range batches {
		t, err := NewMailingBatchTask(MailingBatchPayload{RunID: b.RunID, Seq: b.Seq}, generation)
		if err != nil {
			return err
		}
		_, err = q.Client.EnqueueContext(ctx, t)
		if errors.Is(err, asynq.ErrTaskIDConflict) && q.Inspector != nil {
			id := BatchTaskID(b.RunID, b.Seq, generation)
			if info, ierr := q.Inspector.GetTaskInfo(QueueDefault, id); ierr == nil && info.State == asynq.TaskStateArchived {
				if derr := q.Inspector.DeleteTask(QueueDefault, id); derr == nil {
					_, err = q.Client.EnqueueContext(ctx, t)
				}
			}
		}
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("enqueue batch %d of run %d: %w", b.Seq, b.RunID, err)
		}
	}
	return nil
}

// PlanRun enqueues the start of an occurrence at its due time.
func (q Queue) PlanRun(ctx context.Context, mailingID int64, due time.Time) error {
	t, err := NewMailingRunTask(MailingRunPayload{MailingID: mailingID, DueUnix: due.Unix()})
	if err != nil {
		return err
	}
	if _, err := q.Client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("plan run of mailing %d: %w", mailingID, err)
	}
	return nil
}

// CancelRun removes the planned start of an occurrence, if still waiting.
func (q Queue) CancelRun(_ context.Context, mailingID int64, due time.Time) error {
	if q.Inspector == nil {
		return nil // a stale plan does nothing when it comes due
	}
	err := q.Inspector.DeleteTask(QueueDefault, runTaskID(mailingID, due.Unix()))
	if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		return fmt.Errorf("cancel run of mailing %d: %w", mailingID, err)
	}
	return nil
}
