package form

import (
	"strings"
	"testing"
	"time"
)

// Texts refuse the control characters PostgreSQL cannot store or a reader
// cannot see, but keep tabs and line ends.
func TestTextRefusesControlCharacters(t *testing.T) {
	for in, ok := range map[string]bool{"Ann": true, "line\nbreak\ttab\r\n": true, "A\x00nn": false, "bell\x07": false} {
		if _, msg := Text(in, true, 100, "a name"); (msg == "") != ok {
			t.Errorf("Text(%q): %q", in, msg)
		}
		m := &Message{Subject: "Hi", Body: in}
		if errs := m.Validate(); (errs["body"] == "") != ok {
			t.Errorf("body %q: %v", in, errs)
		}
	}
}

// A message's body and a client's comment keep their lines as "\n", a
// CR alone included: the mail would break a line there that the page,
// which stored it, showed unbroken.
func TestLineBreaksAreStoredAsOne(t *testing.T) {
	const typed, want = "one\r\ntwo\rthree\n\rfour", "one\ntwo\nthree\n\nfour"
	m := &Message{Subject: "Hi", Body: typed}
	if errs := m.Validate(); len(errs) != 0 || m.Body != want {
		t.Errorf("body %q, %v; want %q", m.Body, errs, want)
	}
	c := &Client{Email: "ann@example.com", Comment: typed}
	if errs := c.Validate(); len(errs) != 0 || c.Comment != want {
		t.Errorf("comment %q, %v; want %q", c.Comment, errs, want)
	}
}

// Wall-clock times in a zone with daylight saving: a time the clocks skip
// is refused, not moved; a time they pass twice keeps the stored instant
// when the form shows it unchanged.
func TestLocalTimeAcrossClockChanges(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, msg := localTime("2027-03-28T02:30", berlin, "the first send", nil, time.Time{}); !strings.Contains(msg, "does not exist") {
		t.Errorf("skipped 02:30: %q", msg)
	}
	if got, _, msg := localTime("2027-03-28T03:30", berlin, "the first send", nil, time.Time{}); msg != "" || !got.Equal(time.Date(2027, 3, 28, 1, 30, 0, 0, time.UTC)) {
		t.Errorf("03:30 after the change: %v %q", got, msg)
	}
	// 02:30 on October 31 happens at 00:30 and at 01:30 UTC.
	for _, stored := range []time.Time{time.Date(2027, 10, 31, 0, 30, 0, 0, time.UTC), time.Date(2027, 10, 31, 1, 30, 0, 0, time.UTC)} {
		got, kept, msg := localTime("2027-10-31T02:30", berlin, "the first send", &stored, time.Time{})
		if msg != "" || !got.Equal(stored) || !kept {
			t.Errorf("stored %v shown unchanged became %v (kept %t) %q", stored, got, kept, msg)
		}
	}
	if got, _, msg := localTime("2027-10-31T02:30", berlin, "the first send", nil, time.Time{}); msg != "" || got.In(berlin).Format(DateTimeLocal) != "2027-10-31T02:30" {
		t.Errorf("a new 02:30 on October 31: %v %q", got, msg)
	}
}

// In the hour the clocks go back, a time typed for later in that hour is
// the one still to come: in New York 01:50 on November 7 is first 05:50 UTC
// (EDT), then 06:50 (EST); at 01:10 EST the first has passed, the second
// has not, and the form took the first and refused it as past.
func TestMailingTimeTheClocksPassTwice(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2027, 11, 7, 6, 10, 0, 0, time.UTC) // 01:10 EST, the second 01:10
	f := &Mailing{MessageID: "1", StartsAt: "2027-11-07T01:50", EndsAt: "2027-11-07T01:55", Repeat: "once", RecipientIDs: "1"}
	p, errs := f.Validate(Rules{Now: now, Location: ny})
	if errs.Any() {
		t.Fatalf("a time still to come refused: %v", errs)
	}
	if want := time.Date(2027, 11, 7, 6, 50, 0, 0, time.UTC); !p.StartsAt.Equal(want) || !p.EndsAt.Equal(want.Add(5*time.Minute)) {
		t.Errorf("stored %v → %v, want %v → +5m", p.StartsAt, p.EndsAt, want)
	}
	// Before the clocks go back, the first is still to come, and is taken.
	now = time.Date(2027, 11, 7, 5, 10, 0, 0, time.UTC) // 01:10 EDT
	if p, errs := f.Validate(Rules{Now: now, Location: ny}); errs.Any() || !p.StartsAt.Equal(time.Date(2027, 11, 7, 5, 50, 0, 0, time.UTC)) {
		t.Errorf("the first 01:50: %v %v", p.StartsAt, errs)
	}
}

