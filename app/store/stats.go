package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Statistics read attempt_counts (attempts per mailing and quarter hour,
// kept by triggers on attempts), runs and the owners' lists: every figure
// is an aggregate in SQL over a few thousand rows at most, whatever the
// number of attempts.

// cond is a scope as a raw SQL condition on the owner column col.
func (sc Scope) cond(col string) (string, []any) {
	switch {
	case !sc.All:
		return col + " = ?", []any{sc.UserID}
	case sc.Owner != 0:
		return col + " = ?", []any{sc.Owner}
	}
	return "TRUE", nil
}

// Figures are the headline statistics of a scope.
type Figures struct {
	Succeeded    int64 `bun:"succeeded"`
	Failed       int64 `bun:"failed"`
	Clients      int64 `bun:"clients"`
	Unsubscribed int64 `bun:"unsubscribed"`
	Bounced      int64 `bun:"bounced"`
	Messages     int64 `bun:"messages"`
	Created      int64 `bun:"created"`
	Running      int64 `bun:"running"`
	Finished     int64 `bun:"finished"`
	Disabled     int64 `bun:"disabled"`
	// NextEnd is the end of the window that closes first among the
	// scope's mailings not finished yet: at that instant one of them
	// counts as finished, with nothing written to say so.
	NextEnd *time.Time `bun:"next_end"`
}

// StatsFigures counts the scope's attempts by outcome, clients (and the
// unsubscribed and bounced among them), messages, and mailings by status
// (a disabled mailing counts as disabled only).
func (s *Store) StatsFigures(ctx context.Context, sc Scope) (Figures, error) {
	var f Figures
	owner, args := sc.cond("owner_id")
	q := `SELECT
			(SELECT coalesce(sum(succeeded), 0) FROM attempt_counts WHERE ` + owner + `) AS succeeded,
			(SELECT coalesce(sum(failed), 0) FROM attempt_counts WHERE ` + owner + `) AS failed,
			(SELECT count(*) FROM clients WHERE ` + owner + `) AS clients,
			(SELECT count(*) FROM clients WHERE ` + owner + ` AND unsubscribed_at IS NOT NULL) AS unsubscribed,
			(SELECT count(*) FROM clients WHERE ` + owner + ` AND bounced_at IS NOT NULL) AS bounced,
			(SELECT count(*) FROM messages WHERE ` + owner + `) AS messages,
			count(*) FILTER (WHERE ` + statusNow + ` = 'created' AND disabled_at IS NULL) AS created,
			count(*) FILTER (WHERE ` + statusNow + ` = 'running' AND disabled_at IS NULL) AS running,
			count(*) FILTER (WHERE ` + statusNow + ` = 'finished' AND disabled_at IS NULL) AS finished,
			count(*) FILTER (WHERE disabled_at IS NOT NULL) AS disabled,
			min(ends_at) FILTER (WHERE ` + statusNow + ` <> 'finished') AS next_end
		FROM mailings AS g WHERE ` + owner
	var all []any
	for range 7 {
		all = append(all, args...)
	}
	if err := s.db.NewRaw(q, all...).Scan(ctx, &f); err != nil {
		return f, dbErr("stats figures", err)
	}
	return f, nil
}

// DayCount is one day's attempts by outcome.
type DayCount struct {
	Day       time.Time `bun:"day"` // midnight of the day, in the zone asked for
	Succeeded int64     `bun:"succeeded"`
	Failed    int64     `bun:"failed"`
}

// AttemptsPerDay counts the scope's (or one mailing's, when mailingID is
// not 0) attempts per day of loc over the last days days up to the day of
// now (included). Every day of the range is returned, days without
// attempts as zeros.
func (s *Store) AttemptsPerDay(ctx context.Context, sc Scope, mailingID int64, now time.Time, days int, loc *time.Location) ([]DayCount, error) {
	from, to := dayAfter(now, 1-days, loc), dayAfter(now, 1, loc)
	owner, args := sc.cond("owner_id")
	q := `SELECT (bucket AT TIME ZONE ?)::date AS day, sum(succeeded) AS succeeded, sum(failed) AS failed
		FROM attempt_counts WHERE ` + owner + ` AND bucket >= ? AND bucket < ?`
	args = append([]any{loc.String()}, args...)
	args = append(args, from, to)
	if mailingID != 0 {
		q += ` AND mailing_id = ?`
		args = append(args, mailingID)
	}
	q += ` GROUP BY 1`
	var rows []struct {
		Day       time.Time `bun:"day"`
		Succeeded int64     `bun:"succeeded"`
		Failed    int64     `bun:"failed"`
	}
	if err := s.db.NewRaw(q, args...).Scan(ctx, &rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr("attempts per day", err)
	}
	byDay := make(map[string]DayCount, len(rows))
	for _, r := range rows {
		byDay[r.Day.Format(time.DateOnly)] = DayCount{Succeeded: r.Succeeded, Failed: r.Failed}
	}
	var out []DayCount
	for d := from; d.Before(to); d = dayAfter(d, 1, loc) {
		c := byDay[d.Format(time.DateOnly)]
		c.Day = d
		out = append(out, c)
	}
	return out, nil
}

// dayAfter is the start of the day n days after t's in loc (n may be
// negative). The day is counted from its noon: counting from t's time of
// day lands on the day before where that time does not exist.
func dayAfter(t time.Time, n int, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return midnight(time.Date(y, m, d+n, 12, 0, 0, 0, loc), loc)
}

// midnight is the start of t's day in loc. Where the clocks go forward at
// midnight (Chile, Cuba), the day starts at 01:00; time.Date gives 23:00
// of the day before for a midnight that does not exist.
func midnight(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, loc)
	for start.Day() != d {
		start = start.Add(15 * time.Minute) // every offset is a multiple of 15 minutes
	}
	return start
}

