package form

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"rassylka/app/model"
	"rassylka/views/component"
)

// DateTimeLocal is the format of <input type="datetime-local">.
const DateTimeLocal = "2006-01-02T15:04"

// Mailing is the mailing form. Times are wall-clock times in the user's
// zone; recipients come as repeated ids (checkboxes) and/or a
// comma-separated list kept by the recipient picker.
type Mailing struct {
	MessageID    string   `form:"message_id"`
	NewSubject   string   `form:"new_subject"`
	NewBody      string   `form:"new_body"`
	StartsAt     string   `form:"starts_at"`
	EndsAt       string   `form:"ends_at"`
	Repeat       string   `form:"repeat"`
	Recipients   []string `form:"recipients"`
	RecipientIDs string   `form:"recipient_ids"`
	Version      string   `form:"version"`  // the mailing's version the form was opened on (see Version)
	FormKey      string   `form:"form_key"` // the form's key (see Key)
	// PickerQ is the recipients' search; Picker the picker's button that
	// sent the form without JavaScript (PickSearch, PickAll, PickClear,
	// PickChosen),
	// "" when the form is to be saved.
	PickerQ string `form:"picker_q"`
	Picker  string `form:"picker"`
	// PickerShown is the ids whose boxes the page showed without
	// JavaScript: of them, only those ticked (Recipients) stay chosen.
	PickerShown string `form:"picker_shown"`
}

// The picker's buttons, which send the form without JavaScript.
const (
	PickSearch = "search"
	PickAll    = "all"
	PickClear  = "clear"
	PickChosen = "chosen" // show the recipients chosen so far
)

// PickerButton is the picker's button pressed without JavaScript and where
// it goes on: "More…" sends its kind and a place, "search:<page>" for a
// search's next page, "chosen:<id>" for the chosen recipients after the
// client id (at is 0 for the other buttons, and for a place not valid).
func (f Mailing) PickerButton() (kind string, at int64) {
	kind, place, _ := strings.Cut(f.Picker, ":")
	at, err := strconv.ParseInt(place, 10, 64)
	if err != nil || at < 0 {
		at = 0
	}
	return kind, at
}

// SplitIDs is the ids of a joined list (JoinIDs), those not valid left
// out.
func SplitIDs(joined string) []int64 {
	ids, _ := parseIDs(nil, joined)
	return ids
}

// Chosen is the recipients chosen so far, those not valid left out.
func (f Mailing) Chosen() []int64 {
	ids, _ := f.chosen()
	return ids
}

// chosen is the recipients chosen: the boxes ticked and the ids of the
// hidden list, but those whose boxes were shown unticked (a choice undone
// without JavaScript); bad reports ids not valid.
func (f Mailing) chosen() ([]int64, bool) {
	ids, bad := parseIDs(f.Recipients, f.RecipientIDs)
	shown, _ := parseIDs(nil, f.PickerShown)
	if len(shown) == 0 {
		return ids, bad
	}
	unticked := make(map[int64]bool, len(shown))
	for _, id := range shown {
		unticked[id] = true
	}
	ticked, _ := parseIDs(f.Recipients, "")
	for _, id := range ticked {
		delete(unticked, id)
	}
	return slices.DeleteFunc(ids, func(id int64) bool { return unticked[id] }), bad
}

// NewMessageChoice is the message_id value that writes a message inline.
const NewMessageChoice = "new"

// MaxRecipients bounds one mailing's recipients.
const MaxRecipients = 100000

// Parsed is a mailing form turned into values.
type Parsed struct {
	MessageID  int64           // 0 with NewMessage
	NewMessage *Message        // the inline message, when chosen
	StartsAt   time.Time       // UTC
	EndsAt     time.Time       // UTC
	Repeat     model.Repeat    //
	Recipients []int64         // unique
	FormKey    string          // the form's key, if valid (see Key): of a new mailing, and of the message written in the form
	Locked     map[string]bool // fields not checked because they cannot change
}

// Rules say what may change: a new or not-yet-started mailing may change
// everything; a running one only its end and recipients.
type Rules struct {
	Now      time.Time
	Location *time.Location
	// Running locks the message, start and repeat.
	Running bool
	// StoredStart is the stored start of an edited mailing: keeping it is
	// allowed even when it has passed.
	StoredStart *time.Time
	// StoredEnd is the stored end of an edited mailing. A stored time is
	// kept as it is when the form shows it unchanged, even in the hour a
	// clock goes back, when its wall-clock time happens twice.
	StoredEnd *time.Time
}

