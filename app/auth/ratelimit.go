package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limiter counts attempts per key in Redis over a fixed window, so that
// every web process shares the count.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
	max    int64
	window time.Duration
}

// NewLimiter allows max attempts per key within window.
func NewLimiter(rdb redis.UniversalClient, prefix string, max int, window time.Duration) *Limiter {
	return &Limiter{rdb: rdb, prefix: "ratelimit:" + prefix + ":", max: int64(max), window: window}
}

// Take counts one attempt for each of keys before the attempt is made, so
// that concurrent attempts cannot slip past the limit, and reports whether
// any key is over it and how long it stays blocked.
func (l *Limiter) Take(ctx context.Context, keys ...string) (bool, error) {
	blocked, _, err := l.TakeWait(ctx, keys...)
	return blocked, err
}

// TakeWait is Take that also says how long the block lasts.
func (l *Limiter) TakeWait(ctx context.Context, keys ...string) (bool, time.Duration, error) {
	pipe := l.rdb.TxPipeline()
	counts := make([]*redis.IntCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		counts[i] = pipe.Incr(ctx, l.prefix+k)
		pipe.ExpireNX(ctx, l.prefix+k, l.window)
		ttls[i] = pipe.PTTL(ctx, l.prefix+k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	for i := range keys {
		if counts[i].Val() > l.max {
			return true, max(ttls[i].Val(), time.Second), nil
		}
	}
	return false, 0, nil
}

// Release gives back the attempts Take counted, for attempts that turn out
// not to count (a successful sign-in).
func (l *Limiter) Release(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := releaseScript.Run(ctx, l.rdb, []string{l.prefix + k}).Err(); err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
	}
	return nil
}

// releaseScript decrements a counter that still exists; a window that
// ended meanwhile must not come back as a counter without expiry.
var releaseScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
  return redis.call("DECR", KEYS[1])
end
return 0`)

// Reset forgets the attempts of keys.
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