// An edited mailing that kept its start, now past, still needs an end in
// the future.
func TestMailingEndInTheFuture(t *testing.T) {
	now := time.Date(2027, 5, 1, 12, 0, 0, 0, time.UTC)
	stored := now.Add(-48 * time.Hour)
	f := &Mailing{MessageID: "1", StartsAt: stored.Format(DateTimeLocal), EndsAt: now.Add(-time.Hour).Format(DateTimeLocal), Repeat: "once", RecipientIDs: "1"}
	if _, errs := f.Validate(Rules{Now: now, StoredStart: &stored}); errs["ends_at"] == "" || errs["starts_at"] != "" {
		t.Errorf("a past end after a kept start: %v", errs)
	}
	f.EndsAt = now.Add(time.Hour).Format(DateTimeLocal)
	if _, errs := f.Validate(Rules{Now: now, StoredStart: &stored}); errs.Any() {
		t.Errorf("a future end after a kept start: %v", errs)
	}
}

// A running mailing's end before its first send (locked: a run went out
// under it, "Send now" before its time) says when that is, and that
// switching the mailing off stops its sends sooner.
func TestRunningMailingEndBeforeItsFirstSend(t *testing.T) {
	now := time.Date(2027, 5, 1, 12, 0, 0, 0, time.UTC)
	stored := now.Add(48 * time.Hour)
	f := &Mailing{MessageID: "1", EndsAt: now.Add(time.Hour).Format(DateTimeLocal), Repeat: "once", RecipientIDs: "1"}
	_, errs := f.Validate(Rules{Now: now, Running: true, StoredStart: &stored})
	if want := "The end of sending must be after the first send, 3 May 2027 12:00. To stop its sends before then, switch the mailing off."; errs["ends_at"] != want {
		t.Errorf("ends_at: %q, want %q", errs["ends_at"], want)
	}
}

// Forms of a time a browser may send, or a person type, other than the
// usual one are read as they are.
func TestLocalTimeOtherForms(t *testing.T) {
	want := time.Date(2027, 5, 1, 9, 0, 0, 0, time.UTC)
	for _, v := range []string{"2027-05-01T09:00", "2027-05-01T09:00:00", "2027-05-01T09:00:00.000", "2027-05-01T9:00"} {
		if got, _, msg := localTime(v, time.UTC, "the first send", nil, time.Time{}); msg != "" || !got.Equal(want) {
			t.Errorf("%s: %v %q", v, got, msg)
		}
	}
}

// A single line may end with a line break that trimming removes.
func TestLine(t *testing.T) {
	for in, ok := range map[string]bool{"Bob\n": true, " Bob ": true, "Bob\nBcc: x": false, "A\rB": false} {
		if _, msg := Line(in, false, 100, "a name"); (msg == "") != ok {
			t.Errorf("Line(%q): %q", in, msg)
		}
	}
	// A required line that shows nothing (zero-width and direction marks
	// only) is missing; one that shows something with them is kept.
	for in, ok := range map[string]bool{"\u200b": false, " \u200e\u200f\u2060 ": false, "Bob\u200d": true, "\u200fשלום": true} {
		if _, msg := Line(in, true, 100, "your name"); (msg == "") != ok {
			t.Errorf("required Line(%q): %q", in, msg)
		}
	}
}

// One recipient's mailbox is one address however its internationalized
// domain was typed: the ASCII form and the Unicode form, in any case, read
// the same.
func TestRecipientEmailInternationalDomain(t *testing.T) {
	for in, want := range map[string]string{
		"Ann@XN--BCHER-KVA.de":      "ann@bücher.de",
		"ann@Bücher.DE":             "ann@bücher.de",
		"ann@bücher.de":             "ann@bücher.de",
		"ann@xn--e1afmkfd.xn--p1ai": "ann@пример.рф",
		"Ann@Example.com":           "ann@example.com",
		"ann@my_host.example.com":   "ann@my_host.example.com",
		"ann@xn--zz.example.com":    "ann@xn--zz.example.com",
	} {
		if got, msg := RecipientEmail(in); msg != "" || got != want {
			t.Errorf("RecipientEmail(%q) = %q %q, want %q", in, got, msg, want)
		}
	}
}

