package mail

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Limiter paces sends: Wait returns when the next one may go.
type Limiter interface {
	Wait(ctx context.Context) error
}

// SharedRate is MAIL_RATE across every worker that shares a Redis: time is
// cut into windows (one second, or for rates under one a second, as many
// seconds as one send needs), each with a counter in Redis, and a send
// takes a place in the current window or waits for the next. Counting and
// checking is one Lua call, so the counter never passes the limit however
// many workers ask at once. Should Redis fail, sends are paced by this
// process alone at the same rate, never unpaced.
type SharedRate struct {
	rdb    redis.UniversalClient
	key    string
	window time.Duration
	limit  int
	local  *rate.Limiter
	now    func() time.Time
}

// takePlace counts a send in the window KEYS[1] unless it holds ARGV[1]
// already; it answers 1 when counted. The key outlives its window a
// little (ARGV[2] ms) and then goes.
var takePlace = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)

// NewSharedRate paces sends to perSecond (> 0) across the workers whose
// limiters share rdb and name.
func NewSharedRate(rdb redis.UniversalClient, name string, perSecond float64) *SharedRate {
	window := time.Second
	if perSecond < 1 {
		window = time.Duration(math.Ceil(1/perSecond)) * time.Second
	}
	limit := max(1, int(perSecond*window.Seconds()))
	return &SharedRate{rdb: rdb, key: "mail-rate:" + name, window: window, limit: limit,
		local: rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond))), now: time.Now}
}

// Wait takes a place for one send, waiting for a window with room.
func (l *SharedRate) Wait(ctx context.Context) error {
	for {
		now := l.now()
		start := now.Truncate(l.window)
		key := l.key + ":" + strconv.FormatInt(start.UnixMilli(), 10)
		ok, err := takePlace.Run(ctx, l.rdb, []string{key}, l.limit, (2 * l.window).Milliseconds()).Int()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return l.local.Wait(ctx)
		}
		if ok == 1 {
			return nil
		}
		select {
		case <-time.After(start.Add(l.window).Sub(now)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