// Validate parses and checks the form under the rules.
func (f *Mailing) Validate(r Rules) (Parsed, Errors) {
	errs := Errors{}
	p := Parsed{Locked: map[string]bool{}, FormKey: Key(f.FormKey)}
	if r.Location == nil {
		r.Location = time.UTC
	}
	if r.Running {
		p.Locked["message_id"], p.Locked["starts_at"], p.Locked["repeat"] = true, true, true
	}

	if !r.Running {
		switch strings.TrimSpace(f.MessageID) {
		case "":
			errs["message_id"] = "Choose the message to send."
		case NewMessageChoice:
			m := &Message{Subject: f.NewSubject, Body: f.NewBody}
			for field, msg := range m.Validate() {
				errs["new_"+field] = msg
			}
			f.NewSubject, f.NewBody = m.Subject, m.Body
			p.NewMessage = m
		default:
			id, err := strconv.ParseInt(strings.TrimSpace(f.MessageID), 10, 64)
			if err != nil || id < 1 {
				errs["message_id"] = "Choose one of your messages."
			}
			p.MessageID = id
		}

		switch model.Repeat(f.Repeat) {
		case model.RepeatOnce, model.RepeatDaily, model.RepeatWeekly, model.RepeatMonthly:
			p.Repeat = model.Repeat(f.Repeat)
		case "":
			p.Repeat = model.RepeatOnce
		default:
			errs["repeat"] = "Choose once, daily, weekly or monthly."
		}

		start, kept, msg := localTime(f.StartsAt, r.Location, "the first send", r.StoredStart, r.Now)
		switch {
		case msg != "":
			errs["starts_at"] = msg
		case start.Before(r.Now.Truncate(time.Minute)) && !kept:
			// The minute under way is not past: a form holds minutes, and
			// a send "now" is due at once.
			errs["starts_at"] = "The first send must be now or later."
		}
		p.StartsAt = start
	}

	end, _, msg := localTime(f.EndsAt, r.Location, "the end of sending", r.StoredEnd, r.Now)
	switch {
	case msg != "":
		errs["ends_at"] = msg
	case !end.After(r.Now): // a window wholly past would only finish the mailing
		errs["ends_at"] = "The end of sending must be in the future."
	case !r.Running && errs["starts_at"] == "" && !end.After(p.StartsAt):
		errs["ends_at"] = "The end of sending must be after the first send."
	case r.Running && r.StoredStart != nil && !end.After(*r.StoredStart):
		// Its first send is locked: a run went out under it. Closing the
		// window sooner is switching the mailing off.
		loc := r.Location
		if loc == nil {
			loc = time.UTC
		}
		errs["ends_at"] = "The end of sending must be after the first send, " + r.StoredStart.In(loc).Format("2 Jan 2006 15:04") +
			". To stop its sends before then, switch the mailing off."
	}
	p.EndsAt = end

	ids, bad := f.chosen()
	switch {
	case bad:
		errs["recipients"] = "Some recipients are not valid; choose them again."
	case len(ids) == 0:
		errs["recipients"] = "Choose at least one recipient."
	case len(ids) > MaxRecipients:
		errs["recipients"] = "A mailing can have at most " + component.Count(MaxRecipients) + " recipients."
	}
	p.Recipients = ids
	return p, errs
}

// localTime parses a datetime-local value as wall-clock time in loc. A
// time the clocks skip (they go forward over it) is refused rather than
// moved. A time the clocks go back over happens twice: stored, when it
// shows as v, is kept as it is (kept), and otherwise the time is the
// first of the two unless that has passed by now (see upcoming).
func localTime(v string, loc *time.Location, what string, stored *time.Time, now time.Time) (t time.Time, kept bool, msg string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false, "Enter " + what + "."
	}
	for _, layout := range []string{DateTimeLocal, DateTimeLocal + ":05"} {
		t, err := time.ParseInLocation(layout, v, loc)
		if err != nil {
			continue
		}
		wall, _ := time.Parse(layout, v) // the date and time as typed
		if stored != nil && sameWallClock(stored.In(loc), wall) {
			return stored.UTC(), true, ""
		}
		if !sameWallClock(t.In(loc), wall) {
			return time.Time{}, false, "This time does not exist in " + loc.String() + ": the clocks go forward over it."
		}
		// The year as typed: the database gives back no time past 9999 in
		// UTC, and 9998 in any zone is at most 14 hours into 9999 there.
		if wall.Year() > 9998 {
			return time.Time{}, false, "Enter a date before the year 9999."
		}
		return upcoming(first(t, loc), loc, now), false, ""
	}
	return time.Time{}, false, "Enter a date and time like 2026-12-24T09:00."
}

// first is the first instant that shows t's date and time in loc: of a
// time the clocks go back over, parsing picks the first or the second
// depending on the zone.
func first(t time.Time, loc *time.Location) time.Time {
	_, now := t.In(loc).Zone()
	_, before := t.Add(-3 * time.Hour).In(loc).Zone() // no zone changes twice in three hours
	if before > now {
		if earlier := t.Add(-time.Duration(before-now) * time.Second); sameWallClock(earlier.In(loc), t.In(loc)) {
			return earlier.UTC()
		}
	}
	return t.UTC()
}

// upcoming is t, or when t has passed and its date and time come again
// (the clocks go back over them), the second time: parsing picks either,
// and the first may be past while the second is still to come.
func upcoming(t time.Time, loc *time.Location, now time.Time) time.Time {
	if !t.Before(now) {
		return t
	}
	_, before := t.In(loc).Zone()
	_, after := t.Add(3 * time.Hour).In(loc).Zone() // no zone changes twice in three hours
	if after >= before {
		return t
	}
	if again := t.Add(time.Duration(before-after) * time.Second); sameWallClock(again.In(loc), t.In(loc)) {
		return again.UTC()
	}
	return t
}

// sameWallClock reports whether a and b show the same date and time of day
// (to the nanosecond), whatever their zones.
func sameWallClock(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute() &&
		a.Second() == b.Second() && a.Nanosecond() == b.Nanosecond()
}

// parseIDs reads ids repeated and comma-joined, each once, in order, up to
// one more than a mailing takes; bad says one was no id.
func parseIDs(repeated []string, joined string) ([]int64, bool) {
	seen := map[int64]bool{}
	var out []int64
	bad := false
	add := func(s string) {
		s = strings.TrimSpace(s)
		if s == "" || len(out) > MaxRecipients {
			return // one over the most is enough to refuse the list
		}
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id < 1 {
			bad = true
			return
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, s := range repeated {
		add(s)
	}
	for s := range strings.SplitSeq(joined, ",") {
		add(s)
	}
	return out, bad
}

// JoinIDs is the picker's comma-separated form of ids.
func JoinIDs(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}