// MailingFigures are one mailing's statistics.
type MailingFigures struct {
	ID         int64      `bun:"id"`
	OwnerID    int64      `bun:"owner_id"`
	OwnerEmail string     `bun:"owner_email"`
	Subject    string     `bun:"subject"`
	Status     string     `bun:"status"`
	EndsAt     time.Time  `bun:"ends_at"`
	Disabled   bool       `bun:"disabled"`
	Runs       int64      `bun:"runs"`
	LastRun    *time.Time `bun:"last_run"`
	Succeeded  int64      `bun:"succeeded"`
	Failed     int64      `bun:"failed"`
}

// mailingTotalsSQL joins to mailings g its runs (r.runs, r.last_run) and
// attempts by outcome (totals.succeeded, totals.failed).
const mailingTotalsSQL = `
	CROSS JOIN LATERAL (SELECT count(*) AS runs, max(started_at) AS last_run FROM runs WHERE mailing_id = g.id) AS r
	CROSS JOIN LATERAL (SELECT coalesce(sum(succeeded), 0) AS succeeded, coalesce(sum(failed), 0) AS failed
		FROM attempt_counts WHERE mailing_id = g.id) AS totals`

const mailingFiguresSQL = `SELECT g.id, g.owner_id, u.email AS owner_email, msg.subject, ` + statusNow + ` AS status, g.ends_at, g.disabled_at IS NOT NULL AS disabled,
		r.runs, r.last_run, totals.succeeded, totals.failed
	FROM mailings AS g
	JOIN users AS u ON u.id = g.owner_id
	JOIN messages AS msg ON msg.id = g.message_id` + mailingTotalsSQL

// MailingStats lists the scope's mailings with their runs, last run and
// attempts by outcome, the latest sent first, one page at a time.
func (s *Store) MailingStats(ctx context.Context, sc Scope, page Page) ([]MailingFigures, Page, error) {
	owner, args := sc.cond("g.owner_id")
	var total int
	if err := s.db.NewRaw(`SELECT count(*) FROM mailings AS g WHERE `+owner, args...).Scan(ctx, &total); err != nil {
		return nil, page, dbErr("mailing stats", err)
	}
	page.SetTotal(total)
	var out []MailingFigures
	err := s.db.NewRaw(mailingFiguresSQL+` WHERE `+owner+` ORDER BY r.last_run DESC NULLS LAST, g.id DESC LIMIT ? OFFSET ?`,
		append(args, page.PerPage, page.Offset())...).Scan(ctx, &out)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, page, dbErr("mailing stats", err)
	}
	return out, page, nil
}

// MailingTotals returns one mailing's runs, last run and attempts by
// outcome (ID and those fields of MailingFigures); the caller has checked
// that the mailing is in its scope.
func (s *Store) MailingTotals(ctx context.Context, mailingID int64) (MailingFigures, error) {
	var f MailingFigures
	err := s.db.NewRaw(`SELECT g.id, r.runs, r.last_run, totals.succeeded, totals.failed FROM mailings AS g`+
		mailingTotalsSQL+` WHERE g.id = ?`, mailingID).Scan(ctx, &f)
	return f, dbErr("mailing totals", err)
}

// UserFigures are one user's totals, for the managers' breakdown.
type UserFigures struct {
	ID        int64  `bun:"id"`
	Email     string `bun:"email"`
	FullName  string `bun:"full_name"`
	Mailings  int64  `bun:"mailings"`
	Succeeded int64  `bun:"succeeded"`
	Failed    int64  `bun:"failed"`
}

// UserStats lists every user with their mailings and attempts by outcome,
// the most active first, one page at a time.
func (s *Store) UserStats(ctx context.Context, page Page) ([]UserFigures, Page, error) {
	var total int
	if err := s.db.NewRaw(`SELECT count(*) FROM users`).Scan(ctx, &total); err != nil {
		return nil, page, dbErr("user stats", err)
	}
	page.SetTotal(total)
	var out []UserFigures
	err := s.db.NewRaw(`SELECT u.id, u.email, u.full_name,
			(SELECT count(*) FROM mailings WHERE owner_id = u.id) AS mailings,
			coalesce(a.succeeded, 0) AS succeeded, coalesce(a.failed, 0) AS failed
		FROM users AS u
		LEFT JOIN (SELECT owner_id, sum(succeeded) AS succeeded, sum(failed) AS failed FROM attempt_counts GROUP BY owner_id) AS a
			ON a.owner_id = u.id
		ORDER BY coalesce(a.succeeded, 0) + coalesce(a.failed, 0) DESC, u.id
		LIMIT ? OFFSET ?`, page.PerPage, page.Offset()).Scan(ctx, &out)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, page, dbErr("user stats", err)
	}
	return out, page, nil
}
