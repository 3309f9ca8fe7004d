package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limiter counts failures per key in Redis over a fixed window, so that
// every web process shares the count.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
	max    int64
	window time.Duration
}

// NewLimiter allows max failures per key within window.
func NewLimiter(rdb redis.UniversalClient, prefix string, max int, window time.Duration) *Limiter {
	return &Limiter{rdb: rdb, prefix: "ratelimit:" + prefix + ":", max: int64(max), window: window}
}

// Blocked reports whether any of keys has used up its failures, and for how
// long it stays blocked.
func (l *Limiter) Blocked(ctx context.Context, keys ...string) (bool, time.Duration, error) {
	pipe := l.rdb.Pipeline()
	counts := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		counts[i] = pipe.Get(ctx, l.prefix+k)
		ttls[i] = pipe.PTTL(ctx, l.prefix+k)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	for i := range keys {
		n, err := counts[i].Int64()
		if err == nil && n >= l.max {
			return true, max(ttls[i].Val(), time.Second), nil
		}
	}
	return false, 0, nil
}

// Fail records one failure for each of keys.
func (l *Limiter) Fail(ctx context.Context, keys ...string) error {
	pipe := l.rdb.TxPipeline()
	for _, k := range keys {
		pipe.Incr(ctx, l.prefix+k)
		pipe.ExpireNX(ctx, l.prefix+k, l.window)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("rate limit: %w", err)
	}
	return nil
}

// Reset forgets the failures of keys.
func (l *Limiter) Reset(ctx context.Context, keys ...string) error {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = l.prefix + k
	}
	if err := l.rdb.Del(ctx, full...).Err(); err != nil {
		return fmt.Errorf("rate limit: %w", err)
	}
	return nil
}
