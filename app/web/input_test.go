package web_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

// A NUL byte, which PostgreSQL cannot store, is refused beside its field,
// and in a search it finds what the rest of the search finds, instead of
// failing the request.
func TestNulInInput(t *testing.T) {
	_, c, _, _ := signedInWithObjects(t)
	for _, tc := range []struct {
		path, field string
		form        url.Values
	}{
		{"/clients", "full_name", url.Values{"email": {"x@example.com"}, "full_name": {"Ann\x00"}}},
		{"/clients", "comment", url.Values{"email": {"y@example.com"}, "comment": {"a\x00b"}}},
		{"/messages", "subject", url.Values{"subject": {"Hi\x00"}, "body": {"Body"}}},
		{"/messages", "body", url.Values{"subject": {"Hi"}, "body": {"Bo\x00dy"}}},
		{"/clients", "full_name", url.Values{"email": {"z@example.com"}, "full_name": {"Ann\nBcc: x@example.com"}}},
		{"/account", "full_name", url.Values{"full_name": {"Ann\r\nB"}, "time_zone": {"UTC"}}},
	} {
		resp, body := c.post(t, tc.path, tc.form)
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if fieldError(t, body, tc.field) == "" {
			t.Errorf("%s: no error beside %s", tc.path, tc.field)
		}
	}
	for _, p := range []string{"/clients?q=", "/messages?q=", "/mailings/picker?picker_q=", "/mailings/picker/ids?q="} {
		resp, body := c.request(t, "GET", p+"a%00", nil, p == "/mailings/picker?picker_q=")
		wantStatus(t, resp, body, http.StatusOK)
	}
	for _, list := range []struct{ path, row string }{{"/clients", "client-row"}, {"/messages", "message-row"}} {
		rows := func(q string) int {
			resp, body := c.get(t, list.path+"?q="+q)
			wantStatus(t, resp, body, http.StatusOK)
			return parseHTML(t, body).Find("[data-testid=" + list.row + "]").Length()
		}
		if with, without := rows("se%00cret"), rows("secret"); without == 0 || with != without {
			t.Errorf("%s: a search with a NUL finds %d rows, without it %d", list.path, with, without)
		}
	}
}

// Editing a mailing whose message is older than the messages the form
// offers still offers, and selects, that message.
func TestMailingFormKeepsAnOldMessage(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	if _, err := e.db.ExecContext(ctx, `INSERT INTO messages (owner_id, subject, body) SELECT ?, 'Newer ' || g, 'b' FROM generate_series(1, 600) AS g`, ann.ID); err != nil {
		t.Fatal(err)
	}
	resp, body := c.get(t, "/mailings/"+id(o.mailing.ID)+"/edit")
	wantStatus(t, resp, body, http.StatusOK)
	if got, _ := parseHTML(t, body).Find(`select[name=message_id] option[selected]`).Attr("value"); got != id(o.message.ID) {
		t.Fatalf("selected message %q, want %d", got, o.message.ID)
	}
}
