// Package stats computes the statistics pages' figures from the database
// and caches them in Redis, per user and for the whole site.
//
// Invalidation is by generation: every cache key carries the current
// generation of its owner (or of the site), and a change to an owner's
// data increments that owner's and the site's generation, so the next read
// misses and recomputes. A value computed while a change lands is stored
// under the old generation and never read. Redis being down only costs the
// cache: figures are then computed from PostgreSQL on every read.
package stats

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"rassylka/app/model"
	"rassylka/app/store"
)

// Ranges are the chart's choices, in days.
var Ranges = []int{7, 30, 90}

// DefaultRange is the chart's range when none is asked for.
const DefaultRange = 30

// ValidRange returns days when it is one of Ranges, else DefaultRange.
func ValidRange(days int) int {
	for _, r := range Ranges {
		if r == days {
			return days
		}
	}
	return DefaultRange
}

// Overview is everything the statistics page shows for a scope.
type Overview struct {
	Figures store.Figures
	Days    []store.DayCount
}

// Service reads statistics, through the cache when it can.
type Service struct {
	Store *store.Store
	Redis redis.UniversalClient // nil: no cache
	Log   *slog.Logger
	// TTL bounds how long an unread generation's entries stay in Redis.
	TTL time.Duration
	Now func() time.Time
}

const (
	keyPrefix  = "stats:"
	defaultTTL = 10 * time.Minute
	siteOwner  = "all"
)

// owner names a scope's cache owner: a user id, or the whole site.
func owner(sc store.Scope) string {
	switch {
	case !sc.All:
		return strconv.FormatInt(sc.UserID, 10)
	case sc.Owner != 0:
		return strconv.FormatInt(sc.Owner, 10)
	}
	return siteOwner
}

// Overview returns the scope's figures and its attempts per day over the
// last days days (today included) in loc.
func (s *Service) Overview(ctx context.Context, sc store.Scope, days int, loc *time.Location) (Overview, error) {
	now := s.now()
	key := "overview:" + strconv.Itoa(days) + ":" + loc.String() + ":" + now.In(loc).Format(time.DateOnly)
	return cached(ctx, s, owner(sc), key, nil, func(v Overview) *time.Time { return v.Figures.NextEnd }, func() (Overview, error) {
		f, err := s.Store.StatsFigures(ctx, sc)
		if err != nil {
			return Overview{}, err
		}
		d, err := s.Store.AttemptsPerDay(ctx, sc, 0, now, days, loc)
		return Overview{Figures: f, Days: d}, err
	})
}

// MailingPage is one page of the per-mailing table.
type MailingPage struct {
	Rows []store.MailingFigures
	Page store.Page
}

// Mailings returns a page of the scope's per-mailing figures.
func (s *Service) Mailings(ctx context.Context, sc store.Scope, page store.Page) (MailingPage, error) {
	return cached(ctx, s, owner(sc), pageKey("mailings", page), func(v MailingPage) string { return pageKey("mailings", v.Page) }, nextEnd, func() (MailingPage, error) {
		rows, p, err := s.Store.MailingStats(ctx, sc, page)
		return MailingPage{Rows: rows, Page: p}, err
	})
}

// nextEnd is the end of the window that closes first among the page's
// mailings not finished yet (nil: none), when one of them turns finished.
func nextEnd(v MailingPage) *time.Time {
	var first *time.Time
	for i, r := range v.Rows {
		if r.Status != string(model.StatusFinished) && (first == nil || r.EndsAt.Before(*first)) {
			first = &v.Rows[i].EndsAt
		}
	}
	return first
}

// UserPage is one page of the managers' per-user breakdown.
type UserPage struct {
	Rows []store.UserFigures
	Page store.Page
}

// Users returns a page of every user's figures (managers).
func (s *Service) Users(ctx context.Context, page store.Page) (UserPage, error) {
	return cached(ctx, s, siteOwner, pageKey("users", page), func(v UserPage) string { return pageKey("users", v.Page) }, nil, func() (UserPage, error) {
		rows, p, err := s.Store.UserStats(ctx, page)
		return UserPage{Rows: rows, Page: p}, err
	})
}

// Changed records that data under ownerID's statistics changed: their
// cached figures, and the site's, are not read again.
func (s *Service) Changed(ctx context.Context, ownerIDs ...int64) {
	if s == nil || s.Redis == nil || len(ownerIDs) == 0 {
		return
	}
	pipe := s.Redis.Pipeline()
	for _, id := range ownerIDs {
		pipe.Incr(ctx, genKey(strconv.FormatInt(id, 10)))
	}
	pipe.Incr(ctx, genKey(siteOwner))
	if _, err := pipe.Exec(ctx); err != nil {
		// The figures cached under the current generation are then read
		// until they expire (TTL).
		s.Log.WarnContext(ctx, "statistics cache: invalidate", "error", err.Error())
	}
}

// SiteChanged records that the site's statistics changed without any
// owner's data changing (a new account joins the per-user table).
func (s *Service) SiteChanged(ctx context.Context) {
	if s == nil || s.Redis == nil {
		return
	}
	if err := s.Redis.Incr(ctx, genKey(siteOwner)).Err(); err != nil {
		s.Log.WarnContext(ctx, "statistics cache: invalidate", "error", err.Error())
	}
}

func genKey(owner string) string { return keyPrefix + "gen:" + owner }

// pageKey names one page of a paged table.
func pageKey(table string, p store.Page) string {
	return table + ":" + strconv.Itoa(p.Number) + ":" + strconv.Itoa(p.PerPage)
}

// cached returns the value stored under the owner's current generation
// and key, or computes it and stores it under storeKey of it (key when
// nil): a page asked for past the end is computed as the last page, and
// stored as that page only, so the entries stay as many as the pages.
//
// A mailing turns finished when its window closes, with nothing written
// and so no change of generation: a value showing mailings not finished
// yet is kept only until the first of their windows closes (until of it,
// when until is not nil and says so).
func cached[T any](ctx context.Context, s *Service, owner, key string, storeKey func(T) string, until func(T) *time.Time, compute func() (T, error)) (T, error) {
	if s.Redis == nil {
		return compute()
	}
	gen, err := s.Redis.Get(ctx, genKey(owner)).Result()
	if errors.Is(err, redis.Nil) {
		gen, err = "0", nil
	}
	if err != nil {
		s.Log.WarnContext(ctx, "statistics cache: read", "error", err.Error())
		return compute()
	}
	full := keyPrefix + owner + ":" + gen + ":" + key
	if b, err := s.Redis.Get(ctx, full).Bytes(); err == nil {
		var v T
		if json.Unmarshal(b, &v) == nil {
			return v, nil
		}
	}
	v, err := compute()
	if err != nil {
		return v, err
	}
	if storeKey != nil {
		full = keyPrefix + owner + ":" + gen + ":" + storeKey(v)
	}
	ttl := s.ttl()
	if until != nil {
		if end := until(v); end != nil {
			// Redis expires keys on the real clock, whatever s.Now says.
			ttl = min(ttl, time.Until(*end))
			if ttl < time.Millisecond {
				return v, nil // already past: not worth keeping
			}
		}
	}
	if b, err := json.Marshal(v); err == nil {
		if err := s.Redis.Set(ctx, full, b, ttl).Err(); err != nil {
			s.Log.WarnContext(ctx, "statistics cache: write", "error", err.Error())
		}
	}
	return v, nil
}

func (s *Service) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return defaultTTL
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
