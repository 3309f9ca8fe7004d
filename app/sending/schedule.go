// Package sending is the domain of a run: which occurrences of a mailing
// are due, starting a run and splitting it into batches, sending a batch
// exactly once per recipient, recording attempts, and the status changes of
// mailings. It knows no HTTP; tasks and the web call it.
package sending

import (
	"time"

	"rassylka/app/model"
)

// Occurrence returns the k-th occurrence (k ≥ 0) of a mailing that first
// sends at start and repeats by r, in wall-clock time of loc: a daily
// mailing at 09:00 stays at 09:00 across daylight-saving changes, and a
// monthly one from the 31st goes on the last day of shorter months. An
// occurrence at a time the clocks skip goes as long after the change as it
// was after the time they skipped from: 02:30 is 03:30 on a night the
// clocks go from 02:00 to 03:00.
func Occurrence(start time.Time, r model.Repeat, loc *time.Location, k int) time.Time {
	if k == 0 || r == model.RepeatOnce {
		return start
	}
	s := start.In(loc)
	y, m, d := s.Date()
	hh, mm, ss := s.Clock()
	ns := s.Nanosecond()
	switch r {
	case model.RepeatDaily:
		return wallClock(time.Date(y, m, d+k, hh, mm, ss, ns, time.UTC), loc)
	case model.RepeatWeekly:
		return wallClock(time.Date(y, m, d+7*k, hh, mm, ss, ns, time.UTC), loc)
	case model.RepeatMonthly:
		first := time.Date(y, m+time.Month(k), 1, 0, 0, 0, 0, time.UTC)
		last := daysIn(first.Year(), first.Month())
		return wallClock(time.Date(first.Year(), first.Month(), min(d, last), hh, mm, ss, ns, time.UTC), loc)
	}
	return start
}

// wallClock is the instant (in UTC) when loc's clocks show the date and
// time that wall shows. When they skip it, it is read on the clock before
// the change (as long after the change as wall is after the time they
// skip from), unless that is the next day, where the clocks skip the last
// hour before midnight: then on the clock after it, as long before the
// change. Either way it stays on its day; time.Date would move it back
// (to 01:30 in New York, and to 23:30 the day before where the clocks
// change at midnight).
func wallClock(wall time.Time, loc *time.Location) time.Time {
	t := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), wall.Nanosecond(), loc)
	_, shown := t.Zone()
	if t.UTC().Add(time.Duration(shown) * time.Second).Equal(wall) {
		return t.UTC()
	}
	// In a gap, t was read with one side's offset and shows the other's;
	// the clocks go forward, so the smaller is the one before the change.
	used := wall.Sub(t.UTC())
	before, after := min(used, time.Duration(shown)*time.Second), max(used, time.Duration(shown)*time.Second)
	if at := wall.Add(-before); sameDay(at.In(loc), wall) {
		return at.UTC()
	}
	return wall.Add(-after).UTC()
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd
}

// halfPeriod is half the shortest time between two occurrences of r: a
// time moved by less (a change of time zone) stays in its period.
func halfPeriod(r model.Repeat) time.Duration {
	switch r {
	case model.RepeatDaily:
		return 12 * time.Hour
	case model.RepeatWeekly:
		return 7 * 12 * time.Hour
	case model.RepeatMonthly:
		return 14 * 24 * time.Hour
	}
	return 0
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// index is the largest k whose occurrence is at or before t, or -1 when
// t is before the first send.
func index(start time.Time, r model.Repeat, loc *time.Location, t time.Time) int {
	if t.Before(start) {
		return -1
	}
	if r == model.RepeatOnce {
		return 0
	}
	// Estimate k from the shortest period, then step to the exact one.
	period := map[model.Repeat]time.Duration{
		model.RepeatDaily: 23 * time.Hour, model.RepeatWeekly: 7*24*time.Hour - time.Hour, model.RepeatMonthly: 28 * 24 * time.Hour,
	}[r]
	k := int(t.Sub(start) / period)
	for k > 0 && Occurrence(start, r, loc, k).After(t) {
		k--
	}
	for !Occurrence(start, r, loc, k+1).After(t) {
		k++
	}
	return k
}

// LatestDue is the latest occurrence at or before now that is still before
// end; ok is false when there is none (not started yet, or the window has
// closed). Missed occurrences before it are not returned: after downtime
// only the latest one runs.
func LatestDue(start, end time.Time, r model.Repeat, loc *time.Location, now time.Time) (time.Time, bool) {
	if !now.Before(end) {
		return time.Time{}, false
	}
	k := index(start, r, loc, now)
	if k < 0 {
		return time.Time{}, false
	}
	due := Occurrence(start, r, loc, k)
	return due, due.Before(end)
}

// NextAfter is the first occurrence strictly after t that is before end;
// ok is false when none is left.
func NextAfter(start, end time.Time, r model.Repeat, loc *time.Location, t time.Time) (time.Time, bool) {
	k := index(start, r, loc, t)
	if k >= 0 && r == model.RepeatOnce {
		return time.Time{}, false
	}
	next := Occurrence(start, r, loc, k+1)
	return next, next.Before(end)
}

// NextBeforeFirstRun is the next occurrence of a mailing edited before its
// first run (start, end and r as saved; was the start and repeat it had,
// planned its next send): its first send, unless that is past, the start
// left as it was (a past start cannot be chosen). Then the send planned
// stays while it is inside the window and the repeat is the same, or is
// due now (waiting for the workers); otherwise it is the first occurrence
// after now. Sends skipped while the mailing was switched off are not
// brought back by an edit.
func NextBeforeFirstRun(start, end time.Time, r model.Repeat, loc *time.Location, wasStart time.Time, wasRepeat model.Repeat,
	planned *time.Time, now time.Time) *time.Time {
	if start.After(now) || !start.Equal(wasStart) {
		return &start
	}
	if planned != nil && planned.Before(end) && (r == wasRepeat || !planned.After(now)) {
		return planned
	}
	if next, ok := NextAfter(start, end, r, loc, now); ok {
		return &next
	}
	return nil
}

// NextInWindow is a running mailing's next occurrence after its window
// changed: the planned one while it is still inside the window, else, when
// none was left, the first after now in the new window (nil: none).
func NextInWindow(start, end time.Time, r model.Repeat, loc *time.Location, planned *time.Time, now time.Time) *time.Time {
	if planned == nil && r == model.RepeatOnce {
		return nil // its one send has gone (or a send by hand took its place)
	}
	if planned != nil {
		if planned.Before(end) {
			return planned
		}
		return nil
	}
	if next, ok := NextAfter(start, end, r, loc, now); ok {
		return &next
	}
	return nil
}
