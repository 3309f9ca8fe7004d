package web

import (
	"testing"
	"time"

	"rassylka/app/sending"
	"rassylka/app/store"
)

// What a run's start says writes its figures as the pages do ("20 000",
// with a narrow space), so that a screen reader reads them alike.
func TestSendingNoticeFigures(t *testing.T) {
	for _, tc := range []struct {
		total, mailable int
		want            string
	}{
		{1, 1, "Sending to 1 recipient."},
		{20000, 20000, "Sending to 20\u202f000 recipients."},
		{20000, 19999, "Sending to 19\u202f999 of 20\u202f000 recipients; 1 has unsubscribed or bounced and is skipped."},
		{20000, 18000, "Sending to 18\u202f000 of 20\u202f000 recipients; 2\u202f000 have unsubscribed or bounced and are skipped."},
		{1, 0, "No one to send to: the only recipient has unsubscribed or bounced, so the run skips them."},
		{1500, 0, "No one to send to: all 1\u202f500 recipients have unsubscribed or bounced, so the run skips them."},
	} {
		if got := sendingNotice(tc.total, tc.mailable); got != tc.want {
			t.Errorf("%d of %d: %q, want %q", tc.mailable, tc.total, got, tc.want)
		}
	}
}

// Switched on, a repeating mailing says which of its sends were skipped:
// the one, or from the first to the last, and when the next is.
func TestSwitchNoteNamesTheSkippedSends(t *testing.T) {
	day := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	next := day.AddDate(0, 0, 3)
	r := &store.MailingRow{}
	for _, tc := range []struct {
		skipped sending.Skipped
		want    string
	}{
		{sending.Skipped{First: day, Last: day, Next: &next},
			"Mailing enabled. Its send due 2026-11-27 09:00 UTC, while it was off, is skipped: the next is 2026-11-30 09:00 UTC. Send now sends it at once."},
		{sending.Skipped{First: day, Last: day.AddDate(0, 0, 2), Next: &next},
			"Mailing enabled. The sends it missed, due from 2026-11-27 09:00 UTC to 2026-11-29 09:00 UTC, are skipped: the next is 2026-11-30 09:00 UTC. Send now sends it at once."},
		{sending.Skipped{First: day, Last: day},
			"Mailing enabled. Its send due 2026-11-27 09:00 UTC, while it was off, is skipped, and its window closes before another. Send now sends it at once."},
	} {
		if got := switchNote(false, r, &tc.skipped, "UTC"); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}
