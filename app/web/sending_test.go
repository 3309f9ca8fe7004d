package web_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"rassylka/app/web"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"rassylka/app/mail"
	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

// Send now's question says how many the run mails: the recipients who
// unsubscribed or bounced are skipped (other such clients of the owner's
// are not counted).
func TestSendNowAsksHowManyItMails(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	m := mailingWithRecipients(t, e, ann, 5)
	sendableNow(t, e, m.ID)
	other := &model.Client{OwnerID: ann.ID, Email: "not-a-recipient@example.com"}
	if err := e.store.CreateClient(ctx, other); err != nil {
		t.Fatal(err)
	}
	ids, _ := e.store.RecipientIDs(ctx, m.ID)
	mark := func(col string, ids ...int64) {
		t.Helper()
		if _, err := e.db.NewRaw("UPDATE clients SET "+col+" = now() WHERE id = ANY(?)", pgdialect.Array(ids)).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mark("unsubscribed_at", ids[0], other.ID)
	mark("bounced_at", ids[1])
	question := func() string {
		t.Helper()
		_, body := c.get(t, "/mailings/"+id(m.ID))
		q, _ := parseHTML(t, body).Find("form:has([data-testid=send-now])").Attr("data-confirm")
		return q
	}
	if q, want := question(), "Send this mailing to 3 of its 5 recipients now? 2 have unsubscribed or bounced and will be skipped."; q != want {
		t.Errorf("Send now asks %q, want %q", q, want)
	}
	mark("unsubscribed_at", ids[2:]...)
	if q := question(); !strings.HasPrefix(q, "Every recipient of this mailing has unsubscribed or bounced") {
		t.Errorf("with no one to mail, Send now asks %q", q)
	}
}

func TestSendNowAndProgress(t *testing.T) {
	e := newEnv(t)
	sink := e.withWorker(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	o := makeObjects(t, e, ann)
	// The window is open now.
	sendableNow(t, e, o.mailing.ID)
	path := "/mailings/" + id(o.mailing.ID)

	_, body := c.get(t, path)
	if parseHTML(t, body).Find("[data-testid=send-now]").Length() != 1 {
		t.Fatalf("no Send now button:\n%s", body)
	}
	// Mail sent cannot be called back: the button asks first, naming how
	// many it goes to.
	if q, _ := parseHTML(t, body).Find("form:has([data-testid=send-now])").Attr("data-confirm"); q != "Send this mailing to its 1 recipient now?" {
		t.Errorf("Send now asks %q first", q)
	}
	// Before any run, with none planned, the box does not poll; with a
	// scheduled run planned, it watches slowly for it to start.
	if strings.Contains(body, "hx-trigger") {
		t.Fatalf("the page of a mailing with no run planned polls:\n%s", body)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET next_run_at = now() + interval '1 hour' WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if _, body = c.get(t, path); !strings.Contains(body, `hx-trigger="every 10s"`) || !strings.Contains(body, `hx-get="`+path+`/progress?seen=0"`) {
		t.Fatalf("the page of a mailing with a run planned does not watch for it:\n%s", body)
	}
	// A run by hand of a repeating mailing does not replace the planned
	// one; of a one-off mailing, it takes the place of its one send
	// (which would mail everyone again): the question says which.
	sendAsks := func() string {
		t.Helper()
		_, body := c.get(t, path)
		q, _ := parseHTML(t, body).Find("form:has([data-testid=send-now])").Attr("data-confirm")
		return q
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET repeat = 'daily' WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if q := sendAsks(); !strings.HasPrefix(q, "Send this mailing to its 1 recipient now? The send planned for ") || !strings.HasSuffix(q, " still goes out.") {
		t.Errorf("with a send planned, Send now of a repeating mailing asks %q", q)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET repeat = 'once' WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if q := sendAsks(); !strings.HasPrefix(q, "Send this mailing to its 1 recipient now? It takes the place of the send planned for ") {
		t.Errorf("with its send planned, Send now of a one-off mailing asks %q", q)
	}
	planned, err := e.store.MailingByID(ctx, store.Own(ann.ID), o.mailing.ID)
	if err != nil || planned.NextRunAt == nil {
		t.Fatalf("mailing %+v, %v: want its send planned", planned, err)
	}
	if err := (task.Queue{Client: e.deps.Queue}).PlanRun(ctx, o.mailing.ID, *planned.NextRunAt); err != nil {
		t.Fatal(err)
	}
	ro := e.redis.Options()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: ro.Addr, DB: ro.DB})
	defer insp.Close()
	plannedTasks := func() int {
		t.Helper()
		tasks, err := insp.ListScheduledTasks("default")
		if err != nil {
			t.Fatal(err)
		}
		return len(tasks)
	}
	if n := plannedTasks(); n != 1 {
		t.Fatalf("%d planned tasks, want the send's", n)
	}
	// Its one send is its first, still to come.
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET starts_at = next_run_at WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	resp, body := c.post(t, path+"/send", nil)
	wantRedirect(t, resp, body, path)
	e.waitMail(t, sink, 1)
	if m, err := e.store.MailingByID(ctx, store.Own(ann.ID), o.mailing.ID); err != nil || m.NextRunAt != nil {
		t.Fatalf("mailing %+v, %v after Send now: want no send planned any more", m, err)
	}
	if n := plannedTasks(); n != 0 {
		t.Error("the planned send's task is still queued after Send now took its place")
	}
	// The page says so beside the first send, which read as the send to
	// come.
	if note := c.page(t, path).Find("[data-testid=starts-note]").Text(); note != "not sent then: “Send now” sent it already" {
		t.Errorf("the first send's note after Send now took its place: %q", note)
	}

	// The progress fragment polls (where the box says) until the run is
	// done, then answers 286, and has the page reloaded: its buttons and
	// runs table change too.
	deadline := time.Now().Add(15 * time.Second)
	poll := path + "/progress"
	for polls := 0; ; polls++ {
		resp, body = c.request(t, "GET", poll, nil, true)
		if resp.StatusCode == 286 {
			if refresh := resp.Header.Get("HX-Refresh"); (refresh == "true") != (polls > 0) {
				t.Fatalf("run over after %d polls of %s: HX-Refresh %q", polls, poll, refresh)
			}
			break
		}
		wantStatus(t, resp, body, http.StatusOK)
		if !strings.Contains(body, `hx-trigger="every 1s"`) || resp.Header.Get("HX-Refresh") != "" {
			t.Fatalf("an active run's progress does not poll, or reloads:\n%s", body)
		}
		poll, _ = parseHTML(t, body).Find("[data-testid=run-progress]").Attr("hx-get")
		if time.Now().After(deadline) {
			t.Fatal("the run never finished")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A box that followed the run, polling after its end, has the page
	// reloaded; one that did not (the page opened after) is just stopped.
	last, err := e.store.LatestRun(ctx, o.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	// So has a box polling slowly on a page shown before the run started
	// (a scheduled run starts while the page is open): its status, runs
	// table and buttons change.
	for poll, want := range map[string]string{path + "/progress?run=" + id(last.ID): "true", path + "/progress": "",
		path + "/progress?seen=0": "true", path + "/progress?seen=" + id(last.ID): ""} {
		if resp, _ := c.request(t, "GET", poll, nil, true); resp.StatusCode != 286 || resp.Header.Get("HX-Refresh") != want {
			t.Errorf("%s after the run: %d, HX-Refresh %q, want 286, %q", poll, resp.StatusCode, resp.Header.Get("HX-Refresh"), want)
		}
	}
	// Done: no more fast polling; the open mailing is watched slowly for
	// its next run, when one is planned (a repeating mailing's).
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET repeat = 'daily', next_run_at = now() + interval '1 hour' WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	_, body = c.request(t, "GET", path+"/progress", nil, true)
	doc := parseHTML(t, body)
	if doc.Find("[data-testid=progress-sent]").Text() != "1" || doc.Find("[data-testid=progress-total]").Text() != "1" ||
		strings.Contains(body, "every 1s") || !strings.Contains(body, `hx-trigger="every 10s"`) {
		t.Fatalf("final progress:\n%s", body)
	}
	// With no run planned any more (a one-off mailing's scheduled run has
	// been), the box answered 286 does not poll again.
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET next_run_at = NULL WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if resp, body := c.request(t, "GET", path+"/progress", nil, true); resp.StatusCode != 286 || strings.Contains(body, "hx-trigger") {
		t.Fatalf("the progress of a mailing with no run planned: %d\n%s", resp.StatusCode, body)
	}
	_, body = c.get(t, path)
	if parseHTML(t, body).Find("[data-testid=runs-table] tbody tr").Length() != 1 || !strings.Contains(body, "250") {
		t.Fatalf("mailing page after the run:\n%s", body)
	}
	// Sending again (a second click once a short run has ended) is asked
	// about as such.
	if q := sendAsks(); !strings.HasPrefix(q, "Send this mailing to its 1 recipient now? It was last sent ") || !strings.HasSuffix(q, ": those it reached then will get it again.") {
		t.Errorf("after a run, Send now asks %q", q)
	}
	// The progress URL opened as a page shows the mailing's whole page,
	// its status saying the run is done as the box's does.
	resp, body = c.get(t, path+"/progress")
	wantStatus(t, resp, body, web.StatusStopPolling)
	if doc := parseHTML(t, body); doc.Find("[data-testid=viewer]").Length() != 1 || doc.Find("[data-testid=runs-table]").Length() != 1 {
		t.Fatalf("progress as a page:\n%.400s", body)
	}

	// Refusals are explained.
	if err := e.store.SetMailingDisabled(ctx, store.Own(ann.ID), o.mailing.ID, ann.ID, true); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, path+"/send", nil)
	wantRedirect(t, resp, body, path)
	_, body = c.get(t, path)
	if !strings.Contains(body, "disabled; enable it to send") {
		t.Errorf("refusal not explained:\n%s", body)
	}
	if strings.Contains(body, "hx-trigger") {
		t.Errorf("a disabled mailing's page polls for runs:\n%s", body)
	}
	resp, body = c.post(t, path+"/retry", nil)
	wantRedirect(t, resp, body, path)

	// Switched off by a manager, the owner is not told to switch it on.
	boss := newUser(t, e, "boss@example.com", model.RoleManager)
	for _, by := range []int64{ann.ID, boss.ID} {
		if err := e.store.SetMailingDisabled(ctx, store.Everyone(0), o.mailing.ID, by, by == boss.ID); err != nil {
			t.Fatal(err)
		}
	}
	resp, body = c.post(t, path+"/send", nil)
	wantRedirect(t, resp, body, path)
	if _, body = c.get(t, path); !strings.Contains(body, "only a manager can switch it on again") || strings.Contains(body, "enable it to send") {
		t.Errorf("the owner of a mailing a manager switched off is not told who can switch it on:\n%s", body)
	}
}

func TestUnsubscribeLinks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	o := makeObjects(t, e, ann)
	token := mail.UnsubscribeToken(e.cfg.SessionSecret, o.client.ID, ann.ID, o.client.Email)
	v := e.client()

	resp, body := v.get(t, "/u/"+token)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, o.client.Email) || parseHTML(t, body).Find("[data-testid=unsubscribe-form]").Length() != 1 {
		t.Fatalf("confirm page:\n%s", body)
	}
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.UnsubscribedAt != nil {
		t.Fatal("a GET unsubscribed (mail scanners follow links)")
	}
	resp, body = v.post(t, "/u/"+token, nil)
	wantRedirect(t, resp, body, "/u/"+token)
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.UnsubscribedAt == nil {
		t.Fatal("not unsubscribed")
	}
	resp, body = v.get(t, "/u/"+token)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "You are unsubscribed") || parseHTML(t, body).Find("[data-testid=unsubscribe-form]").Length() != 0 {
		t.Fatalf("page after unsubscribing:\n%s", body)
	}

	// RFC 8058 one-click: no session, no CSRF token.
	o2 := makeObjects(t, e, ann)
	token2 := mail.UnsubscribeToken(e.cfg.SessionSecret, o2.client.ID, ann.ID, o2.client.Email)
	req, _ := http.NewRequest(http.MethodPost, "/u/"+token2, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body = e.do(t, req)
	wantStatus(t, resp, body, http.StatusOK)
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o2.client.ID); cl.UnsubscribedAt == nil {
		t.Fatal("one-click POST did not unsubscribe")
	}
	// The owner sees it in the list.
	c := e.client()
	login(t, c, "ann@example.com", goodPassword)
	_, body = c.get(t, "/clients")
	if strings.Count(body, `badge-unsubscribed`) != 2 {
		t.Errorf("unsubscribed clients not marked in the list")
	}
	// Forged or altered tokens are not found: a character changed in the
	// signature (base64 characters 22 to 42 hold its bytes 16 to 32), or in
	// the address after it. (Not the last ones: they may carry only the
	// encoding's spare bits.)
	alter := func(i int) string {
		b := []byte(token)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	inSignature, inAddress := alter(30), alter(len(token)*3/4)
	// The recipient is told what may be wrong with the link (cut short on
	// its way) and what to do, on the page and after the form's POST; a
	// mail provider's one-click POST gets the answer any gets, which tells
	// nothing of the ids in the link, and changes nothing.
	if err := e.store.Resubscribe(ctx, ann.ID, o.client.Email); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"nope", inSignature, inAddress, mail.UnsubscribeToken("another secret", o.client.ID, ann.ID, o.client.Email), token[:len(token)-5]} {
		resp, body := e.client().get(t, "/u/"+bad)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "This unsubscribe link does not work") || !strings.Contains(body, "cut short") {
			t.Errorf("token %q: %d\n%.600s", bad, resp.StatusCode, body)
		}
		resp, body = e.client().postRaw(t, "/u/"+bad, url.Values{})
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "This unsubscribe link does not work") {
			t.Errorf("form POST of token %q: %d", bad, resp.StatusCode)
		}
		resp, body = e.client().postRaw(t, "/u/"+bad, url.Values{"List-Unsubscribe": {"One-Click"}})
		if resp.StatusCode != http.StatusOK || body != "unsubscribed\n" {
			t.Errorf("one-click POST of token %q: %d %.100s", bad, resp.StatusCode, body)
		}
		if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.UnsubscribedAt != nil {
			t.Fatalf("token %q unsubscribed the client", bad)
		}
	}
	// A client deleted since the mail: its address is unsubscribed all the
	// same, by a mail provider's one-click POST as by the page's form, and
	// the client added again (the list imported again) is added
	// unsubscribed.
	for _, oneClick := range []bool{true, false} {
		gone := makeObjects(t, e, ann)
		goneToken := mail.UnsubscribeToken(e.cfg.SessionSecret, gone.client.ID, ann.ID, gone.client.Email)
		if err := e.store.DeleteClient(ctx, ann.ID, gone.client.ID); err != nil {
			t.Fatal(err)
		}
		if oneClick {
			resp, body = e.client().postRaw(t, "/u/"+goneToken, url.Values{"List-Unsubscribe": {"One-Click"}})
			if resp.StatusCode != http.StatusOK || body != "unsubscribed\n" {
				t.Errorf("one-click POST for a deleted client: %d %q", resp.StatusCode, body)
			}
		} else {
			v := e.client()
			doc := v.page(t, "/u/"+goneToken)
			if !strings.Contains(doc.Text(), "Stop mailings from") || !strings.Contains(doc.Text(), gone.client.Email) {
				t.Fatalf("the page of a deleted client's link:\n%s", doc.Text())
			}
			resp, body = v.post(t, "/u/"+goneToken, nil)
			wantRedirect(t, resp, body, "/u/"+goneToken)
		}
		if _, body = e.client().get(t, "/u/"+goneToken); !strings.Contains(body, "You are unsubscribed") {
			t.Errorf("one-click %v: after unsubscribing a deleted client's address, its page:\n%s", oneClick, body)
		}
		again := &model.Client{OwnerID: ann.ID, Email: gone.client.Email}
		if err := e.store.CreateClient(ctx, again); err != nil {
			t.Fatal(err)
		}
		if again.UnsubscribedAt == nil {
			t.Errorf("one-click %v: a deleted client's address unsubscribed by its link is mailable once added again", oneClick)
		}
	}
	// A link of another owner's list naming the client's id and address
	// is that list's: it does not reach the client.
	other := newUser(t, e, "eve@example.com", model.RoleUser)
	resp, body = e.client().postRaw(t, "/u/"+mail.UnsubscribeToken(e.cfg.SessionSecret, o.client.ID, other.ID, o.client.Email),
		url.Values{"List-Unsubscribe": {"One-Click"}})
	wantStatus(t, resp, body, http.StatusOK)
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.UnsubscribedAt != nil {
		t.Error("another owner's link unsubscribed the client")
	}
}

