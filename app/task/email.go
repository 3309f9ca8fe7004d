package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"rassylka/app/mail"
)

// TypeEmailDeliver sends one transactional email (confirmation, reset…).
const TypeEmailDeliver = "email:deliver"

// EmailDeliverPayload is one transactional email.
type EmailDeliverPayload struct {
	To      string `json:"to"`
	ToName  string `json:"to_name,omitempty"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	// A test of a message goes as its mailings' mail: from its owner's
	// sender name, with their reply address.
	FromName string `json:"from_name,omitempty"`
	ReplyTo  string `json:"reply_to,omitempty"`
}

// NewEmailDeliverTask builds an email:deliver task on the critical queue,
// tried again for about a day while the mail server refuses it (at most
// emailRetryCap apart, see RetryDelay). A delivered task is deleted at once
// (no retention): its text may hold a sign-in link.
func NewEmailDeliverTask(p EmailDeliverPayload, opts ...asynq.Option) (*asynq.Task, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", TypeEmailDeliver, err)
	}
	opts = append([]asynq.Option{
		asynq.Queue(QueueCritical),
		asynq.MaxRetry(emailMaxRetry),
		asynq.Timeout(2 * time.Minute),
	}, opts...)
	return asynq.NewTask(TypeEmailDeliver, b, opts...), nil
}

// Account mail (a confirmation or reset link, valid for hours) is tried
// again at most five minutes apart, for about a day: Asynq's own backoff
// grows as the fourth power of the tries, so after an outage of an hour
// the next try came hours later, the link in it expired by then.
const (
	emailRetryCap = 5 * time.Minute
	emailMaxRetry = 300
)

// A batch fails when the database or Redis is out of reach, or the worker
// stops. It is tried again at most a minute apart, as often as the
// reconciler looks, so that sending resumes within a minute of the outage's
// end: at Asynq's backoff a batch that had failed ten times waited almost
// three hours, and the reconciler leaves a task that waits to retry alone.
// After its last try the reconciler queues it again (see Queue.EnqueueBatches).
const batchRetryCap = time.Minute

// RetryDelay is how long a failed task waits before its next try: Asynq's
// backoff, capped for account mail (emailRetryCap) and for batches
// (batchRetryCap).
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	d := asynq.DefaultRetryDelayFunc(n, err, t)
	switch t.Type() {
	case TypeEmailDeliver:
		return min(d, emailRetryCap)
	case TypeMailingBatch:
		if errors.Is(err, asynq.ErrLeaseExpired) {
			// Its worker stopped (killed, or cut off from Redis): the
			// batch's lock keeps a worker still alive from writing, so it
			// is taken up again at once, not after a backoff.
			return time.Second
		}
		return min(d, batchRetryCap)
	}
	return d
}

func (p EmailDeliverPayload) validate() error {
	if _, err := netmail.ParseAddress(p.To); err != nil {
		return fmt.Errorf("%s: bad recipient %q: %w", TypeEmailDeliver, p.To, err)
	}
	if strings.TrimSpace(p.Subject) == "" || strings.ContainsAny(p.Subject, "\r\n") {
		return fmt.Errorf("%s: subject must be one non-empty line", TypeEmailDeliver)
	}
	return nil
}

// HandleEmailDeliver sends the email. A temporary failure (server down, 4xx,
// timeout) is returned so that Asynq retries it with backoff; a permanent
// refusal (5xx) or a malformed payload is not retried.
func (h *Handler) HandleEmailDeliver(ctx context.Context, t *asynq.Task) error {
	var p EmailDeliverPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	reply, err := h.Mailer.Send(ctx, mail.Message{
		To:       netmail.Address{Name: p.ToName, Address: p.To},
		Subject:  p.Subject,
		Text:     p.Text,
		FromName: p.FromName,
		ReplyTo:  p.ReplyTo,
	})
	if mail.IsPermanent(err) {
		// The server refused the address or the message for good (5xx).
		return fmt.Errorf("deliver email: %w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("deliver email: %w", err)
	}
	h.Log.InfoContext(ctx, "email delivered", "to", p.To, "subject", p.Subject, "reply", reply)
	return nil
}
