package sending

import (
	"testing"
	"time"

	"rassylka/app/model"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestMonthlyAcrossMonthEnds(t *testing.T) {
	utc := time.UTC
	start := time.Date(2027, 1, 31, 9, 0, 0, 0, utc)
	want := []string{"2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31", "2027-06-30"}
	for k, w := range want {
		if got := Occurrence(start, model.RepeatMonthly, utc, k).Format("2006-01-02"); got != w {
			t.Errorf("occurrence %d = %s, want %s", k, got, w)
		}
	}
	leap := time.Date(2028, 1, 31, 9, 0, 0, 0, utc)
	if got := Occurrence(leap, model.RepeatMonthly, utc, 1).Format("2006-01-02"); got != "2028-02-29" {
		t.Errorf("leap February = %s", got)
	}
}

func TestDailyKeepsWallClockAcrossDST(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	start := time.Date(2027, 3, 27, 9, 0, 0, 0, berlin) // the day before summer time
	next := Occurrence(start, model.RepeatDaily, berlin, 1).In(berlin)
	if next.Hour() != 9 || next.Day() != 28 {
		t.Fatalf("daily across DST = %v, want 09:00 on the 28th", next)
	}
	if d := next.Sub(start); d != 23*time.Hour {
		t.Fatalf("elapsed %v, want 23h (a short day)", d)
	}
}

// An occurrence at a time the clocks skip goes as long after the change as
// it was after the time they skipped from, on its own day, whatever the
// zone: 02:30 on a night the clocks go from 02:00 to 03:00 is 03:30. (In
// New York it went at 01:30, before its time; where the clocks change at
// midnight, at 23:30 the day before, which then had two sends.)
func TestRepeatAtATimeTheClocksSkip(t *testing.T) {
	cases := []struct {
		zone   string
		start  string // local
		repeat model.Repeat
		want   []string // occurrences 1, 2, … (local)
	}{
		{"Europe/Berlin", "2027-03-27 02:30", model.RepeatDaily, []string{"2027-03-28 03:30 CEST", "2027-03-29 02:30 CEST"}},
		{"America/New_York", "2027-03-13 02:30", model.RepeatDaily, []string{"2027-03-14 03:30 EDT", "2027-03-15 02:30 EDT"}},
		{"America/Havana", "2027-03-13 00:30", model.RepeatDaily, []string{"2027-03-14 01:30 CDT", "2027-03-15 00:30 CDT"}},
		{"America/Santiago", "2027-08-29 00:30", model.RepeatWeekly, []string{"2027-09-05 01:30 -03", "2027-09-12 00:30 -03"}},
		{"America/Havana", "2027-02-14 00:30", model.RepeatMonthly, []string{"2027-03-14 01:30 CDT", "2027-04-14 00:30 CDT"}},
		// The clocks skip from 23:00 to midnight: 23:30 goes half an hour
		// before the change, on its own day, not at 00:30 the next.
		{"America/Nuuk", "2026-03-27 23:30", model.RepeatDaily, []string{"2026-03-28 22:30 -02", "2026-03-29 23:30 -01"}},
	}
	for _, tc := range cases {
		t.Run(tc.zone+" "+string(tc.repeat), func(t *testing.T) {
			loc := mustLoc(t, tc.zone)
			start, err := time.ParseInLocation("2006-01-02 15:04", tc.start, loc)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.want {
				if got := Occurrence(start, tc.repeat, loc, i+1).In(loc).Format("2006-01-02 15:04 MST"); got != w {
					t.Errorf("occurrence %d = %s, want %s", i+1, got, w)
				}
			}
			// Late on the evening before the change, none has come since the start.
			first, err := time.ParseInLocation("2006-01-02 15:04 MST", tc.want[0], loc)
			if err != nil {
				t.Fatal(err)
			}
			eve := time.Date(first.Year(), first.Month(), first.Day()-1, 23, 45, 0, 0, loc)
			due, ok := LatestDue(start, start.AddDate(1, 0, 0), tc.repeat, loc, eve)
			if !ok || !due.Equal(start) {
				t.Errorf("latest due at %v = %v %v, want the start", eve.In(loc), due.In(loc), ok)
			}
		})
	}
}

func TestLatestDueAndNext(t *testing.T) {
	utc := time.UTC
	start := time.Date(2027, 1, 1, 9, 0, 0, 0, utc)
	end := time.Date(2027, 1, 10, 0, 0, 0, 0, utc)
	cases := []struct {
		name   string
		repeat model.Repeat
		now    time.Time
		due    string // "" = none
		next   string
	}{
		{"before start", model.RepeatDaily, start.Add(-time.Minute), "", "2027-01-01 09:00"},
		{"at start", model.RepeatDaily, start, "2027-01-01 09:00", "2027-01-02 09:00"},
		{"missed three days: only the latest", model.RepeatDaily, time.Date(2027, 1, 4, 12, 0, 0, 0, utc), "2027-01-04 09:00", "2027-01-05 09:00"},
		{"last one inside the window", model.RepeatDaily, time.Date(2027, 1, 9, 23, 0, 0, 0, utc), "2027-01-09 09:00", ""},
		{"window closed", model.RepeatDaily, end, "", ""},
		{"once, after start", model.RepeatOnce, time.Date(2027, 1, 5, 0, 0, 0, 0, utc), "2027-01-01 09:00", ""},
		{"weekly", model.RepeatWeekly, time.Date(2027, 1, 8, 10, 0, 0, 0, utc), "2027-01-08 09:00", ""},
		{"weekly before the second", model.RepeatWeekly, time.Date(2027, 1, 7, 10, 0, 0, 0, utc), "2027-01-01 09:00", "2027-01-08 09:00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			due, ok := LatestDue(start, end, tc.repeat, utc, tc.now)
			got := ""
			if ok {
				got = due.Format("2006-01-02 15:04")
			}
			if got != tc.due {
				t.Errorf("LatestDue = %q, want %q", got, tc.due)
			}
			next, ok := NextAfter(start, end, tc.repeat, utc, tc.now)
			got = ""
			if ok {
				got = next.Format("2006-01-02 15:04")
			}
			if got != tc.next {
				t.Errorf("NextAfter = %q, want %q", got, tc.next)
			}
		})
	}
	// A monthly mailing over years finds its occurrence without walking.
	far := time.Date(2040, 6, 15, 0, 0, 0, 0, utc)
	due, ok := LatestDue(time.Date(2027, 1, 31, 9, 0, 0, 0, utc), far.Add(time.Hour), model.RepeatMonthly, utc, far)
	if !ok || due.Format("2006-01-02") != "2040-05-31" {
		t.Fatalf("monthly far ahead = %v %v", due, ok)
	}
}