func TestClearBounceAndPlanOnSave(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	o := makeObjects(t, e, ann)
	if err := e.store.MarkBounced(ctx, []int64{o.client.ID}); err != nil {
		t.Fatal(err)
	}
	listBadges := func() string {
		_, body := c.get(t, "/clients")
		return parseHTML(t, body).Find("[data-testid=client-row] [data-testid=badge]").Text()
	}
	if got := listBadges(); got != "bounced" {
		t.Errorf("the list marks the bounced client %q, want bounced", got)
	}
	_, body := c.get(t, "/clients/"+id(o.client.ID))
	if parseHTML(t, body).Find("[data-testid=clear-bounce]").Length() != 1 {
		t.Fatalf("no way to clear the bounce:\n%s", body)
	}
	resp, body := c.post(t, "/clients/"+id(o.client.ID)+"/bounce/clear", nil)
	wantRedirect(t, resp, body, "/clients/"+id(o.client.ID))
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.BouncedAt != nil {
		t.Fatal("bounce not cleared")
	}
	_, body = c.get(t, "/clients/"+id(o.client.ID))
	if !strings.Contains(body, "The bounce is cleared") {
		t.Error("no word that the bounce is cleared")
	}
	if got := listBadges(); got != "" {
		t.Errorf("the list still marks the client %q after the bounce was cleared", got)
	}
	other := signedIn(t, e, "eve@example.com", model.RoleUser)
	resp, body = other.post(t, "/clients/"+id(o.client.ID)+"/bounce/clear", nil)
	wantStatus(t, resp, body, http.StatusNotFound)

	// Saving a mailing plans its first run at its start.
	start := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Minute)
	resp, body = c.post(t, "/mailings", url.Values{"message_id": {id(o.message.ID)}, "starts_at": {start.Format("2006-01-02T15:04")},
		"ends_at": {start.Add(time.Hour).Format("2006-01-02T15:04")}, "repeat": {"once"}, "recipient_ids": {id(o.client.ID)}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	o2 := e.redis.Options()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: o2.Addr, DB: o2.DB})
	defer insp.Close()
	tasks, err := insp.ListScheduledTasks("default")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || tasks[0].Type != "mailing:run" || !tasks[0].NextProcessAt.Equal(start) {
		t.Fatalf("planned tasks %+v, want one mailing:run at %v", tasks, start)
	}
}

