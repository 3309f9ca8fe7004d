package web_test

import (
	"context"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"rassylka/app/mail"
	"rassylka/app/model"
	"rassylka/app/store"
)

func TestMessagesCRUD(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")

	resp, body := c.get(t, "/messages")
	wantStatus(t, resp, body, http.StatusOK)
	if parseHTML(t, body).Find("[data-testid=empty]").Length() != 1 {
		t.Fatal("no empty state")
	}
	for _, tc := range []struct{ field, subject, body string }{
		{"subject", "", "Text"},
		{"subject", "Hello\r\nBcc: everyone@example.com", "Text"},
		{"subject", "Hello\nthere", "Text"},
		{"subject", strings.Repeat("s", 256), "Text"},
		{"body", "Hello", "   "},
		{"body", "Hello", strings.Repeat("b", 100001)},
	} {
		resp, body := c.post(t, "/messages", url.Values{"subject": {tc.subject}, "body": {tc.body}})
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if fieldError(t, body, tc.field) == "" {
			t.Errorf("no error beside %s for subject %q", tc.field, tc.subject)
		}
		if tc.field == "body" && inputValue(t, body, "subject") != tc.subject {
			t.Errorf("typed subject lost")
		}
	}
	resp, body = c.post(t, "/messages", url.Values{"subject": {"Hi {{name}}"}, "body": {"Dear {{ name }},\r\nyour address is {{email}}."}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	loc := resp.Header.Get("Location")

	// Preview with a sample recipient, then with the owner's first client.
	resp, body = c.get(t, loc)
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	if got := doc.Find("[data-testid=preview-subject]").Text(); got != "Hi Jane Doe" {
		t.Errorf("preview subject %q", got)
	}
	if got := doc.Find("[data-testid=preview]").Text(); !strings.Contains(got, "From: "+e.cfg.MailFrom) || strings.Contains(got, "Reply-To") {
		t.Errorf("preview without a reply address: %q", got)
	}
	// The body ends with the footer each mail gets, without a link that
	// would work.
	if got, want := doc.Find("[data-testid=preview-body]").Text(), "Dear Jane Doe,\nyour address is jane.doe@example.com.\n\n-- \nTo stop receiving these mails: "+e.cfg.BaseURL+"/u/…\n"; got != want {
		t.Errorf("preview body %q, want %q", got, want)
	}
	if err := e.store.CreateClient(ctx, &model.Client{OwnerID: ann.ID, Email: "zoe@example.com", FullName: "Zoë"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpdateProfile(ctx, ann.ID, store.Profile{FullName: ann.FullName, TimeZone: ann.TimeZone, SenderName: "Ann's Shop"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetReplyTo(ctx, ann.ID, "desk@example.org", ""); err != nil {
		t.Fatal(err)
	}
	_, body = c.get(t, loc)
	if got := parseHTML(t, body).Find("[data-testid=preview]").Text(); !strings.Contains(got, "From: Ann's Shop <no-reply@rassylka.test>") {
		t.Errorf("preview with a sender name: %q", got)
	}
	if got := parseHTML(t, body).Find("[data-testid=preview-subject]").Text(); got != "Hi Zoë" {
		t.Errorf("preview with the owner's client: %q", got)
	}
	// The owner's reply address, as their mail carries it; a manager
	// reading the message sees the owner's.
	if got := parseHTML(t, body).Find("[data-testid=preview-reply-to]").Text(); got != "desk@example.org" {
		t.Errorf("preview Reply-To %q", got)
	}
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	if _, body := boss.get(t, loc); parseHTML(t, body).Find("[data-testid=preview-reply-to]").Text() != "desk@example.org" {
		t.Errorf("a manager's preview shows no Reply-To:\n%s", body)
	}

	resp, body = c.get(t, loc+"/edit")
	wantStatus(t, resp, body, http.StatusOK)
	resp, body = c.post(t, loc, url.Values{"subject": {"Changed"}, "body": {""}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if inputValue(t, body, "subject") != "Changed" {
		t.Error("typed subject lost on edit")
	}
	resp, body = c.post(t, loc, url.Values{"subject": {"Changed"}, "body": {"New text"}})
	wantRedirect(t, resp, body, loc)

	// Search by subject.
	resp, body = c.request(t, "GET", "/messages?q=chang", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	if parseHTML(t, body).Find("[data-testid=message-row]").Length() != 1 {
		t.Errorf("search found nothing:\n%s", body)
	}

	// A message a mailing uses cannot be deleted; an unused one can.
	o := makeObjects(t, e, ann)
	resp, body = c.post(t, "/messages/"+id(o.message.ID)+"/delete", nil)
	wantRedirect(t, resp, body, "/messages/"+id(o.message.ID))
	_, body = c.get(t, "/messages/"+id(o.message.ID))
	if !strings.Contains(body, "Mailings use this message") {
		t.Errorf("refusal not explained")
	}
	resp, body = c.post(t, loc+"/delete", nil)
	wantRedirect(t, resp, body, "/messages")
	resp, body = c.get(t, loc)
	wantStatus(t, resp, body, http.StatusNotFound)
}

// Only {{name}} and {{email}} are filled in: a mistyped or unclosed
// placeholder would go out as typed to every recipient, so the form says
// so beside the field instead of saving it.
func TestMessagePlaceholdersChecked(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	for _, tc := range []struct{ field, subject, body, mention string }{
		{"body", "Hello", "Dear {{Name}},\nnews.", "{{Name}}"},
		{"body", "Hello", "Dear {{first_name}},\nnews.", "{{first_name}}"},
		{"body", "Hello", "Dear {{name},\nnews.", "{{name}"},
		{"subject", "Hi {{ nmae }}", "Text", "{{ nmae }}"},
		// A brace too many or too few goes out with a stray brace.
		{"body", "Hello", "Dear {{{name}}},\nnews.", "{{name}}"},
		{"body", "Hello", "Dear {name}},\nnews.", "}}"},
		{"body", "Hello", "Dear {name},\nnews.", "{name}"},
	} {
		resp, body := c.post(t, "/messages", url.Values{"subject": {tc.subject}, "body": {tc.body}})
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("subject %q, body %q: status %d, want 422 (saved; it would send the placeholder as typed)", tc.subject, tc.body, resp.StatusCode)
			continue
		}
		if msg := fieldError(t, body, tc.field); !strings.Contains(msg, tc.mention) {
			t.Errorf("error beside %s: %q, want it to name %s", tc.field, msg, tc.mention)
		}
	}
	// Known ones, with spaces inside the braces, and lone braces pass.
	resp, body := c.post(t, "/messages", url.Values{"subject": {"Hi {{ name }}"}, "body": {"{{email}}: {x} and {{name}}, {}"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
}

// The check of placeholders and the mail's filling-in agree on what a
// placeholder is: one the form lets through is filled in, and one that
// would not be filled in (a no-break space inside the braces, as a Mac's
// Option-Space types it) is refused beside its field.
func TestMessagePlaceholderCheckMatchesFilling(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	for _, s := range []string{"{{\u00a0name}}", "{{name\u00a0}}", "{{\u2003email}}", "{{name\v}}"} {
		filled := mail.Personalize(s, "Ann", "ann@example.com")
		resp, body := c.post(t, "/messages", url.Values{"subject": {"Hello"}, "body": {"Dear " + s + ",\nnews."}})
		if filled == s && resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("body %q: status %d, want 422: it goes out as typed (%q)", s, resp.StatusCode, filled)
		}
		if filled != s {
			wantStatus(t, resp, body, http.StatusSeeOther)
		}
	}
}

// A body may open with blank lines. HTML drops the first line break after
// <textarea> and <pre>, so unless the page puts one there for it to drop,
// the edit form loses a blank line on every save and the preview shows one
// fewer than the mail has.
func TestMessageBodyKeepsLeadingBlankLines(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	const text = "\n\nDear {{name}},\nnews."
	resp, body := c.post(t, "/messages", url.Values{"subject": {"Hello"}, "body": {text}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	loc := resp.Header.Get("Location")

	_, body = c.get(t, loc)
	if got := parseHTML(t, body).Find("[data-testid=preview-body]").Text(); !strings.HasPrefix(got, "\n\nDear Jane Doe,\nnews.\n\n-- \n") {
		t.Errorf("preview body %q, want the blank lines the mail has", got)
	}
	_, body = c.get(t, loc+"/edit")
	if got := parseHTML(t, body).Find("textarea[name=body]").Text(); got != text {
		t.Errorf("edit form holds %q, want %q", got, text)
	}
	// A rejected form shows the body as typed too.
	resp, body = c.post(t, loc, url.Values{"subject": {""}, "body": {text}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if got := parseHTML(t, body).Find("textarea[name=body]").Text(); got != text {
		t.Errorf("rejected form holds %q, want %q", got, text)
	}
}

// A message used by one mailing says so in the singular, in the list and
// on its page ("1 mailings" before).
func TestMessageUsedByOneMailing(t *testing.T) {
	_, c, _, o := signedInWithObjects(t)
	resp, body := c.get(t, "/messages")
	wantStatus(t, resp, body, http.StatusOK)
	if got := strings.TrimSpace(parseHTML(t, body).Find("[data-testid=message-row] td:nth-child(2)").Text()); got != "1 mailing" {
		t.Errorf("the list says %q, want 1 mailing", got)
	}
	resp, body = c.get(t, "/messages/"+id(o.message.ID))
	wantStatus(t, resp, body, http.StatusOK)
	if got := strings.Join(strings.Fields(parseHTML(t, body).Find("[data-testid=message-show] header p").Text()), " "); !strings.HasPrefix(got, "Used by 1 mailing ·") {
		t.Errorf("the page says %q, want Used by 1 mailing · …", got)
	}
}

// "Send me a test" mails the message to its owner, filled in for them,
// through the worker; it is no run, is the owner's alone, and is limited.
func TestSendMeATest(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	// The test goes with the reply address the mailings' mail has.
	if err := e.store.UpdateProfile(ctx, ann.ID, store.Profile{FullName: ann.FullName, TimeZone: ann.TimeZone, SenderName: "Ann's Shop"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetReplyTo(ctx, ann.ID, "desk@example.org", ""); err != nil {
		t.Fatal(err)
	}
	m := &model.Message{OwnerID: ann.ID, Subject: "Hi {{name}}", Body: "Dear {{name}},\nthis goes to {{ email }}."}
	if err := e.store.CreateMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	page := "/messages/" + itoa(m.ID)
	_, body := c.get(t, page)
	form := parseHTML(t, body).Find(`form[action="` + page + `/test"]`)
	if form.Find("[data-testid=send-test]").Length() != 1 || form.Find("input[name=_csrf]").Length() != 1 || !strings.Contains(form.Text(), "To ann@example.com") {
		t.Fatalf("no test form on the message page:\n%s", body)
	}

	resp, body := c.post(t, page+"/test", nil)
	wantRedirect(t, resp, body, page)
	if flash := flashAfter(t, c, resp); flash != "A test of this message is on its way to ann@example.com." {
		t.Errorf("after the test: %q", flash)
	}
	got, _ := e.waitMail(t, sink, 1)
	h := got.Header()
	subject, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if strings.Join(got.To, ",") != "ann@example.com" || subject != "[Test] Hi ann" || h.Get("Message-Id") == "" {
		t.Errorf("test mail to %v, subject %q, Message-ID %q", got.To, subject, h.Get("Message-Id"))
	}
	if r := h.Get("Reply-To"); r != "<desk@example.org>" {
		t.Errorf("test mail Reply-To %q", r)
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Name != "Ann's Shop" || from[0].Address != "no-reply@rassylka.test" {
		t.Errorf("test mail From %q: %v, %v", h.Get("From"), from, err)
	}
	if body, want := strings.ReplaceAll(got.Body(), "\r\n", "\n"), "Dear ann,\nthis goes to ann@example.com.\n\n-- \nTo stop receiving these mails: [each recipient's own link]\n"; body != want {
		t.Errorf("test mail body %q, want %q", body, want)
	}
	var runs int
	if err := e.db.NewSelect().TableExpr("runs").ColumnExpr("count(*)").Scan(ctx, &runs); err != nil || runs != 0 {
		t.Errorf("a test made %d runs (%v)", runs, err)
	}

	// Another's message is not found, for a manager too (who reads it
	// without the button); without the CSRF token nothing is sent.
	bob := signedIn(t, e, "bob@example.com", model.RoleUser)
	resp, body = bob.post(t, page+"/test", nil)
	wantStatus(t, resp, body, http.StatusNotFound)
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	_, body = boss.get(t, page)
	if parseHTML(t, body).Find("[data-testid=send-test]").Length() != 0 {
		t.Error("a manager is offered a test of another's message")
	}
	resp, body = boss.post(t, page+"/test", nil)
	wantStatus(t, resp, body, http.StatusNotFound)
	resp, body = c.post(t, page+"/test", url.Values{"_csrf": {"forged"}})
	wantStatus(t, resp, body, http.StatusForbidden)

	// Ten an hour: the eleventh is refused, saying until when.
	for i := 2; i <= 10; i++ {
		resp, body = c.post(t, page+"/test", nil)
		wantRedirect(t, resp, body, page)
	}
	resp, body = c.post(t, page+"/test", nil)
	wantRedirect(t, resp, body, page)
	if flash := flashAfter(t, c, resp); flash != "You have sent 10 tests in the last hour. Please try again in 60 minutes." || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the eleventh test: %q (Retry-After %q)", flash, resp.Header.Get("Retry-After"))
	}
	e.waitMail(t, sink, 10)
	wait, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if msgs, err := sink.Wait(wait, 11); err == nil {
		t.Errorf("%d test mails sent, want 10", len(msgs))
	}
}
