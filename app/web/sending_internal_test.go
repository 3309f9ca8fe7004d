package web

import "testing"

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