// While a run sends, its message and its recipients stay as they are: an
// edit is a field error that keeps what was typed; once the run has
// ended, the same edits go through.
func TestEditsWaitForTheRunningRun(t *testing.T) {
	e := newEnv(t) // no worker: the run stays open
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	o := makeObjects(t, e, ann)
	extra := makeObjects(t, e, ann).client
	sendableNow(t, e, o.mailing.ID)
	path := "/mailings/" + id(o.mailing.ID)
	resp, body := c.post(t, path+"/send", nil)
	wantRedirect(t, resp, body, path)

	msgForm := url.Values{"subject": {"Changed subject"}, "body": {"Changed body"}}
	resp, body = c.post(t, "/messages/"+id(o.message.ID), msgForm)
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(fieldError(t, body, "body"), "sending this message right now") || inputValue(t, body, "subject") != "Changed subject" {
		t.Fatalf("message edit during a run:\n%s", body)
	}
	ends := time.Now().Add(72 * time.Hour).UTC().Format("2006-01-02T15:04")
	mailingForm := func(ids ...int64) url.Values {
		f := url.Values{"message_id": {id(o.message.ID)}, "ends_at": {ends}, "repeat": {"once"}}
		var s []string
		for _, i := range ids {
			s = append(s, id(i))
		}
		f.Set("recipient_ids", strings.Join(s, ","))
		return f
	}
	resp, body = c.post(t, path, mailingForm(o.client.ID, extra.ID))
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(fieldError(t, body, "recipients"), "sending to these recipients right now") {
		t.Fatalf("recipients edit during a run:\n%s", body)
	}
	resp, body = c.post(t, path, mailingForm(o.client.ID)) // the same list: the end may move
	wantRedirect(t, resp, body, path)

	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now() WHERE mailing_id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, "/messages/"+id(o.message.ID), msgForm)
	wantRedirect(t, resp, body, "/messages/"+id(o.message.ID))
	resp, body = c.post(t, path, mailingForm(o.client.ID, extra.ID))
	wantRedirect(t, resp, body, path)
	if ids, _ := e.store.RecipientIDs(ctx, o.mailing.ID); len(ids) != 2 {
		t.Fatalf("recipients after the run: %v", ids)
	}
}

// A run that ends while its mailing's page is being read: a page whose
// runs table says the run sends has a box that follows the run, so its
// next poll reloads the page once the run is over. (A box that says the
// run is over beside a table that says it sends would never reload.)
func TestMailingPageReadWhileTheRunEnds(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	var runID int64
	if err := e.db.NewRaw(`INSERT INTO runs (mailing_id, trigger, started_at, total) VALUES (?, 'manual', now(), 1) RETURNING id`,
		o.mailing.ID).Scan(ctx, &runID); err != nil {
		t.Fatal(err)
	}
	// The run ends just after the page's first read of it.
	ended := make(chan struct{})
	finish := func(ev *bun.QueryEvent) {
		if !strings.Contains(ev.Query, `"runs"`) {
			return
		}
		e.hook.after.Store(nil)
		if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now() WHERE id = ?", runID); err != nil {
			t.Error(err)
		}
		close(ended)
	}
	e.hook.after.Store(&finish)
	t.Cleanup(func() { e.hook.after.Store(nil) })

	_, body := c.get(t, "/mailings/"+id(o.mailing.ID))
	select {
	case <-ended:
	default:
		t.Fatal("the page read no run")
	}
	// Read first, the box follows the run: its next poll reloads the page.
	// (Read last, it said "Last run" beside a runs table saying "sending…".)
	poll, _ := parseHTML(t, body).Find("[data-testid=run-progress]").Attr("hx-get")
	if !strings.HasSuffix(poll, "?run="+id(runID)) {
		t.Fatalf("the progress box does not follow the run that was sending when the page was read (polls %q):\n%s", poll, body)
	}
}

// A progress box left polling a mailing deleted since (in another tab) has
// the page reloaded, which says the mailing is gone, instead of polling a
// 404 for ever.
func TestProgressOfADeletedMailing(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	if _, err := e.store.DeleteMailing(context.Background(), ann.ID, o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	resp, body := c.request(t, "GET", "/mailings/"+id(o.mailing.ID)+"/progress", nil, true)
	wantStatus(t, resp, body, http.StatusNotFound)
	if resp.Header.Get("HX-Refresh") != "true" {
		t.Errorf("no reload asked for: %v", resp.Header)
	}
}

// An unsubscribe link is the address it was mailed to: once the owner
// changes the client's address (another person now), the old link
// neither shows the new address nor unsubscribes it.
func TestUnsubscribeLinkAfterAddressChange(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	sink := e.withWorker(t)
	sendableNow(t, e, o.mailing.ID)
	runToEnd(t, c, "/mailings/"+id(o.mailing.ID))
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails sent", len(msgs))
	}
	link := strings.Trim(msgs[0].Header().Get("List-Unsubscribe"), "<>")
	path := strings.TrimPrefix(link, testBaseURL)
	if resp, body := e.client().get(t, path); !strings.HasPrefix(path, "/u/") || resp.StatusCode != http.StatusOK {
		t.Fatalf("the mailed link %q answers %d before the address changes:\n%s", link, resp.StatusCode, body)
	}

	resp, body := c.post(t, "/clients/"+id(o.client.ID), url.Values{"email": {"bob@elsewhere.example"}, "full_name": {"Bob"}})
	wantRedirect(t, resp, body, "/clients/"+id(o.client.ID))

	v := e.client()
	resp, body = v.get(t, path)
	if strings.Contains(body, "bob@elsewhere.example") {
		t.Errorf("the old recipient's link shows the new address (%d):\n%s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	e.do(t, req)
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.UnsubscribedAt != nil {
		t.Error("the old recipient's one-click unsubscribed the new address")
	}
	// It unsubscribed the old one, the address it was mailed to: given
	// to a client again, it is not mailed.
	if _, body = v.get(t, path); !strings.Contains(body, "You are unsubscribed") || !strings.Contains(body, o.client.Email) {
		t.Errorf("the old recipient's page after the one-click:\n%s", body)
	}
	again := &model.Client{OwnerID: ann.ID, Email: o.client.Email}
	if err := e.store.CreateClient(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.UnsubscribedAt == nil {
		t.Error("the address the old recipient unsubscribed is mailable once given to a client")
	}
}

// Links mailed before links carried their address (the ids and the
// signature alone) keep working while their client has the address they
// were mailed to, and lead nowhere once it changed.
func TestUnsubscribeLinkWithoutItsAddress(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	raw, err := base64.RawURLEncoding.DecodeString(mail.UnsubscribeToken(e.cfg.SessionSecret, o.client.ID, ann.ID, o.client.Email))
	if err != nil {
		t.Fatal(err)
	}
	path := "/u/" + base64.RawURLEncoding.EncodeToString(raw[:32])
	v := e.client()
	if doc := v.page(t, path); !strings.Contains(doc.Text(), o.client.Email) {
		t.Fatalf("an old link's page:\n%s", doc.Text())
	}
	resp, body := v.post(t, path, nil)
	wantRedirect(t, resp, body, path)
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.UnsubscribedAt == nil {
		t.Fatal("an old link did not unsubscribe")
	}
	resp, body = v.post(t, path+"/resubscribe", nil)
	wantRedirect(t, resp, body, path)
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.UnsubscribedAt != nil {
		t.Fatal("an old link's Subscribe again did not")
	}

	resp, body = c.post(t, "/clients/"+id(o.client.ID), url.Values{"email": {"bob@elsewhere.example"}})
	wantRedirect(t, resp, body, "/clients/"+id(o.client.ID))
	if resp, body := e.client().get(t, path); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "bob@elsewhere.example") {
		t.Errorf("an old link once its client's address changed: %d\n%s", resp.StatusCode, body)
	}
}

// A form opened before one of its chosen clients was deleted (in another
// tab) still saves: the deleted client is simply no longer a recipient,
// and the word that it was saved says so. It was refused as "not in your
// clients list" (choose every recipient again) and, while a run sends, as
// a change of the recipients, though only the end of sending was changed.
func TestMailingFormSavesAfterAChosenClientIsDeleted(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	gone := makeObjects(t, e, ann).client
	path := "/mailings/" + id(o.mailing.ID)
	start := o.mailing.StartsAt.Format("2006-01-02T15:04")
	form := func(ends time.Time) url.Values {
		return url.Values{"message_id": {id(o.message.ID)}, "starts_at": {start}, "ends_at": {ends.UTC().Format("2006-01-02T15:04")},
			"repeat": {"once"}, "recipient_ids": {id(o.client.ID) + "," + id(gone.ID)}}
	}
	resp, body := c.post(t, path, form(o.mailing.EndsAt))
	wantRedirect(t, resp, body, path)
	resp, body = c.post(t, "/clients/"+id(gone.ID)+"/delete", nil)
	wantRedirect(t, resp, body, "/clients")

	resp, body = c.post(t, path, form(o.mailing.EndsAt.Add(time.Hour)))
	wantRedirect(t, resp, body, path)
	if ids, _ := e.store.RecipientIDs(ctx, o.mailing.ID); len(ids) != 1 || ids[0] != o.client.ID {
		t.Fatalf("recipients %v", ids)
	}
	if got := flashAfter(t, c, resp); got != "Mailing saved. One of the chosen clients had been deleted meanwhile and is not a recipient." {
		t.Errorf("saved without a deleted client, the page says %q", got)
	}
	resp, body = c.post(t, path, form(o.mailing.EndsAt.Add(time.Hour)))
	wantRedirect(t, resp, body, path)
	if got := flashAfter(t, c, resp); got != "Mailing saved. One of the chosen clients had been deleted meanwhile and is not a recipient." {
		t.Errorf("saved again with the same form, the page says %q", got)
	}
	form2 := form(o.mailing.EndsAt)
	form2.Set("recipient_ids", id(o.client.ID))
	resp, body = c.post(t, path, form2)
	wantRedirect(t, resp, body, path)
	if got := flashAfter(t, c, resp); got != "Mailing saved." {
		t.Errorf("saved with every chosen client there, the page says %q", got)
	}
	gone3 := makeObjects(t, e, ann).client
	gone4 := makeObjects(t, e, ann).client
	for _, g := range []*model.Client{gone3, gone4} {
		resp, body = c.post(t, "/clients/"+id(g.ID)+"/delete", nil)
		wantRedirect(t, resp, body, "/clients")
	}
	form2.Set("recipient_ids", id(o.client.ID)+","+id(gone3.ID)+","+id(gone4.ID))
	resp, body = c.post(t, "/mailings", form2)
	wantStatus(t, resp, body, http.StatusSeeOther)
	if got := flashAfter(t, c, resp); !strings.HasSuffix(got, ". 2 of the chosen clients had been deleted meanwhile and are not recipients.") || !strings.HasPrefix(got, "Mailing created.") {
		t.Errorf("created without two deleted clients, the page says %q", got)
	}

	// The same while a run sends: only the end changes, and it may.
	sendableNow(t, e, o.mailing.ID)
	resp, body = c.post(t, path+"/send", nil)
	wantRedirect(t, resp, body, path)
	gone2 := makeObjects(t, e, ann).client
	if _, err := e.db.ExecContext(ctx, "INSERT INTO mailing_recipients (mailing_id, client_id) VALUES (?, ?)", o.mailing.ID, gone2.ID); err != nil {
		t.Fatal(err)
	}
	running := url.Values{"ends_at": {o.mailing.EndsAt.Add(2 * time.Hour).UTC().Format("2006-01-02T15:04")},
		"recipient_ids": {id(o.client.ID) + "," + id(gone2.ID)}}
	resp, body = c.post(t, "/clients/"+id(gone2.ID)+"/delete", nil)
	wantRedirect(t, resp, body, "/clients")
	resp, body = c.post(t, path, running)
	wantRedirect(t, resp, body, path)
	if m, _ := e.store.MailingByID(ctx, store.Own(ann.ID), o.mailing.ID); !m.EndsAt.Equal(o.mailing.EndsAt.Add(2 * time.Hour)) {
		t.Errorf("end of sending %v, want it moved", m.EndsAt)
	}
}

// A mailing form whose chosen clients were all deleted meanwhile (in
// another tab) is refused, keeping what was typed, rather than saving a
// mailing that mails no one.
func TestMailingFormWithEveryChosenClientDeleted(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	gone := makeObjects(t, e, ann).client
	resp, body := c.post(t, "/clients/"+id(gone.ID)+"/delete", nil)
	wantRedirect(t, resp, body, "/clients")
	form := url.Values{"message_id": {id(o.message.ID)}, "starts_at": {o.mailing.StartsAt.UTC().Format("2006-01-02T15:04")},
		"ends_at": {o.mailing.EndsAt.UTC().Format("2006-01-02T15:04")}, "repeat": {"weekly"}, "recipient_ids": {id(gone.ID)}}
	_, before, err := e.store.ListMailings(ctx, store.Own(ann.ID), "", "", store.NewPage(1, 50))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/mailings", "/mailings/" + id(o.mailing.ID)} {
		resp, body = c.post(t, path, form)
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if !strings.Contains(fieldError(t, body, "recipients"), "The chosen clients have been deleted meanwhile") {
			t.Errorf("%s: no word of the deleted clients beside the field:\n%s", path, body)
		}
		if v, _ := parseHTML(t, body).Find(`select[name=repeat] option[selected]`).Attr("value"); v != "weekly" {
			t.Errorf("%s: the form lost the repeat typed (%q)", path, v)
		}
	}
	if _, after, err := e.store.ListMailings(ctx, store.Own(ann.ID), "", "", store.NewPage(1, 50)); err != nil || after.Total != before.Total {
		t.Errorf("mailings %d, then %d (%v): one was created", before.Total, after.Total, err)
	}
	if ids, _ := e.store.RecipientIDs(ctx, o.mailing.ID); len(ids) != 1 || ids[0] != o.client.ID {
		t.Errorf("the mailing's recipients became %v", ids)
	}
}

// "Retry failed" sends again only to clients that may still be mailed: a
// temporary failure whose client has unsubscribed (or bounced) since is not
// one to retry. The button was offered and the retry "sent to 1
// recipients", a run that could only skip them.
func TestRetryFailedLeavesOutUnsubscribed(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET starts_at = now() - interval '1 hour', next_run_at = NULL, status = 'running' WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	fin := time.Now().Add(-time.Minute)
	run := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: fin.Add(-time.Minute), FinishedAt: &fin, Total: 1, Failed: 1})
	code := 451
	a := &model.Attempt{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email,
		Status: model.AttemptFailure, Code: &code, Response: "451 4.7.1 try again later", Tries: 1}
	if _, err := e.db.NewInsert().Model(a).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	path := "/mailings/" + id(o.mailing.ID)
	_, body := c.get(t, path)
	if parseHTML(t, body).Find("[data-testid=retry-failed]").Length() != 1 {
		t.Fatalf("no Retry failed after a temporary failure:\n%s", body)
	}
	question := func() string {
		q, _ := c.page(t, path).Find("form:has([data-testid=retry-failed])").Attr("data-confirm")
		return q
	}
	if q := question(); q != "Send again to the 1 recipient of the last run whose send failed for the time being?" {
		t.Errorf("Retry failed asks %q first", q)
	}
	// A send a crash cut off may have arrived: only then is a second mail
	// a risk worth saying.
	if _, err := e.db.ExecContext(ctx, "UPDATE attempts SET code = NULL, response = 'interrupted: outcome unknown' WHERE id = ?", a.ID); err != nil {
		t.Fatal(err)
	}
	if q := question(); q != "Send again to the 1 recipient of the last run whose send a crash cut off? A send cut off may have arrived: that recipient could get the mail twice." {
		t.Errorf("Retry failed of a send cut off asks %q first", q)
	}
	if err := e.store.Unsubscribe(ctx, ann.ID, o.client.Email); err != nil {
		t.Fatal(err)
	}
	if _, body := c.get(t, path); parseHTML(t, body).Find("[data-testid=retry-failed]").Length() != 0 {
		t.Errorf("Retry failed offered though the only failed client has unsubscribed")
	}
	resp, body := c.post(t, path+"/retry", nil)
	wantRedirect(t, resp, body, path)
	if flash := flashAfter(t, c, resp); !strings.Contains(flash, "no temporary failures") {
		t.Errorf("retry of an unsubscribed client's failure says %q", flash)
	}
	if last, err := e.store.LatestRun(ctx, o.mailing.ID); err != nil || last.ID != run.ID {
		t.Errorf("a retry run was started for nobody to mail: %+v, %v", last, err)
	}
}

