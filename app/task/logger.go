package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"
)

// Logger adapts slog to Asynq's logger interface.
func Logger(l *slog.Logger) asynq.Logger { return asynqLogger{l.With("component", "asynq")} }

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }

// ErrorHandler logs each failure of a task with its type and error: Asynq
// itself says nothing above debug of a task it will retry, and only the
// id of one it gives up on, so a mail server that is down left the log
// silent while account mail waited. A failure that will be retried is a
// warning, the last one an error. The payload is never logged (account
// mail carries sign-in links).
func ErrorHandler(l *slog.Logger) asynq.ErrorHandler {
	return asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
		id, _ := asynq.GetTaskID(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		level, msg := slog.LevelWarn, "task failed, will retry"
		if retried >= maxRetry || errors.Is(err, asynq.SkipRetry) {
			level, msg = slog.LevelError, "task failed, given up"
		}
		l.Log(ctx, level, msg, "type", t.Type(), "task_id", id, "retried", retried, "max_retry", maxRetry, "error", err.Error())
	})
}
