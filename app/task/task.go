// Package task is the one place where Asynq tasks are named, built and
// handled: type names, payloads, New*Task constructors, handlers and
// Register. Payloads carry ids and small values, never recipient lists.
//
// It must not import app/web.
package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"

	"rassylka/app/mail"
	"rassylka/app/sending"
	"rassylka/app/store"
)

// Queues and their priorities for the worker.
const (
	QueueCritical = "critical" // transactional mail a person is waiting for
	QueueDefault  = "default"
)

// Queues is the worker's queue configuration.
var Queues = map[string]int{QueueCritical: 6, QueueDefault: 3}

// Mailer delivers one message; *mail.Sender is the real one.
type Mailer interface {
	Send(ctx context.Context, m mail.Message) (reply string, err error)
}

// Handler holds what the task handlers need.
type Handler struct {
	Mailer  Mailer
	Store   *store.Store
	Sending *sending.Service
	Log     *slog.Logger
}

// Register puts every handler on mux.
func (h *Handler) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeEmailDeliver, h.HandleEmailDeliver)
	mux.HandleFunc(TypePurgeTokens, h.HandlePurgeTokens)
	mux.HandleFunc(TypeMailingRun, h.HandleMailingRun)
	mux.HandleFunc(TypeMailingBatch, h.HandleMailingBatch)
	mux.HandleFunc(TypeReconcile, h.HandleReconcile)
}

func jsonPayload(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("marshal payload: %w", err)
	}
	return b, nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("%s: bad payload: %w: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}