// "Send now" says how many recipients will be mailed: those who have
// unsubscribed or bounced are skipped. It said "Sending to 1 recipients."
// for a mailing whose only recipient had unsubscribed.
func TestSendNowSaysWhoIsSkipped(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	other := &model.Client{OwnerID: ann.ID, Email: "other@example.com"}
	if err := e.store.CreateClient(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, "INSERT INTO mailing_recipients (mailing_id, client_id) VALUES (?, ?)", o.mailing.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Unsubscribe(ctx, ann.ID, o.client.Email); err != nil {
		t.Fatal(err)
	}
	path := "/mailings/" + id(o.mailing.ID)
	resp, _ := c.post(t, path+"/send", nil)
	if flash := flashAfter(t, c, resp); flash != "Sending to 1 of 2 recipients; 1 has unsubscribed or bounced and is skipped." {
		t.Errorf("Send now with one recipient unsubscribed says %q", flash)
	}
	// Once that run is over, with no one left to mail.
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now() WHERE mailing_id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Unsubscribe(ctx, ann.ID, other.Email); err != nil {
		t.Fatal(err)
	}
	resp, _ = c.post(t, path+"/send", nil)
	if flash := flashAfter(t, c, resp); flash != "No one to send to: all 2 recipients have unsubscribed or bounced, so the run skips them." {
		t.Errorf("Send now with every recipient unsubscribed says %q", flash)
	}
}

// A run the window's end stopped says why its rest counts as skipped; a
// bare "2 skipped" left the owner guessing.
func TestProgressExplainsSkipped(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	ends := time.Now().Add(-time.Hour).UTC().Truncate(time.Minute)
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET starts_at = ?, ends_at = ?, next_run_at = NULL, status = 'finished' WHERE id = ?",
		ends.Add(-time.Hour), ends, o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	fin, due := ends.Add(time.Second), ends.Add(-time.Hour)
	e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerScheduled, DueAt: &due, StartedAt: due, FinishedAt: &fin,
		Total: 3, Succeeded: 1, Skipped: 2})
	resp, body := c.request(t, "GET", "/mailings/"+id(o.mailing.ID)+"/progress", nil, true)
	wantStatus(t, resp, body, 286)
	why := parseHTML(t, body).Find("[data-testid=progress-skipped-why]").Text()
	if !strings.Contains(why, "window closed at "+ends.Format("2006-01-02 15:04")) {
		t.Errorf("skipped not explained for a run stopped at the window's end: %q\n%s", why, body)
	}
}

// The progress URL opened as a page (no htmx) is the mailing's whole page,
// answering 200 while a run sends and 286 once none does, as the box does.
func TestProgressAsAPage(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	path := "/mailings/" + id(o.mailing.ID) + "/progress"
	run := &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now(), Total: 1}
	e.insertRun(t, run)
	page := func(want int) {
		t.Helper()
		resp, body := c.get(t, path)
		wantStatus(t, resp, body, want)
		if doc := parseHTML(t, body); !strings.Contains(body, "<html") || doc.Find("[data-testid=runs-table]").Length() != 1 {
			t.Fatalf("progress as a page:\n%.400s", body)
		}
	}
	page(http.StatusOK)
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now() WHERE id = ?", run.ID); err != nil {
		t.Fatal(err)
	}
	page(web.StatusStopPolling)
	other := signedIn(t, e, "bob@example.com", model.RoleUser)
	resp, body := other.get(t, path)
	wantStatus(t, resp, body, http.StatusNotFound)
}

