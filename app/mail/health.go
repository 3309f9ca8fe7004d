package mail

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Health tells, through Redis, whether the workers can reach the mail
// server: a pool that fails to open a connection (refused, no answer, TLS,
// a refused sign-in) reports the trouble, and a message delivered by any
// worker ends it. The web process reads it to say on a sending run's progress why
// it slowed down. Writes are few: a trouble is written again at most every
// few seconds, and its end at most as often.
type Health struct {
	rdb redis.UniversalClient

	down    atomic.Bool  // this process reported a trouble not ended since
	look    atomic.Int64 // when (Unix ns) a delivery next ends a trouble another worker reported
	mu      sync.Mutex
	written time.Time // when it last wrote one
	// unended is when ending the trouble last failed (Redis failing): the
	// next try waits a few seconds, not for the next message.
	unended time.Time

	log *slog.Logger
	// out is when this process first failed to reach the server since it
	// last delivered (zero: it reaches it), for the log: one line when an
	// outage begins and one when it ends, whatever Redis does.
	out time.Time
}

// Trouble is the mail server's state as the workers last reported it.
type Trouble struct {
	Since  time.Time // the first failure reported
	Reason string    // the last one
}

const (
	healthKey = "mail:trouble"
	// troubleKept is how long a trouble is told after its last report:
	// a worker stopped while the server was down does not leave it forever.
	troubleKept    = 5 * time.Minute
	troubleRewrite = 5 * time.Second
)

// NewHealth reports to, and reads from, rdb.
func NewHealth(rdb redis.UniversalClient) *Health { return &Health{rdb: rdb} }

// LogTo logs to l when this process can no longer reach the mail server
// (a warning, with the reason) and when it delivers again.
func (h *Health) LogTo(l *slog.Logger) *Health {
	h.log = l
	return h
}

// failed reports that a connection could not be opened. Errors of Redis
// are ignored: the state is only told, never relied upon.
func (h *Health) failed(ctx context.Context, reason string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.out.IsZero() {
		h.out = time.Now()
		if h.log != nil {
			h.log.WarnContext(ctx, "mail server takes no mail", "reason", reason)
		}
	}
	if h.down.Load() && time.Since(h.written) < troubleRewrite {
		return
	}
	h.down.Store(true)
	h.written, h.unended = time.Now(), time.Time{}
	pipe := h.rdb.TxPipeline()
	pipe.HSetNX(ctx, healthKey, "since", time.Now().UTC().Format(time.RFC3339Nano))
	pipe.HSet(ctx, healthKey, "reason", reason)
	pipe.Expire(ctx, healthKey, troubleKept)
	_, _ = pipe.Exec(ctx)
}

// delivered reports a message the server took: the trouble is over,
// whichever worker reported it. One this process reported is ended at
// once; any other with a delivery every few seconds, so that most sends
// ask neither the lock nor Redis.
func (h *Health) delivered(ctx context.Context) {
	if h == nil {
		return
	}
	now := time.Now()
	if !h.down.Load() && now.UnixNano() < h.look.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.out.IsZero() {
		if h.log != nil {
			h.log.InfoContext(ctx, "mail server reachable again", "unreachable_for", now.Sub(h.out).Round(time.Second).String())
		}
		h.out = time.Time{}
	}
	ownNow := h.down.Load() && now.Sub(h.unended) >= troubleRewrite
	if !ownNow && now.UnixNano() < h.look.Load() {
		return
	}
	h.look.Store(now.Add(troubleRewrite).UnixNano())
	if h.rdb.Del(ctx, healthKey).Err() != nil {
		h.unended = now // Redis failing: not again with the next message
		return
	}
	h.down.Store(false)
}

// Trouble returns the trouble reported, if any.
func (h *Health) Trouble(ctx context.Context) (Trouble, bool, error) {
	v, err := h.rdb.HGetAll(ctx, healthKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Trouble{}, false, err
	}
	since, err := time.Parse(time.RFC3339Nano, v["since"])
	if err != nil || v["reason"] == "" {
		return Trouble{}, false, nil
	}
	return Trouble{Since: since, Reason: v["reason"]}, true, nil
}
