package mail

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// calls counts the commands and pipelines a Redis client runs.
type calls struct{ n atomic.Int64 }

func (c *calls) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *calls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *calls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// While Redis fails, a pool that reported a trouble does not try to end it
// with every message it delivers: each try is a Redis call (with go-redis's
// retries and timeouts) under the lock every send takes, which would hold
// up the sending for a notice that is only told.
func TestHealthEndsATroubleAtMostEveryFewSecondsWhileRedisFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing answers there: Redis is down
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	count := &calls{}
	rdb.AddHook(count)
	h := NewHealth(rdb)
	ctx := context.Background()
	h.failed(ctx, "connect to mail.example.test:25: connection refused")
	before := count.n.Load()
	for range 100 {
		h.delivered(ctx)
	}
	if n := count.n.Load() - before; n > 1 {
		t.Fatalf("100 messages delivered made %d calls to a Redis that is down, want at most 1", n)
	}
}