// While a run sends and the workers cannot reach the mail server, its
// progress says so, with what the server answered; once mail goes again,
// and for a run that has ended, it does not.
func TestProgressTellsTheMailServerUnreachable(t *testing.T) {
	e := newEnv(t) // no worker: the run stays open
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	o := makeObjects(t, e, ann)
	sendableNow(t, e, o.mailing.ID)
	path := "/mailings/" + id(o.mailing.ID)
	resp, body := c.post(t, path+"/send", nil)
	wantRedirect(t, resp, body, path)
	trouble := func() string {
		t.Helper()
		_, body := c.request(t, "GET", path+"/progress", nil, true)
		return parseHTML(t, body).Find("[data-testid=progress-trouble]").Text()
	}
	if got := trouble(); got != "" {
		t.Fatalf("trouble told with none reported: %q", got)
	}

	// A worker's pool finds the server down, then up again.
	sink := testkit.SMTP(t)
	sender, err := mail.NewSender(sink.URL(), "Shop <news@shop.example>", "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	pool := mail.NewPool(sender, 1, nil).ReportTo(mail.NewHealth(e.redis))
	t.Cleanup(pool.Close)
	msg := mail.Message{Subject: "Hi", Text: "Hello"}
	msg.To.Address = "ann@example.com"
	if err := sink.Down(); err != nil {
		t.Fatal(err)
	}
	pool.Send(ctx, msg)
	if got := trouble(); !strings.Contains(got, "has taken no mail since") || !strings.Contains(got, "connection refused") {
		t.Fatalf("progress while the server is down: %q", got)
	}
	if err := sink.Up(); err != nil {
		t.Fatal(err)
	}
	if r := pool.Send(ctx, msg); r.Class != mail.Delivered {
		t.Fatalf("send: %+v", r)
	}
	if got := trouble(); got != "" {
		t.Fatalf("progress once mail goes again: %q", got)
	}
	// A server that refuses the sender holds up sending the same way.
	sink.RejectMail(&smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"})
	pool.Send(ctx, msg)
	if got := trouble(); !strings.Contains(got, "has taken no mail since") || !strings.Contains(got, "530 5.7.0 Authentication required") {
		t.Fatalf("progress while the server refuses the sender: %q", got)
	}
	sink.RejectMail(nil)
	if r := pool.Send(ctx, msg); r.Class != mail.Delivered || trouble() != "" {
		t.Fatalf("send: %+v; trouble %q", r, trouble())
	}
	if err := sink.Down(); err != nil {
		t.Fatal(err)
	}
	pool.Send(ctx, msg)
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now() WHERE mailing_id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if got := trouble(); got != "" {
		t.Fatalf("progress of a run that has ended: %q", got)
	}
}

// sendableNow moves the mailing's first send a minute into the past, with
// no run planned: "Send now" starts a run at once.
func sendableNow(t *testing.T, e *env, mailingID int64) {
	t.Helper()
	if _, err := e.db.ExecContext(context.Background(), "UPDATE mailings SET starts_at = now() - interval '1 minute', next_run_at = NULL WHERE id = ?", mailingID); err != nil {
		t.Fatal(err)
	}
}

// The mailing page tells what its runs were and what a delete costs: a
// window that passed with no run says so (not "the first starts at the
// first send"), a Retry failed run is called a retry, and deleting a
// mailing while it sends says the run stops and its record goes.
func TestMailingPageTellsItsRuns(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	path := "/mailings/" + id(o.mailing.ID)
	if got := c.page(t, path).Find("#mailing-runs [data-testid=empty]").Text(); !strings.Contains(got, "the first starts at the first send") {
		t.Errorf("before any run: %q", got)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET status = 'finished', next_run_at = NULL WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if got := c.page(t, path).Find("#mailing-runs [data-testid=empty]").Text(); !strings.Contains(got, "window passed without one") {
		t.Errorf("a window passed with no run: %q", got)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET status = 'running' WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}

	fin := time.Now().Add(-time.Minute)
	first := &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: fin.Add(-time.Minute), FinishedAt: &fin, Total: 1, Failed: 1}
	if _, err := e.db.NewInsert().Model(first).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	retry := &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now(), RetryOf: &first.ID, Total: 1}
	if _, err := e.db.NewInsert().Model(retry).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	page := c.page(t, path)
	var triggers []string
	page.Find("[data-testid=runs-table] tbody td[data-label=Trigger]").Each(func(_ int, s *goquery.Selection) { triggers = append(triggers, s.Text()) })
	if strings.Join(triggers, ",") != "retry,manual" {
		t.Errorf("runs table triggers %v, want the retry called so", triggers)
	}
	if q, _ := page.Find("form[action$='/delete']").Attr("data-confirm"); !strings.HasPrefix(q, "This mailing is sending now: deleting it stops the run") {
		t.Errorf("delete while a run sends asks %q", q)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now() WHERE id = ?", retry.ID); err != nil {
		t.Fatal(err)
	}
	if q, _ := c.page(t, path).Find("form[action$='/delete']").Attr("data-confirm"); q != "Delete this mailing with its runs and attempt log?" {
		t.Errorf("delete with no run sending asks %q", q)
	}
}

// A run switched off before it reached everyone says how many it left,
// and "Send to the rest" starts a run of only them (once the mailing may
// send); a run that reached everyone it could offers nothing.
func TestSendToTheRestButton(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	sendableNow(t, e, o.mailing.ID)
	left := &model.Client{OwnerID: ann.ID, Email: "left@example.com"}
	if err := e.store.CreateClient(ctx, left); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, "INSERT INTO mailing_recipients (mailing_id, client_id) VALUES (?, ?)", o.mailing.ID, left.ID); err != nil {
		t.Fatal(err)
	}
	// The first recipient was mailed, then the mailing was switched off.
	fin := time.Now().Add(-time.Minute)
	run := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: fin.Add(-time.Minute), FinishedAt: &fin,
		Total: 2, Succeeded: 1, Skipped: 1, Unreached: 1})
	a := &model.Attempt{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email,
		Status: model.AttemptSuccess, Response: "250 ok", Tries: 1}
	if _, err := e.db.NewInsert().Model(a).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	path := "/mailings/" + id(o.mailing.ID)
	setDisabled := func(off bool) {
		t.Helper()
		if err := e.store.SetMailingDisabled(ctx, store.Own(ann.ID), o.mailing.ID, ann.ID, off); err != nil {
			t.Fatal(err)
		}
	}

	setDisabled(true)
	doc := c.page(t, path)
	if doc.Find("[data-testid=send-rest]").Length() != 0 {
		t.Errorf("Send to the rest offered while the mailing is switched off")
	}
	if why := doc.Find("[data-testid=progress-skipped-why]").Text(); !strings.Contains(why, "switched off before 1 recipient was reached. Once it is switched on again, “Send to the rest” mails them.") {
		t.Errorf("a run switched off explains its skipped as %q", why)
	}
	// Switched off by a manager, it is theirs to switch on.
	setDisabled(false)
	boss := newUser(t, e, "boss@example.com", model.RoleManager)
	if err := e.store.SetMailingDisabled(ctx, store.Everyone(boss.ID), o.mailing.ID, boss.ID, true); err != nil {
		t.Fatal(err)
	}
	if why := c.page(t, path).Find("[data-testid=progress-skipped-why]").Text(); !strings.Contains(why, "A manager switched it off: once a manager switches it on again, “Send to the rest” mails them.") {
		t.Errorf("a run a manager switched off explains its skipped to the owner as %q", why)
	}
	if err := e.store.SetMailingDisabled(ctx, store.Everyone(boss.ID), o.mailing.ID, boss.ID, false); err != nil {
		t.Fatal(err)
	}
	doc = c.page(t, path)
	if doc.Find("[data-testid=send-rest]").Length() != 1 {
		t.Fatalf("no Send to the rest after a run left a recipient unreached")
	}
	if q, _ := doc.Find("form:has([data-testid=send-rest])").Attr("data-confirm"); !strings.Contains(q, "not reached since the run of ") || !strings.Contains(q, ": 1 recipient it did not get to when it stopped, those whose send failed for the time being") {
		t.Errorf("Send to the rest asks %q", q)
	}
	if why := doc.Find("[data-testid=progress-skipped-why]").Text(); !strings.HasPrefix(why, "1 recipient was not reached") || !strings.Contains(why, "“Send to the rest” mails them") {
		t.Errorf("skipped explained as %q", why)
	}

	// Not while a scheduled send, which mails everyone, is due.
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET next_run_at = now() - interval '1 second' WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if c.page(t, path).Find("[data-testid=send-rest]").Length() != 0 {
		t.Errorf("Send to the rest offered while a scheduled send is due")
	}
	resp, body := c.post(t, path+"/rest", nil)
	wantRedirect(t, resp, body, path)
	if flash := flashAfter(t, c, resp); !strings.HasPrefix(flash, "A scheduled send of this mailing is due now") {
		t.Errorf("rest with a scheduled send due says %q", flash)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET next_run_at = NULL WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}

	// Once that recipient unsubscribed there is no one left to send to
	// (which the page does not look up: it would read every recipient).
	if err := e.store.Unsubscribe(ctx, ann.ID, left.Email); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, path+"/rest", nil)
	wantRedirect(t, resp, body, path)
	if flash := flashAfter(t, c, resp); !strings.HasPrefix(flash, "No one left to send to") {
		t.Errorf("rest with no one left says %q", flash)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE clients SET unsubscribed_at = NULL WHERE id = ?", left.ID); err != nil {
		t.Fatal(err)
	}

	resp, body = c.post(t, path+"/rest", nil)
	wantRedirect(t, resp, body, path)
	if flash := flashAfter(t, c, resp); flash != "Sending to the 1 recipient not reached yet." {
		t.Errorf("Send to the rest says %q", flash)
	}
	rest, err := e.store.LatestRun(ctx, o.mailing.ID)
	if err != nil || rest.ID == run.ID || rest.RestOf == nil || *rest.RestOf != run.ID || rest.Total != 1 {
		t.Fatalf("the run started: %+v, %v", rest, err)
	}
	doc = c.page(t, path)
	if got := doc.Find("[data-testid=runs-table] tbody td[data-label=Trigger]").First().Text(); got != "rest" {
		t.Errorf("the rest's trigger shows as %q", got)
	}
	if doc.Find("[data-testid=send-rest]").Length() != 0 {
		t.Errorf("Send to the rest offered while the rest sends")
	}
}