// A recipient's address whose domain can receive no mail is refused when
// the client is saved, not found out by a failed send.
func TestRecipientEmailUndeliverableDomain(t *testing.T) {
	for _, in := range []string{
		"ann@" + strings.Repeat("a", 64) + ".com", "ann@-bad-.com", "ann@bad-.com", "ann@123.456", "ann@[127.0.0.1]",
		"ann@ex--ample.рф", // no ASCII form: it would go out in UTF-8
	} {
		if _, msg := RecipientEmail(in); !strings.Contains(msg, "cannot receive mail") {
			t.Errorf("RecipientEmail(%q): %q", in, msg)
		}
	}
	for _, in := range []string{"ann@" + strings.Repeat("a", 63) + ".com", "ann@1.example.com", "ann@x-y.example.com", "ann@my_host.example.com", "ann@пример.рф"} {
		if _, msg := RecipientEmail(in); msg != "" {
			t.Errorf("RecipientEmail(%q): %q", in, msg)
		}
	}
}

// Of a time the clocks go back over, a new one is the first of the two
// in every zone (parsing took the second east of UTC and the first west
// of it), and one still to come when the first has passed.
func TestLocalTimeTwiceIsTheFirst(t *testing.T) {
	for _, tc := range []struct {
		zone, wall string
		want       time.Time
	}{
		{"Europe/Berlin", "2027-10-31T02:30", time.Date(2027, 10, 31, 0, 30, 0, 0, time.UTC)},
		{"Europe/London", "2027-10-31T01:30", time.Date(2027, 10, 31, 0, 30, 0, 0, time.UTC)},
		{"Australia/Sydney", "2027-04-04T02:30", time.Date(2027, 4, 3, 15, 30, 0, 0, time.UTC)},
		{"America/New_York", "2027-11-07T01:30", time.Date(2027, 11, 7, 5, 30, 0, 0, time.UTC)},
	} {
		loc, err := time.LoadLocation(tc.zone)
		if err != nil {
			t.Fatal(err)
		}
		if got, _, msg := localTime(tc.wall, loc, "the first send", nil, time.Time{}); msg != "" || !got.Equal(tc.want) {
			t.Errorf("%s %s: %v %q, want the first, %v", tc.zone, tc.wall, got, msg, tc.want)
		}
	}
}

// A date the database could store but not give back (past 9999 in UTC) is
// refused with a message, not a failure of the page.
func TestLocalTimeFarFuture(t *testing.T) {
	la, _ := time.LoadLocation("America/Los_Angeles")
	if _, _, msg := localTime("9999-12-31T23:59", la, "the end of sending", nil, time.Time{}); !strings.Contains(msg, "before the year 9999") {
		t.Errorf("9999-12-31 in Los Angeles: %q", msg)
	}
	if _, _, msg := localTime("2999-12-31T23:59", la, "the end of sending", nil, time.Time{}); msg != "" {
		t.Errorf("2999-12-31: %q", msg)
	}
	// The year is the one typed: the last evening of 9998 in Los Angeles
	// (9999 in UTC) is before it, and the first minute of 9999 in Tokyo
	// (9998 in UTC) is not.
	if _, _, msg := localTime("9998-12-31T20:00", la, "the end of sending", nil, time.Time{}); msg != "" {
		t.Errorf("9998-12-31 20:00 in Los Angeles: %q", msg)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	if _, _, msg := localTime("9999-01-01T00:00", tokyo, "the end of sending", nil, time.Time{}); !strings.Contains(msg, "before the year 9999") {
		t.Errorf("9999-01-01 00:00 in Tokyo: %q", msg)
	}
}

// A message's subject is one line whatever the line break, and its
// placeholders are written as the mail fills them in: one with a brace
// too many or too few would go out with stray braces to everyone.
func TestMessagePlaceholdersAndSubjectLine(t *testing.T) {
	for body, ok := range map[string]bool{
		"Dear {{name}},":                true,
		"Dear {{ name }}, at {{email}}": true,
		"Dear {name}},":                 false,
		"Dear {{name}}},":               false,
		"Dear {{{name}}},":              false,
		"Dear {name},":                  false,
		"Dear {{name},":                 false,
		"Braces {} in text":             true,
		"JSON {\"a\": {\"b\": 1}}":      true,
		"Code: if a { if b { c() }}":    true,
		"Templates {{ }} and {{1}}":     true,
		"Dear {{first_name}},":          false,
		"Dear {{name\u00a0}},":          false,
		"Dear {{first_name,":            false,
		"Dear {first_name}},":           false,
	} {
		m := &Message{Subject: "Hi", Body: body}
		if errs := m.Validate(); (errs["body"] == "") != ok {
			t.Errorf("body %q: %v", body, errs)
		}
	}
	for _, subject := range []string{"Hi\u2028there", "Hi\u2029there", "Hi\u0085there"} {
		m := &Message{Subject: subject, Body: "x"}
		if errs := m.Validate(); errs["subject"] == "" {
			t.Errorf("subject %q accepted", subject)
		}
	}
}