func TestNextInWindowAfterAnEdit(t *testing.T) {
	loc := time.UTC
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, loc)
	planned := time.Date(2026, 3, 5, 9, 0, 0, 0, loc)
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, loc)
	// The planned occurrence stays while inside the window.
	if got := NextInWindow(start, planned.Add(time.Hour), model.RepeatDaily, loc, &planned, now); got == nil || !got.Equal(planned) {
		t.Fatalf("kept: %v", got)
	}
	// The window now ends before it: none is left.
	if got := NextInWindow(start, planned, model.RepeatDaily, loc, &planned, now); got != nil {
		t.Fatalf("shrunk: %v", got)
	}
	// None was left, and the window grew: the first after now.
	if got := NextInWindow(start, planned.Add(48*time.Hour), model.RepeatDaily, loc, nil, now); got == nil || !got.Equal(planned) {
		t.Fatalf("extended: %v", got)
	}
	if got := NextInWindow(start, planned.Add(48*time.Hour), model.RepeatOnce, loc, nil, now); got != nil {
		t.Fatalf("a one-off mailing got another occurrence: %v", got)
	}
	// Sent by hand before its first send, which that replaced.
	if got := NextInWindow(start, planned.Add(48*time.Hour), model.RepeatOnce, loc, nil, start.Add(-time.Hour)); got != nil {
		t.Fatalf("a one-off mailing sent by hand got its first send again: %v", got)
	}
}

func TestNextBeforeFirstRun(t *testing.T) {
	loc := time.UTC
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, loc)
	end := start.AddDate(0, 2, 0)
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, loc)
	skippedTo := time.Date(2026, 3, 5, 9, 0, 0, 0, loc) // a switch-on skipped the sends before it
	later := now.Add(48 * time.Hour)
	for _, c := range []struct {
		name          string
		start         time.Time
		r             model.Repeat
		planned, want *time.Time
	}{
		{"a new start in the future", later, model.RepeatDaily, &skippedTo, &later},
		{"the past start kept: the send planned stays", start, model.RepeatDaily, &skippedTo, &skippedTo},
		{"the past start kept, due now: it stays due", start, model.RepeatDaily, &start, &start},
		{"the past start kept, the repeat changed: the first after now", start, model.RepeatWeekly, &skippedTo, ptr(start.AddDate(0, 0, 7))},
		{"the past start kept, none planned: the first after now", start, model.RepeatDaily, nil, &skippedTo},
	} {
		got := NextBeforeFirstRun(c.start, end, c.r, loc, start, model.RepeatDaily, c.planned, now)
		if (got == nil) != (c.want == nil) || got != nil && !got.Equal(*c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// The window ends before the send planned: none is left after now.
	if got := NextBeforeFirstRun(start, skippedTo, model.RepeatDaily, loc, start, model.RepeatDaily, &skippedTo, now); got != nil {
		t.Errorf("the window shrunk before the send planned: %v", got)
	}
}

func ptr[T any](v T) *T { return &v }