// A run that sends while no worker runs says so on its progress, rather
// than show "0 sent" for ever; once a worker runs, the notice goes.
func TestProgressTellsNoWorkerRuns(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	run := &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now(), Total: 1}
	if _, err := e.db.NewInsert().Model(run).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	path := "/mailings/" + id(o.mailing.ID) + "/progress"
	notice := func() string {
		t.Helper()
		resp, body := c.request(t, "GET", path, nil, true)
		wantStatus(t, resp, body, http.StatusOK)
		return parseHTML(t, body).Find("[data-testid=progress-no-worker]").Text()
	}
	if got := notice(); !strings.Contains(got, "No worker is running") {
		t.Errorf("progress with no worker running: %q", got)
	}
	e.withWorker(t)
	deadline := time.Now().Add(10 * time.Second)
	for notice() != "" {
		if time.Now().After(deadline) {
			t.Fatal("the notice stays while a worker runs")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now() WHERE id = ?", run.ID); err != nil {
		t.Fatal(err)
	}
}

// While a run sends, its progress says how many are still to go, and
// why they may wait (a send the server asked to try later waits minutes,
// the bar standing still meanwhile); once it has ended, nothing is.
func TestProgressSaysWhatIsStillToGo(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	run := &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now(), Total: 12, Succeeded: 9, Failed: 2}
	if _, err := e.db.NewInsert().Model(run).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	e.withWorker(t)
	left := func() string {
		t.Helper()
		_, body := c.request(t, "GET", "/mailings/"+id(o.mailing.ID)+"/progress?run="+id(run.ID), nil, true)
		return strings.Join(strings.Fields(parseHTML(t, body).Find("[data-testid=progress-left]").Text()), " ")
	}
	if got := left(); !strings.HasPrefix(got, "1 recipient is still to go: not sent yet, or waiting for another try") {
		t.Errorf("a run with one to go: %q", got)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now(), failed = 3 WHERE id = ?", run.ID); err != nil {
		t.Fatal(err)
	}
	if got := left(); got != "" {
		t.Errorf("a run ended: %q", got)
	}
}

