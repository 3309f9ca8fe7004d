package task

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypePurgeTokens deletes mailed tokens that can no longer be used.
const TypePurgeTokens = "maintenance:purge-tokens"

// tokenGrace keeps expired tokens a day so that "this link expired" can
// still be told apart from "this link never existed".
const tokenGrace = 24 * time.Hour

// NewPurgeTokensTask builds the periodic token purge.
func NewPurgeTokensTask() *asynq.Task {
	return asynq.NewTask(TypePurgeTokens, nil, asynq.Queue(QueueDefault), asynq.MaxRetry(3))
}

// HandlePurgeTokens deletes tokens expired for more than a day. Running it
// twice is harmless.
func (h *Handler) HandlePurgeTokens(ctx context.Context, _ *asynq.Task) error {
	n, err := h.Store.PurgeTokens(ctx, time.Now().Add(-tokenGrace))
	if err != nil {
		return fmt.Errorf("purge tokens: %w", err)
	}
	h.Log.InfoContext(ctx, "tokens purged", "deleted", n)
	return nil
}

// Schedule registers the periodic tasks on the worker's scheduler.
func Schedule(s *asynq.Scheduler) error {
	if _, err := s.Register("@hourly", NewPurgeTokensTask(), asynq.Unique(time.Hour)); err != nil {
		return fmt.Errorf("schedule %s: %w", TypePurgeTokens, err)
	}
	// Every worker runs a scheduler; Unique keeps one reconcile a minute,
	// and the reconciler is safe to run twice anyway.
	if _, err := s.Register("@every 1m", NewReconcileTask(), asynq.Unique(50*time.Second)); err != nil {
		return fmt.Errorf("schedule %s: %w", TypeReconcile, err)
	}
	return nil
}