// A planned send due over a minute ago that has not started, no worker
// running, says so (the page said "due now" until the window closed);
// once a worker runs, or before the minute, the notice is not there.
func TestProgressTellsAnOverdueSendWaitsForAWorker(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	due := func(ago time.Duration) {
		t.Helper()
		if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET starts_at = ?, next_run_at = ?, ends_at = ? WHERE id = ?",
			time.Now().Add(-ago), time.Now().Add(-ago), time.Now().Add(time.Hour), o.mailing.ID); err != nil {
			t.Fatal(err)
		}
	}
	path := "/mailings/" + id(o.mailing.ID)
	notice := func() string {
		t.Helper()
		resp, body := c.request(t, "GET", path+"/progress?seen=0", nil, true)
		if resp.StatusCode != web.StatusStopPolling {
			t.Fatalf("progress: %d\n%s", resp.StatusCode, body)
		}
		return strings.Join(strings.Fields(parseHTML(t, body).Find("[data-testid=progress-overdue]").Text()), " ")
	}
	due(10 * time.Second)
	if got := notice(); got != "" {
		t.Errorf("a send due 10 s ago: %q", got)
	}
	due(3 * time.Minute)
	if got := notice(); !strings.Contains(got, "has not started: no worker is running to send it") {
		t.Errorf("a send due 3 minutes ago, no worker: %q", got)
	}
	if got := c.page(t, path).Find("[data-testid=progress-overdue]").Length(); got != 1 {
		t.Errorf("the mailing's page shows the notice %d times", got)
	}
	e.withWorker(t)
	deadline := time.Now().Add(10 * time.Second)
	for notice() != "" {
		if time.Now().After(deadline) {
			t.Fatal("the notice stays while a worker runs")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The page that confirms an unsubscription offers to undo it: a plain
// form with its CSRF token, which the recipient alone reaches (the link is
// signed for their address); after it they are mailable again.
func TestResubscribe(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	o := makeObjects(t, e, ann)
	token := mail.UnsubscribeToken(e.cfg.SessionSecret, o.client.ID, ann.ID, o.client.Email)
	v := e.client()
	resp, body := v.post(t, "/u/"+token, nil)
	wantRedirect(t, resp, body, "/u/"+token)
	doc := v.page(t, "/u/"+token)
	if doc.Find(`[data-testid=resubscribe-form][action="/u/`+token+`/resubscribe"] input[name=_csrf]`).Length() != 1 {
		t.Fatal("the unsubscribed page offers no way back")
	}
	// A recipient is no user of the site: no sign-in, account or status.
	if n := doc.Find(`a[href="/login"], a[href="/register"], a[href="/healthz"]`).Length(); n != 0 {
		t.Errorf("the unsubscribe page offers a recipient %d of the site's own links", n)
	}
	resp, body = v.postRaw(t, "/u/"+token+"/resubscribe", url.Values{})
	wantStatus(t, resp, body, http.StatusForbidden)
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.UnsubscribedAt == nil {
		t.Fatal("resubscribed without the CSRF token")
	}
	resp, body = v.post(t, "/u/"+token+"/resubscribe", nil)
	wantRedirect(t, resp, body, "/u/"+token)
	if flash := flashAfter(t, v, resp); !strings.HasPrefix(flash, "You are subscribed again: "+o.client.Email) {
		t.Errorf("after resubscribing: %q", flash)
	}
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.UnsubscribedAt != nil {
		t.Fatal("still unsubscribed")
	}
	if v.page(t, "/u/"+token).Find("[data-testid=unsubscribe-form]").Length() != 1 {
		t.Error("after resubscribing the page does not offer to unsubscribe")
	}
	// A bounced address is subscribed again, and told it still gets no mail.
	resp, body = v.post(t, "/u/"+token, nil)
	wantRedirect(t, resp, body, "/u/"+token)
	if err := e.store.MarkBounced(ctx, []int64{o.client.ID}); err != nil {
		t.Fatal(err)
	}
	resp, body = v.post(t, "/u/"+token+"/resubscribe", nil)
	wantRedirect(t, resp, body, "/u/"+token)
	if flash := flashAfter(t, v, resp); !strings.Contains(flash, "has bounced") {
		t.Errorf("resubscribing a bounced address: %q", flash)
	}
	// Twice is harmless; a bad link is the bad link's page.
	resp, body = v.post(t, "/u/"+token+"/resubscribe", nil)
	wantRedirect(t, resp, body, "/u/"+token)
	resp, body = v.post(t, "/u/"+token[:len(token)-5]+"/resubscribe", nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "This unsubscribe link does not work") {
		t.Errorf("a cut link: %d", resp.StatusCode)
	}
}

// An unsubscription is the address's: the owner cannot undo it by deleting
// the client and adding it again, by hand, by an import or by giving
// another client the address. Only the recipient's "Subscribe again" does,
// and another owner's list is not concerned.
func TestUnsubscribeOutlivesTheClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	cl := &model.Client{OwnerID: ann.ID, Email: "Gone@Example.com", FullName: "Gone"}
	if err := e.store.CreateClient(ctx, cl); err != nil {
		t.Fatal(err)
	}
	resp, body := e.client().post(t, "/u/"+mail.UnsubscribeToken(e.cfg.SessionSecret, cl.ID, ann.ID, cl.Email), nil)
	wantStatus(t, resp, body, http.StatusSeeOther)

	// unsubscribed reads the state of ann's client with the address.
	unsubscribed := func(email string) (id int64, at *time.Time) {
		t.Helper()
		err := e.db.NewRaw("SELECT id, unsubscribed_at FROM clients WHERE owner_id = ? AND lower(email) = lower(?)", ann.ID, email).
			Scan(ctx, &id, &at)
		if err != nil {
			t.Fatalf("%s: %v", email, err)
		}
		return id, at
	}
	remove := func(email string) {
		t.Helper()
		id, _ := unsubscribed(email)
		resp, body := c.post(t, "/clients/"+strconv.FormatInt(id, 10)+"/delete", nil)
		wantStatus(t, resp, body, http.StatusSeeOther)
	}

	// Added again by hand, in other letters: unsubscribed, and told so.
	remove("gone@example.com")
	resp, body = c.post(t, "/clients", url.Values{"email": {"gone@EXAMPLE.com"}, "full_name": {"Back"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	if flash := flashAfter(t, c, resp); !strings.Contains(flash, "was added as unsubscribed") {
		t.Errorf("adding an unsubscribed address says %q", flash)
	}
	if _, at := unsubscribed("gone@example.com"); at == nil {
		t.Fatal("deleting and adding the client again subscribed it again")
	}

	// Imported again: unsubscribed, and the report says so.
	remove("gone@example.com")
	_, _, _, body = importReport(t, c, "email,full_name\ngone@example.com,Imported\nnew@example.com,New\n")
	if got := parseHTML(t, body).Find("[data-testid=import-created]").Parent().Text(); !strings.Contains(got, "2 created (1 of them unsubscribed, who get no mailings), 0 updated") {
		t.Errorf("the import's report says %q of the unsubscribed", got)
	}
	if _, at := unsubscribed("gone@example.com"); at == nil {
		t.Fatal("deleting and importing the client again subscribed it again")
	}

	// Given to another client: that client is unsubscribed, and told so
	// (in the row edited in place, and without JavaScript).
	const toldSo = "Client saved, unsubscribed: gone@example.com unsubscribed from your mailings on "
	remove("gone@example.com")
	other, _ := unsubscribed("new@example.com")
	resp, body = c.request(t, "POST", "/clients/"+strconv.FormatInt(other, 10), url.Values{"email": {"gone@example.com"}, "full_name": {"Other"}}, true)
	wantStatus(t, resp, body, http.StatusOK)
	if trigger := resp.Header.Get("HX-Trigger"); !strings.Contains(trigger, toldSo) {
		t.Errorf("giving a client an address that unsubscribed, in its row, says %q", trigger)
	}
	id, at := unsubscribed("gone@example.com")
	if at == nil || id != other {
		t.Fatal("an address that unsubscribed, given to another client, is mailable")
	}
	third := &model.Client{OwnerID: ann.ID, Email: "third@example.com"}
	if err := e.store.CreateClient(ctx, third); err != nil {
		t.Fatal(err)
	}
	remove("gone@example.com")
	resp, body = c.post(t, "/clients/"+strconv.FormatInt(third.ID, 10), url.Values{"email": {"gone@example.com"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	if flash := flashAfter(t, c, resp); !strings.HasPrefix(flash, toldSo) {
		t.Errorf("giving a client an address that unsubscribed says %q", flash)
	}
	if id, at = unsubscribed("gone@example.com"); at == nil || id != third.ID {
		t.Fatal("an address that unsubscribed, given to another client, is mailable")
	}
	resp, body = c.request(t, "POST", "/clients/"+strconv.FormatInt(third.ID, 10), url.Values{"email": {"gone@example.com"}, "full_name": {"Third"}}, true)
	wantStatus(t, resp, body, http.StatusOK)
	if trigger := resp.Header.Get("HX-Trigger"); trigger != "" {
		t.Errorf("saving an unsubscribed client again says %q", trigger)
	}

	// An unsubscribed client given a new address: that address stays
	// unsubscribed when the client is deleted and added again.
	resp, body = c.post(t, "/clients/"+strconv.FormatInt(id, 10), url.Values{"email": {"moved@example.com"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	remove("moved@example.com")
	resp, body = c.post(t, "/clients", url.Values{"email": {"moved@example.com"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	if _, at := unsubscribed("moved@example.com"); at == nil {
		t.Fatal("an unsubscribed client's new address, deleted and added again, is mailable")
	}
	resp, body = c.post(t, "/clients", url.Values{"email": {"gone@example.com"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	id, _ = unsubscribed("gone@example.com")

	// Another owner's list is its own.
	bob := newUser(t, e, "bob@example.com", model.RoleUser)
	bobs := &model.Client{OwnerID: bob.ID, Email: "gone@example.com"}
	if err := e.store.CreateClient(ctx, bobs); err != nil {
		t.Fatal(err)
	}
	if bobs.UnsubscribedAt != nil {
		t.Fatal("an unsubscription from ann unsubscribed the address from bob")
	}

	// The recipient's own "Subscribe again" lifts it for good.
	v := e.client()
	token := mail.UnsubscribeToken(e.cfg.SessionSecret, id, ann.ID, "gone@example.com")
	v.page(t, "/u/"+token)
	resp, body = v.post(t, "/u/"+token+"/resubscribe", nil)
	wantStatus(t, resp, body, http.StatusSeeOther)
	remove("gone@example.com")
	resp, body = c.post(t, "/clients", url.Values{"email": {"gone@example.com"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	if flash := flashAfter(t, c, resp); flash != "gone@example.com was added." {
		t.Errorf("adding an address subscribed again says %q", flash)
	}
	if _, at := unsubscribed("gone@example.com"); at != nil {
		t.Fatal("subscribed again, the address is still unsubscribed once added again")
	}
}

// While a run sends, the mailing's page renews its runs, figures and
// latest attempts every few seconds (htmx asks for each section by its
// id), not only the progress box: they said "0 sent" beside a box at 250.
// Once the run has ended they are still again.
func TestMailingPageRenewsWhileSending(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	sendableNow(t, e, o.mailing.ID)
	path := "/mailings/" + id(o.mailing.ID)
	run := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now().Add(-time.Minute), Total: 1})
	doc := c.page(t, path)
	for _, sec := range []string{"mailing-figures", "mailing-runs", "mailing-latest"} {
		s := doc.Find("#" + sec)
		if trig, _ := s.Attr("hx-trigger"); trig != "every 5s" {
			t.Errorf("#%s while a run sends: hx-trigger %q", sec, trig)
		}
	}
	if get, _ := doc.Find("#mailing-runs").Attr("hx-get"); get != path+"?runs_page=1" {
		t.Errorf("the runs renew from %q, not their page", get)
	}

	// The run sends: each section asked for alone says so.
	a := &model.Attempt{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email,
		Status: model.AttemptSuccess, Response: "250 ok", Tries: 1}
	if _, err := e.db.NewInsert().Model(a).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET succeeded = 1 WHERE id = ?", run.ID); err != nil {
		t.Fatal(err)
	}
	section := func(target string) *goquery.Document {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("HX-Request", "true")
		req.Header.Set("HX-Target", target)
		resp, body := c.send(t, req)
		wantStatus(t, resp, body, http.StatusOK)
		d := parseHTML(t, body)
		if d.Find("#"+target).Length() != 1 || d.Find("h1").Length() != 0 {
			t.Fatalf("asked for #%s alone:\n%s", target, body)
		}
		return d
	}
	if got := section("mailing-figures").Find("[data-testid=mailing-sent]").Text(); got != "1" {
		t.Errorf("renewed figures say %q sent", got)
	}
	if got := section("mailing-latest").Find("td.address").Text(); got != o.client.Email {
		t.Errorf("renewed latest attempts list %q", got)
	}
	if got := section("mailing-runs").Find("td[data-label=Sent]").Text(); got != "1" {
		t.Errorf("renewed runs say %q sent", got)
	}

	// Ended, the page renews nothing.
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now() WHERE id = ?", run.ID); err != nil {
		t.Fatal(err)
	}
	doc = c.page(t, path)
	if n := doc.Find("[hx-trigger='every 5s']").Length(); n != 0 {
		t.Errorf("%d sections renew after the run ended", n)
	}
}

// A run-starting form sent twice starts one run, even once the first has
// ended (a double click without JavaScript, a request sent again): the
// form says which run the page showed as the latest, and a run started
// since refuses it. Without that field (the contract's route alone) a run
// starts as before.
func TestSendNowSentTwiceStartsOneRun(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	sendableNow(t, e, o.mailing.ID)
	path := "/mailings/" + id(o.mailing.ID)
	seen := func() string {
		v, ok := c.page(t, path).Find("form[action$='/send'] input[name=seen]").Attr("value")
		if !ok {
			t.Fatal("the Send now form says no run seen")
		}
		return v
	}
	runs := func() int64 { return runCount(t, e, o.mailing.ID) }
	before := seen()
	if before != "0" {
		t.Fatalf("before any run the form says it saw run %q", before)
	}
	// The first post's run, ended already.
	now := time.Now()
	first := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: now.Add(-time.Second), FinishedAt: &now, Total: 1})
	resp, body := c.post(t, path+"/send", url.Values{"seen": {before}})
	wantRedirect(t, resp, body, path)
	if flash := flashAfter(t, c, resp); !strings.Contains(flash, "started after this page was shown") || runs() != 1 {
		t.Fatalf("the form sent again: %d runs, flash %q", runs(), flash)
	}
	// Sent from the page that shows the first run, it starts one.
	if got := seen(); got != id(first.ID) {
		t.Fatalf("after a run the form says it saw %q, want %d", got, first.ID)
	}
	resp, body = c.post(t, path+"/send", url.Values{"seen": {id(first.ID)}})
	wantRedirect(t, resp, body, path)
	if flash := flashAfter(t, c, resp); !strings.HasPrefix(flash, "Sending to") || runs() != 2 {
		t.Fatalf("from the page showing the latest run: %d runs, flash %q", runs(), flash)
	}
}

// Switched on again, a repeating mailing whose send came due while it was
// off says that send is skipped and when the next is (rather than make it
// at once, days late); so is a blocked owner's mailing when unblocked.
func TestSwitchedOnTheMissedSendIsSkipped(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	path := "/mailings/" + id(o.mailing.ID)
	missed := time.Now().Add(-50 * time.Hour).UTC().Truncate(time.Minute)
	stale := func() {
		t.Helper()
		if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET starts_at = ?, ends_at = ?, repeat = 'daily', next_run_at = ? WHERE id = ?",
			missed, missed.Add(10*24*time.Hour), missed, o.mailing.ID); err != nil {
			t.Fatal(err)
		}
	}
	nextSend := func() time.Time {
		t.Helper()
		m, err := e.store.MailingByID(ctx, store.Own(ann.ID), o.mailing.ID)
		if err != nil || m.NextRunAt == nil {
			t.Fatalf("next send %v, %v", m, err)
		}
		return *m.NextRunAt
	}
	stale()
	resp, body := c.post(t, path+"/disable", nil)
	wantRedirect(t, resp, body, path)
	// Switched off before the send it missed.
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET disabled_at = ? WHERE id = ?", missed.Add(-time.Hour), o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, path+"/enable", nil)
	wantRedirect(t, resp, body, path)
	// The send planned and the two days after it, all due while it was off.
	const at = "2006-01-02 15:04 MST"
	if flash := flashAfter(t, c, resp); !strings.Contains(flash, "The sends it missed, due from "+missed.Format(at)+" to "+
		missed.Add(48*time.Hour).Format(at)+", are skipped: the next is "+missed.Add(72*time.Hour).Format(at)) {
		t.Errorf("switched on after missed sends: %q", flash)
	}
	if got := nextSend(); !got.After(time.Now()) || !got.Equal(missed.Add(72*time.Hour)) {
		t.Errorf("next send after switching on: %v, want %v", got, missed.Add(72*time.Hour))
	}
	// Saved again as it is (before its first run, its first send past),
	// it does not bring back what was skipped.
	resp, body = c.post(t, path, pageForm(t, c, path+"/edit", "[data-testid=mailing-form]"))
	wantRedirect(t, resp, body, path)
	if got := nextSend(); !got.Equal(missed.Add(72 * time.Hour)) {
		t.Errorf("next send after an edit: %v, want %v", got, missed.Add(72*time.Hour))
	}

	stale()
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	resp, body = boss.post(t, "/users/"+id(ann.ID)+"/block", nil)
	wantRedirect(t, resp, body, "/users")
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET blocked_at = ? WHERE id = ?", missed.Add(-time.Hour), ann.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = boss.post(t, "/users/"+id(ann.ID)+"/unblock", nil)
	wantRedirect(t, resp, body, "/users")
	if got := nextSend(); !got.Equal(missed.Add(72 * time.Hour)) {
		t.Errorf("next send after unblocking: %v, want %v", got, missed.Add(72*time.Hour))
	}
}

// The progress box says its run's milestones (app.js reads them out once
// each), and the page reloaded when the run it followed ended says so at
// its top.
func TestProgressSaysWhatChanged(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	sendableNow(t, e, o.mailing.ID)
	path := "/mailings/" + id(o.mailing.ID)
	e.withWorker(t) // a worker runs (the box says when none does)
	run := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now().Add(-time.Minute), Total: 4, Succeeded: 2})
	box := func(query string) (*http.Response, string) {
		resp, body := c.request(t, "GET", path+"/progress"+query, nil, true)
		return resp, parseHTML(t, body).Find("[data-testid=run-progress]").AttrOr("data-announce", "")
	}
	if _, said := box("?run=" + id(run.ID)); said != "Sending now: 50% done." {
		t.Errorf("half way the box says %q", said)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now(), succeeded = 3, failed = 1 WHERE id = ?", run.ID); err != nil {
		t.Fatal(err)
	}
	resp, said := box("?run=" + id(run.ID))
	if resp.StatusCode != web.StatusStopPolling || resp.Header.Get("HX-Refresh") != "true" || said != "The run has ended: 3 sent, 1 failed, 0 skipped of 4." {
		t.Fatalf("the box once the run ended: %d, refresh %q, says %q", resp.StatusCode, resp.Header.Get("HX-Refresh"), said)
	}
	if flash := strings.TrimSpace(c.page(t, path).Find("#flash .flash").Text()); flash != said {
		t.Errorf("the page reloaded says %q", flash)
	}
	// A box that saw the ended run as the latest: a run started since
	// reloads the page, which says so; none started, it stays.
	if resp, _ := box("?seen=" + id(run.ID)); resp.Header.Get("HX-Refresh") != "" {
		t.Errorf("no run started since, the box asks for a reload")
	}
	e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now(), Total: 4})
	if resp, _ := box("?seen=" + id(run.ID)); resp.Header.Get("HX-Refresh") != "true" {
		t.Fatalf("a run started since, the box asks for no reload")
	}
	if flash := strings.TrimSpace(c.page(t, path).Find("#flash .flash").Text()); flash != "A run of this mailing has started." {
		t.Errorf("the page reloaded as a run started says %q", flash)
	}
}

// An address in capitals beyond ASCII: the link carries it as it was
// mailed and the database folds its case, as it does for clients (Go's
// lower case and the database's differ in some locales, and the client
// was then never unsubscribed). Subscribing again after the client was
// deleted and added again speaks of the client the list has now.
func TestUnsubscribeLinkOfAnAddressInCapitals(t *testing.T) {
	e, c, ann, _ := signedInWithObjects(t)
	ctx := context.Background()
	cl := &model.Client{OwnerID: ann.ID, Email: "ÖZIL@Example.com"}
	if err := e.store.CreateClient(ctx, cl); err != nil {
		t.Fatal(err)
	}
	token := mail.UnsubscribeToken(e.cfg.SessionSecret, cl.ID, ann.ID, cl.Email)
	if raw, _ := base64.RawURLEncoding.DecodeString(token); !strings.HasSuffix(string(raw), "ÖZIL@Example.com") {
		t.Fatalf("the link carries %q", raw)
	}
	resp, body := e.client().postRaw(t, "/u/"+token, url.Values{"List-Unsubscribe": {"One-Click"}})
	wantStatus(t, resp, body, http.StatusOK)
	if got, _ := e.store.ClientByID(ctx, store.Own(ann.ID), cl.ID); got.UnsubscribedAt == nil {
		t.Fatal("the client in capitals was not unsubscribed")
	}
	if err := e.store.DeleteClient(ctx, ann.ID, cl.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, "/clients", url.Values{"email": {"özil@example.com"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	v := e.client()
	v.page(t, "/u/"+token)
	resp, body = v.post(t, "/u/"+token+"/resubscribe", nil)
	wantRedirect(t, resp, body, "/u/"+token)
	if flash := flashAfter(t, v, resp); !strings.Contains(flash, "gets mailings from") {
		t.Errorf("subscribed again, with a client of the address listed again: %q", flash)
	}
	if again, err := e.store.ClientByAddress(ctx, ann.ID, "ÖZIL@EXAMPLE.COM"); err != nil || again.UnsubscribedAt != nil {
		t.Errorf("the client listed again after Subscribe again: %+v, %v", again, err)
	}
}

// A run's attempts, from the runs table: the log, its status filter, its
// pager and its CSV keep to the run; another mailing's run is not found.
func TestAttemptLogOfOneRun(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	path := "/mailings/" + id(o.mailing.ID)
	now := time.Now()
	first := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: now.Add(-2 * time.Hour), FinishedAt: &now, Total: 1})
	second := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: now.Add(-time.Hour), FinishedAt: &now, Total: 1})
	code := 550
	for _, a := range []*model.Attempt{
		{RunID: first.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: "first-run@example.com", Status: model.AttemptFailure, Code: &code, Response: "550 no", Tries: 1},
		{RunID: second.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: "second-run@example.com", Status: model.AttemptSuccess, Response: "250 ok", Tries: 1},
	} {
		if _, err := e.db.NewInsert().Model(a).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	links := c.page(t, path).Find("[data-testid=run-attempts]")
	if links.Length() != 2 || links.Last().AttrOr("href", "") != path+"/attempts?run="+id(first.ID) {
		t.Fatalf("the runs table links %d runs' attempts, the last to %q", links.Length(), links.Last().AttrOr("href", ""))
	}
	// The log of all runs says each attempt's run, and leads to its log
	// (the same address tried in two runs looked the same); a run's own
	// log needs no such column.
	var runs []string
	c.page(t, path+"/attempts").Find("[data-testid=attempt-run]").Each(func(_ int, s *goquery.Selection) {
		runs = append(runs, s.Text()+" "+s.AttrOr("href", ""))
	})
	if want := []string{"#" + id(second.ID) + " " + path + "/attempts?run=" + id(second.ID), "#" + id(first.ID) + " " + path + "/attempts?run=" + id(first.ID)}; strings.Join(runs, "|") != strings.Join(want, "|") {
		t.Errorf("the log's runs: %q, want %q", runs, want)
	}
	doc := c.page(t, path+"/attempts?run="+id(first.ID))
	if doc.Find("[data-testid=attempt-run]").Length() != 0 {
		t.Error("a run's own log tells each attempt's run")
	}
	if rows := doc.Find("[data-testid=attempt-row]").Text(); !strings.Contains(rows, "first-run@") || strings.Contains(rows, "second-run@") {
		t.Errorf("the first run's log shows:\n%s", rows)
	}
	if !strings.Contains(doc.Find("[data-testid=attempts-run]").Text(), "Run #"+id(first.ID)) {
		t.Errorf("the log does not say which run it shows")
	}
	if href := doc.Find("[data-testid=attempts-csv]").AttrOr("href", ""); href != path+"/attempts.csv?run="+id(first.ID) {
		t.Errorf("the run's CSV link is %q", href)
	}
	if href := doc.Find("[data-testid=filter-status-failure]").AttrOr("href", ""); !strings.Contains(href, "run="+id(first.ID)) {
		t.Errorf("the run's failure filter links to %q", href)
	}
	if href := doc.Find("[data-testid=attempts-run] a").AttrOr("href", ""); href != path+"/attempts" {
		t.Errorf("the log's All runs links to %q", href)
	}
	if doc := c.page(t, path+"/attempts?run="+id(second.ID)+"&status=failure"); doc.Find("[data-testid=attempt-row]").Length() != 0 {
		t.Errorf("the second run's failures show %d rows", doc.Find("[data-testid=attempt-row]").Length())
	}
	resp, body := c.get(t, path+"/attempts.csv?run="+id(second.ID))
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "second-run@") || strings.Contains(body, "first-run@") || !strings.Contains(resp.Header.Get("Content-Disposition"), "-run-"+id(second.ID)) {
		t.Errorf("the second run's CSV (%s):\n%s", resp.Header.Get("Content-Disposition"), body)
	}
	other := makeObjects(t, e, ann)
	elsewhere := e.insertRun(t, &model.Run{MailingID: other.mailing.ID, Trigger: model.TriggerManual, StartedAt: now})
	for _, bad := range []string{id(elsewhere.ID), "nope", "999999"} {
		if resp, _ := c.get(t, path+"/attempts?run="+bad); resp.StatusCode != http.StatusNotFound {
			t.Errorf("run %s of the log: %d", bad, resp.StatusCode)
		}
	}
}

// "Send now" asked for without saying which runs were seen (the
// contract's route) a moment after the mailing's planned send started
// (saved to start now, then sent at once) is that send, not a second one
// to everyone; later, it starts a run as always.
func TestSendNowJustAfterThePlannedSend(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	sendableNow(t, e, o.mailing.ID)
	path := "/mailings/" + id(o.mailing.ID)
	runs := func() int64 { return runCount(t, e, o.mailing.ID) }
	now := time.Now()
	planned := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerScheduled, DueAt: &now, StartedAt: now.Add(-5 * time.Second), FinishedAt: &now, Total: 1})
	resp, body := c.post(t, path+"/send", nil)
	wantRedirect(t, resp, body, path)
	if flash := flashAfter(t, c, resp); !strings.Contains(flash, "planned send started a moment ago") || runs() != 1 {
		t.Fatalf("Send now a moment after the planned send: %d runs, flash %q", runs(), flash)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET started_at = now() - interval '2 minutes' WHERE id = ?", planned.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, path+"/send", nil)
	wantRedirect(t, resp, body, path)
	if flash := flashAfter(t, c, resp); !strings.HasPrefix(flash, "Sending to") || runs() != 2 {
		t.Fatalf("Send now two minutes after the planned send: %d runs, flash %q", runs(), flash)
	}
}

// runCount is how many runs the mailing has had.
func runCount(t *testing.T, e *env, mailingID int64) int64 {
	t.Helper()
	n, err := e.db.NewSelect().TableExpr("runs").Where("mailing_id = ?", mailingID).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
