package web_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/views/component"
)

type mailingWorld struct {
	e        *env
	c        *client
	ann      *model.User
	msg      *model.Message
	clientA  *model.Client
	clientB  *model.Client
	foreign  objects // another user's
	tokyo    *time.Location
	start    time.Time // in Tokyo, on the minute
	startStr string
	endStr   string
}

func newMailingWorld(t testing.TB) *mailingWorld {
	t.Helper()
	e := newEnv(t)
	ctx := context.Background()
	w := &mailingWorld{e: e, c: signedIn(t, e, "ann@example.com", model.RoleUser)}
	w.ann, _ = e.store.UserByEmail(ctx, "ann@example.com")
	if err := e.store.UpdateProfile(ctx, w.ann.ID, store.Profile{FullName: "Ann", TimeZone: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	w.msg = &model.Message{OwnerID: w.ann.ID, Subject: "Spring sale", Body: "Hi {{name}}"}
	w.clientA = &model.Client{OwnerID: w.ann.ID, Email: "a@example.com"}
	w.clientB = &model.Client{OwnerID: w.ann.ID, Email: "b@example.com"}
	for _, err := range []error{e.store.CreateMessage(ctx, w.msg), e.store.CreateClient(ctx, w.clientA), e.store.CreateClient(ctx, w.clientB)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	w.foreign = makeObjects(t, e, newUser(t, e, "eve@example.com", model.RoleUser))
	w.tokyo, _ = time.LoadLocation("Asia/Tokyo")
	w.start = time.Now().In(w.tokyo).Add(48 * time.Hour).Truncate(time.Minute)
	w.startStr = w.start.Format("2006-01-02T15:04")
	w.endStr = w.start.Add(72 * time.Hour).Format("2006-01-02T15:04")
	return w
}

func (w *mailingWorld) form(mod func(url.Values)) url.Values {
	v := url.Values{"message_id": {id(w.msg.ID)}, "starts_at": {w.startStr}, "ends_at": {w.endStr}, "repeat": {"weekly"},
		"recipient_ids": {id(w.clientA.ID)}, "recipients": {id(w.clientB.ID)}}
	if mod != nil {
		mod(v)
	}
	return v
}

func TestMailingCreate(t *testing.T) {
	w := newMailingWorld(t)
	c := w.c
	ctx := context.Background()

	resp, body := c.get(t, "/mailings/new")
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	if doc.Find(`select[name=message_id] option[value="`+id(w.msg.ID)+`"]`).Length() != 1 ||
		doc.Find(`select[name=message_id] option[value="`+id(w.foreign.message.ID)+`"]`).Length() != 0 {
		t.Fatal("message choices are not exactly the owner's")
	}

	past := time.Now().In(w.tokyo).Add(-time.Hour).Format("2006-01-02T15:04")
	for name, tc := range map[string]struct {
		field string
		mod   func(url.Values)
	}{
		"no message":        {"message_id", func(v url.Values) { v.Set("message_id", "") }},
		"another's message": {"message_id", func(v url.Values) { v.Set("message_id", id(w.foreign.message.ID)) }},
		"bad message id":    {"message_id", func(v url.Values) { v.Set("message_id", "x1") }},
		"bad repeat":        {"repeat", func(v url.Values) { v.Set("repeat", "hourly") }},
		"no start":          {"starts_at", func(v url.Values) { v.Set("starts_at", "") }},
		"bad start":         {"starts_at", func(v url.Values) { v.Set("starts_at", "tomorrow") }},
		"start in the past": {"starts_at", func(v url.Values) { v.Set("starts_at", past) }},
		"end before start":  {"ends_at", func(v url.Values) { v.Set("ends_at", w.start.Add(-time.Minute).Format("2006-01-02T15:04")) }},
		"end equals start":  {"ends_at", func(v url.Values) { v.Set("ends_at", w.startStr) }},
		"no recipients":     {"recipients", func(v url.Values) { v.Del("recipients"); v.Set("recipient_ids", "") }},
		"bad recipient id":  {"recipients", func(v url.Values) { v.Set("recipient_ids", "1,abc") }},
		"inline message without subject": {"new_subject", func(v url.Values) {
			v.Set("message_id", "new")
			v.Set("new_body", "Body")
		}},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := c.post(t, "/mailings", w.form(tc.mod))
			wantStatus(t, resp, body, http.StatusUnprocessableEntity)
			if fieldError(t, body, tc.field) == "" {
				t.Fatalf("no error beside %s:\n%.3000s", tc.field, body)
			}
			// The control in error is described by its message, for a
			// screen reader to read it with the control.
			doc := parseHTML(t, body)
			errID, _ := doc.Find(`[data-field-error="` + tc.field + `"]`).Attr("id")
			if errID == "" || doc.Find(`[aria-describedby~="`+errID+`"]`).Length() == 0 {
				t.Errorf("no control of %s is described by its error (id %q)", tc.field, errID)
			}
			// ...and marked invalid: a bare aria-invalid is read as false,
			// and the red border did not show on the message's select.
			if tc.field != "recipients" && doc.Find(`[name="`+tc.field+`"][aria-invalid="true"]`).Length() != 1 {
				t.Errorf("the control of %s is not marked invalid", tc.field)
			}
			if name != "bad start" && name != "no start" && inputValue(t, body, "starts_at") != w.form(tc.mod).Get("starts_at") {
				t.Errorf("typed start lost: %q", inputValue(t, body, "starts_at"))
			}
		})
	}
	var n int
	if err := w.e.db.NewRaw("SELECT count(*) FROM mailings WHERE owner_id = ?", w.ann.ID).Scan(ctx, &n); err != nil || n != 0 {
		t.Fatalf("rejected forms created %d mailings", n)
	}

	// The minute under way is not past (a form holds minutes): a mailing
	// can start now; the minute before is refused.
	if s := time.Now().Second(); s >= 50 { // two posts in the same minute, even on a slow machine
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	minute := time.Now().In(w.tokyo).Truncate(time.Minute)
	resp, body = c.post(t, "/mailings", w.form(func(v url.Values) { v.Set("starts_at", minute.Add(-time.Minute).Format("2006-01-02T15:04")) }))
	if wantStatus(t, resp, body, http.StatusUnprocessableEntity); fieldError(t, body, "starts_at") != "The first send must be now or later." {
		t.Errorf("a start a minute ago: %q", fieldError(t, body, "starts_at"))
	}
	resp, body = c.post(t, "/mailings", w.form(func(v url.Values) { v.Set("starts_at", minute.Format("2006-01-02T15:04")) }))
	wantStatus(t, resp, body, http.StatusSeeOther)
	if now, err := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mustID(t, resp.Header.Get("Location"))); err != nil || !now.StartsAt.Equal(minute) {
		t.Fatalf("a mailing starting in the minute under way: %+v, %v", now, err)
	} else if _, err := w.e.store.DeleteMailing(ctx, w.ann.ID, now.ID); err != nil {
		t.Fatal(err)
	}

	resp, body = c.post(t, "/mailings", w.form(nil))
	wantStatus(t, resp, body, http.StatusSeeOther)
	loc := resp.Header.Get("Location")
	m, err := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mustID(t, loc))
	if err != nil {
		t.Fatal(err)
	}
	if !m.StartsAt.Equal(w.start) {
		t.Errorf("starts_at stored %v, want %v (Tokyo wall clock to UTC)", m.StartsAt, w.start.UTC())
	}
	if m.Recipients != 2 || m.Repeat != model.RepeatWeekly || m.Status != model.StatusCreated {
		t.Errorf("stored %+v", m)
	}
	resp, body = c.get(t, loc)
	wantStatus(t, resp, body, http.StatusOK)
	doc = parseHTML(t, body)
	if doc.Find("[data-testid=recipients-table] tbody tr").Length() != 2 || !strings.Contains(doc.Find("[data-testid=starts]").Text(), w.start.Format("2006-01-02 15:04")) {
		t.Fatalf("mailing page:\n%s", body)
	}

	// A message written inline is created with the mailing.
	resp, body = c.post(t, "/mailings", w.form(func(v url.Values) {
		v.Set("message_id", "new")
		v.Set("new_subject", "Written inline")
		v.Set("new_body", "Inline body")
	}))
	wantStatus(t, resp, body, http.StatusSeeOther)
	m2, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mustID(t, resp.Header.Get("Location")))
	if m2.Subject != "Written inline" {
		t.Fatalf("inline message: %q", m2.Subject)
	}
}

// create saves the world's form as a new mailing and returns its page
// and id.
func (w *mailingWorld) create(t testing.TB) (string, int64) {
	t.Helper()
	resp, body := w.c.post(t, "/mailings", w.form(nil))
	wantStatus(t, resp, body, http.StatusSeeOther)
	loc := resp.Header.Get("Location")
	return loc, mustID(t, loc)
}

// The new mailing form offers the next whole hour of the user's clock,
// in a zone half an hour off UTC's too.
func TestNewMailingStartsOnTheHour(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ann, _ := e.store.UserByEmail(context.Background(), "ann@example.com")
	if err := e.store.UpdateProfile(context.Background(), ann.ID, store.Profile{FullName: "Ann", TimeZone: "Asia/Kolkata"}); err != nil {
		t.Fatal(err)
	}
	_, body := c.get(t, "/mailings/new")
	if start := inputValue(t, body, "starts_at"); !strings.HasSuffix(start, ":00") {
		t.Errorf("the first send offered at %q, not on the hour", start)
	}
}

// The last evening of 9998 west of UTC is 9999 there: it is taken, and
// the mailing's pages show it (a time past 9999 in UTC is refused, as the
// database would not give it back).
func TestMailingEndingInTheLastYear(t *testing.T) {
	w := newMailingWorld(t)
	if err := w.e.store.UpdateProfile(context.Background(), w.ann.ID, store.Profile{FullName: "Ann", TimeZone: "Pacific/Honolulu"}); err != nil {
		t.Fatal(err)
	}
	resp, body := w.c.post(t, "/mailings", w.form(func(v url.Values) {
		v.Set("ends_at", "9998-12-31T20:00")
		v.Set("repeat", "monthly")
	}))
	wantStatus(t, resp, body, http.StatusSeeOther)
	resp, body = w.c.get(t, resp.Header.Get("Location"))
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "9998") {
		t.Errorf("the mailing's page does not show its end in 9998")
	}
	resp, body = w.c.get(t, "/mailings")
	wantStatus(t, resp, body, http.StatusOK)
}

// Another owner's client, chosen by a forged form, is answered as an id
// that is no client at all: left out, or when it is the only one chosen,
// refused alike. Refusing it alone told a forger which ids exist in other
// accounts.
func TestMailingFormForgedRecipientAnsweredAsNoClient(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	const missing = "987654321"
	answers := map[string]string{}
	for name, rid := range map[string]string{"forged": id(w.foreign.client.ID), "missing": missing} {
		resp, body := w.c.post(t, "/mailings", w.form(func(v url.Values) { v.Set("recipient_ids", rid); v.Del("recipients") }))
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		answers[name] = fieldError(t, body, "recipients")

		resp, body = w.c.post(t, "/mailings", w.form(func(v url.Values) { v.Add("recipients", rid) }))
		wantStatus(t, resp, body, http.StatusSeeOther)
		m, err := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mustID(t, resp.Header.Get("Location")))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := w.e.store.RecipientIDs(ctx, m.ID); !slices.Equal(got, []int64{w.clientA.ID, w.clientB.ID}) {
			t.Errorf("%s recipient: the mailing's recipients are %v, want only ann's two clients", name, got)
		}
	}
	if answers["forged"] == "" || answers["forged"] != answers["missing"] {
		t.Errorf("another owner's client is answered %q, an id that is no client %q", answers["forged"], answers["missing"])
	}
}

func mustID(t testing.TB, loc string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscanf(loc[strings.LastIndexByte(loc, '/')+1:], "%d", &n); err != nil {
		t.Fatalf("no id in %q", loc)
	}
	return n
}

func TestMailingEditRules(t *testing.T) {
	w := newMailingWorld(t)
	c := w.c
	ctx := context.Background()
	loc, mid := w.create(t)

	resp, body := c.get(t, loc+"/edit")
	wantStatus(t, resp, body, http.StatusOK)
	if inputValue(t, body, "starts_at") != w.startStr || inputValue(t, body, "recipient_ids") == "" {
		t.Fatalf("edit form not filled in the user's zone:\n%s", body)
	}
	// Created: everything may change; recipients are replaced.
	later := w.start.Add(time.Hour).Format("2006-01-02T15:04")
	resp, body = c.post(t, loc, w.form(func(v url.Values) {
		v.Set("starts_at", later)
		v.Set("repeat", "daily")
		v.Del("recipients")
	}))
	wantRedirect(t, resp, body, loc)
	m, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mid)
	if m.Repeat != model.RepeatDaily || m.Recipients != 1 || !m.StartsAt.Equal(w.start.Add(time.Hour)) {
		t.Fatalf("after edit: %+v", m)
	}

	// Running: only the end and the recipients change; the rest is kept.
	if _, err := w.e.db.ExecContext(ctx, "UPDATE mailings SET status = 'running', starts_at = now() - interval '1 hour' WHERE id = ?", mid); err != nil {
		t.Fatal(err)
	}
	_, body = c.get(t, loc+"/edit")
	if !strings.Contains(body, "only the end of sending and the recipients") {
		t.Error("running mailing's form does not say what can change")
	}
	// (The running form disables the locked fields: they are not posted. A
	// form that changes them is refused: TestMailingEditFormStaleAfterRunStarted.)
	newEnd := w.start.Add(100 * time.Hour).Format("2006-01-02T15:04")
	resp, body = c.post(t, loc, url.Values{"ends_at": {newEnd}, "recipient_ids": {id(w.clientA.ID) + "," + id(w.clientB.ID)}})
	wantRedirect(t, resp, body, loc)
	m2, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mid)
	if m2.MessageID != w.msg.ID || m2.Repeat != model.RepeatDaily || m2.StartsAt.After(time.Now()) {
		t.Errorf("a running mailing's locked fields changed: %+v", m2)
	}
	if m2.Recipients != 2 || !m2.EndsAt.Equal(w.start.Add(100*time.Hour)) {
		t.Errorf("a running mailing's end or recipients did not change: %+v", m2)
	}
	resp, body = c.post(t, loc, url.Values{"ends_at": {time.Now().In(w.tokyo).Add(-time.Minute).Format("2006-01-02T15:04")}, "recipient_ids": {id(w.clientA.ID)}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if fieldError(t, body, "ends_at") == "" {
		t.Error("a running mailing accepted an end in the past")
	}

	// Finished: read-only.
	if _, err := w.e.db.ExecContext(ctx, "UPDATE mailings SET status = 'finished' WHERE id = ?", mid); err != nil {
		t.Fatal(err)
	}
	resp, body = c.get(t, loc+"/edit")
	wantRedirect(t, resp, body, loc)
	resp, body = c.post(t, loc, w.form(nil))
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	_, body = c.get(t, loc)
	if strings.Contains(body, loc+"/edit") {
		t.Error("a finished mailing offers Edit")
	}
}

func TestMailingListFilterDisableAndPicker(t *testing.T) {
	w := newMailingWorld(t)
	c := w.c
	ctx := context.Background()
	ids := map[string]int64{}
	for _, st := range []string{"created", "running", "finished", "disabled"} {
		resp, body := c.post(t, "/mailings", w.form(nil))
		wantStatus(t, resp, body, http.StatusSeeOther)
		ids[st] = mustID(t, resp.Header.Get("Location"))
	}
	_, _ = w.e.db.ExecContext(ctx, "UPDATE mailings SET status = 'running' WHERE id = ?", ids["running"])
	_, _ = w.e.db.ExecContext(ctx, "UPDATE mailings SET status = 'finished' WHERE id = ?", ids["finished"])

	// Disable inline (htmx): the status cell comes back with who and when.
	resp, body := c.request(t, "POST", "/mailings/"+id(ids["disabled"])+"/disable", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	if doc.Find("[data-testid=badge]").Text() != "disabled" || !strings.Contains(doc.Find("[data-testid=disabled-by]").Text(), "ann@example.com") ||
		doc.Find("[data-testid=enable-mailing]").Length() != 1 {
		t.Fatalf("disabled status cell:\n%s", body)
	}
	m, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), ids["disabled"])
	if m.DisabledAt == nil || m.DisabledBy == nil || *m.DisabledBy != w.ann.ID {
		t.Fatalf("disable not recorded: %+v", m.Mailing)
	}

	for filter, want := range map[string]int64{"created": ids["created"], "running": ids["running"], "finished": ids["finished"], "disabled": ids["disabled"]} {
		resp, body := c.request(t, "GET", "/mailings?status="+filter, nil, true)
		wantStatus(t, resp, body, http.StatusOK)
		rows := parseHTML(t, body).Find("[data-testid=mailing-row]")
		if rows.Length() != 1 || rows.AttrOr("id", "") != "mailing-"+id(want) {
			t.Errorf("status=%s: %d rows (%s)", filter, rows.Length(), rows.AttrOr("id", ""))
		}
		// Mailings of one message are told apart by their number, as
		// their pages name them.
		if n := rows.Find("[data-testid=mailing-number]").Text(); n != "#"+id(want) {
			t.Errorf("status=%s: the row is numbered %q", filter, n)
		}
	}
	resp, body = c.request(t, "POST", "/mailings/"+id(ids["disabled"])+"/enable", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	if parseHTML(t, body).Find("[data-testid=badge]").Text() != "created" {
		t.Errorf("enabled mailing shows %q", parseHTML(t, body).Find("[data-testid=badge]").Text())
	}

	// The picker offers the owner's clients, searched and paged.
	resp, body = c.request(t, "GET", "/mailings/picker?picker_q=b%40", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	opts := parseHTML(t, body).Find("[data-testid=picker-option]")
	if opts.Length() != 1 || opts.AttrOr("value", "") != id(w.clientB.ID) {
		t.Fatalf("picker for b@:\n%s", body)
	}
	// A client that runs skip is marked so where it is chosen.
	if _, err := w.e.db.ExecContext(ctx, "UPDATE clients SET unsubscribed_at = now() WHERE id = ?", w.clientB.ID); err != nil {
		t.Fatal(err)
	}
	_, body = c.request(t, "GET", "/mailings/picker?picker_q=example", nil, true)
	for _, o := range []struct {
		c    *model.Client
		mark string
	}{{w.clientA, ""}, {w.clientB, "unsubscribed"}} {
		label := parseHTML(t, body).Find(`label:has([data-testid=picker-option][value="` + id(o.c.ID) + `"])`)
		if got := label.Find("[data-testid=badge]").Text(); got != o.mark {
			t.Errorf("the picker marks %s %q, want %q", o.c.Email, got, o.mark)
		}
	}

	// Opened by hand, the picker's part is not shown alone: its form is.
	resp, body = c.get(t, "/mailings/picker?picker_q=b%40")
	wantRedirect(t, resp, body, "/mailings/new")
	for referer, want := range map[string]string{
		c.e.cfg.BaseURL + "/mailings/12/edit?x=1": "/mailings/12/edit", // the form it was opened from
		c.e.cfg.BaseURL + "/mailings/new":         "/mailings/new",
		c.e.cfg.BaseURL + "/mailings/12":          "/mailings/new", // not a form
		"https://elsewhere.example//evil.example": "/mailings/new",
		"/mailings/0/edit":                        "/mailings/new",
	} {
		req, _ := http.NewRequest(http.MethodGet, "/mailings/picker?page=2", nil)
		req.Header.Set("Referer", referer)
		resp, body = c.send(t, req)
		wantRedirect(t, resp, body, want)
	}
	resp, body = c.get(t, "/mailings/picker/ids?q=example")
	wantStatus(t, resp, body, http.StatusOK)
	var got []int64
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 2 {
		t.Fatalf("picker ids = %s, %v", body, err)
	}
}

// The mailings list searches as the clients and messages lists do
// (DESIGN §4: "/mailings… same pattern"): ?q= matches the subject of the
// message a mailing sends, and works with the status filter, whose links
// keep the search.
func TestMailingListSearch(t *testing.T) {
	w := newMailingWorld(t)
	c := w.c
	ctx := context.Background()
	autumn := &model.Message{OwnerID: w.ann.ID, Subject: "Autumn news", Body: "Hi"}
	if err := w.e.store.CreateMessage(ctx, autumn); err != nil {
		t.Fatal(err)
	}
	resp, body := c.post(t, "/mailings", w.form(nil)) // "Spring sale"
	wantStatus(t, resp, body, http.StatusSeeOther)
	spring := mustID(t, resp.Header.Get("Location"))
	resp, body = c.post(t, "/mailings", w.form(func(v url.Values) { v.Set("message_id", id(autumn.ID)) }))
	wantStatus(t, resp, body, http.StatusSeeOther)

	for _, tc := range []struct {
		path string
		htmx bool
		want []int64
	}{
		{"/mailings?q=SPRING", false, []int64{spring}},
		{"/mailings?q=spring&status=created", true, []int64{spring}},
		{"/mailings?q=spring&status=finished", true, nil},
		{"/mailings?q=nothing-like-it", true, nil},
	} {
		resp, body := c.request(t, "GET", tc.path, nil, tc.htmx)
		wantStatus(t, resp, body, http.StatusOK)
		var got []int64
		parseHTML(t, body).Find("[data-testid=mailing-row]").Each(func(_ int, s *goquerySelection) {
			got = append(got, mustID(t, "/mailings/"+strings.TrimPrefix(s.AttrOr("id", ""), "mailing-")))
		})
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s lists %v, want %v", tc.path, got, tc.want)
		}
	}
	_, body = c.get(t, "/mailings?q=spring")
	doc := parseHTML(t, body)
	if v, _ := doc.Find(`form[role=search] input[name=q]`).Attr("value"); v != "spring" {
		t.Errorf("search box shows %q, want the search", v)
	}
	if href, _ := doc.Find(`[data-filter=running]`).Attr("href"); !strings.Contains(href, "q=spring") {
		t.Errorf("the running filter links to %q, dropping the search", href)
	}
	if got := strings.TrimSpace(c.page(t, "/mailings?q=spring&status=finished").Find("[data-testid=empty]").Text()); got != "No finished mailings match “spring”." {
		t.Errorf("a search with nothing under the filter says %q", got)
	}
	_, body = c.get(t, "/mailings?status=created")
	doc = parseHTML(t, body)
	if formID := doc.Find("form[role=search]").AttrOr("id", ""); formID == "" || doc.Find(`input[name=status][value=created][form="`+formID+`"]`).Length() != 1 {
		t.Errorf("the search form (id %q) does not send the status chosen", formID)
	}
}

func TestMailingTenThousandRecipients(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	var rows []store.ImportRow
	for i := 0; i < 10000; i++ {
		rows = append(rows, store.ImportRow{Email: fmt.Sprintf("r%05d@example.com", i)})
	}
	if _, err := w.e.store.UpsertClients(ctx, w.ann.ID, rows); err != nil {
		t.Fatal(err)
	}
	ids, err := w.e.store.ClientIDs(ctx, w.ann.ID, "", 20000)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, v := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id(v))
	}
	resp, body := w.c.post(t, "/mailings", w.form(func(v url.Values) { v.Del("recipients"); v.Set("recipient_ids", b.String()) }))
	wantStatus(t, resp, body, http.StatusSeeOther)
	loc := resp.Header.Get("Location")
	m, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mustID(t, loc))
	if m.Recipients != len(ids) {
		t.Fatalf("recipients %d, want %d", m.Recipients, len(ids))
	}
	resp, body = w.c.get(t, loc+"/edit")
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	// The chosen ids are one hidden field: the only boxes are the picker's
	// first page.
	boxes := doc.Find("input[type=checkbox]").Length()
	if doc.Find("[data-testid=recipient-count]").Text() != component.Count(int64(len(ids))) || boxes > 50 || boxes != doc.Find("#picker-results input[type=checkbox]").Length() {
		t.Fatalf("edit form: count %q, %d checkboxes", doc.Find("[data-testid=recipient-count]").Text(), boxes)
	}
	resp, body = w.c.get(t, loc)
	wantStatus(t, resp, body, http.StatusOK)
	if n := parseHTML(t, body).Find("[data-testid=recipients-table] tbody tr").Length(); n != 50 {
		t.Errorf("mailing page shows %d recipients at once, want a page of 50", n)
	}
}

func TestAttemptLog(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	o := makeObjects(t, w.e, w.ann)
	run := w.e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now()})
	code := 550
	for _, a := range []*model.Attempt{
		{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email, Status: model.AttemptSuccess, Response: "250 2.0.0 queued as ABC", Tries: 1},
		{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &w.clientA.ID, Email: "a@example.com", Status: model.AttemptFailure, Code: &code, Response: "550 5.1.1 no such user", Tries: 1},
	} {
		if _, err := w.e.db.NewInsert().Model(a).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	base := "/mailings/" + id(o.mailing.ID) + "/attempts"
	resp, body := w.c.get(t, base)
	wantStatus(t, resp, body, http.StatusOK)
	if n := parseHTML(t, body).Find("[data-testid=attempt-row]").Length(); n != 2 {
		t.Fatalf("%d attempts listed", n)
	}
	resp, body = w.c.request(t, "GET", base+"?status=failure", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	rows := parseHTML(t, body).Find("[data-testid=attempt-row]")
	if rows.Length() != 1 || !strings.Contains(rows.Text(), "550 5.1.1 no such user") || !strings.Contains(rows.Text(), "a@example.com") {
		t.Fatalf("failure filter:\n%s", body)
	}
	_, body = w.c.get(t, "/mailings/"+id(o.mailing.ID))
	if !strings.Contains(body, "queued as ABC") || parseHTML(t, body).Find("[data-testid=runs-table] tbody tr").Length() != 1 {
		t.Errorf("mailing page lacks its runs or attempts:\n%s", body)
	}
}

// A form opened while the mailing was still created and posted after its
// first run started (here by Send now): the message, first send and repeat
// typed in it no longer apply, and the owner is told so, not "Mailing saved."
func TestMailingEditFormStaleAfterRunStarted(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	resp, body := w.c.post(t, "/mailings", w.form(nil))
	wantStatus(t, resp, body, http.StatusSeeOther)
	loc := resp.Header.Get("Location")
	mid := mustID(t, loc)
	resp, body = w.c.get(t, loc+"/edit")
	wantStatus(t, resp, body, http.StatusOK)
	if parseHTML(t, body).Find("select[name=message_id][disabled]").Length() != 0 {
		t.Fatal("a created mailing's form locks the message")
	}
	resp, body = w.c.post(t, loc+"/send", nil) // meanwhile, in another tab
	wantRedirect(t, resp, body, loc)
	if m, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mid); m.Status != model.StatusRunning {
		t.Fatalf("status after Send now: %s", m.Status)
	}
	other := &model.Message{OwnerID: w.ann.ID, Subject: "Other", Body: "x"}
	if err := w.e.store.CreateMessage(ctx, other); err != nil {
		t.Fatal(err)
	}
	later := w.start.Add(24 * time.Hour).Format("2006-01-02T15:04")
	resp, body = w.c.post(t, loc, w.form(func(v url.Values) {
		v.Set("message_id", id(other.ID))
		v.Set("starts_at", later)
		v.Set("repeat", "daily")
	}))
	m, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mid)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d (flash: %q), want 422 saying the mailing started meanwhile; stored message %d (typed %d), repeat %s (typed daily)",
			resp.StatusCode, flashAfter(t, w.c, resp), m.MessageID, other.ID, m.Repeat)
	}
	if !strings.Contains(body, "can no longer change: the mailing has started sending") {
		t.Errorf("refusal not explained:\n%.3000s", body)
	}
	if m.MessageID != w.msg.ID || m.Repeat != model.RepeatWeekly {
		t.Errorf("locked fields changed: %+v", m.Mailing)
	}
	// The running form (locked fields disabled, so not posted) still saves.
	resp, body = w.c.post(t, loc, url.Values{"ends_at": {later}, "recipient_ids": {id(w.clientA.ID) + "," + id(w.clientB.ID)}})
	wantRedirect(t, resp, body, loc)
}

// flashAfter follows a redirect and returns the flash it shows ("" when the
// answer is not a redirect).
func flashAfter(t testing.TB, c *client, resp *http.Response) string {
	t.Helper()
	to := resp.Header.Get("Location")
	if to == "" {
		return ""
	}
	_, body := c.get(t, to)
	return strings.TrimSpace(parseHTML(t, body).Find("#flash .flash").Text())
}

// Filtering the list by status with htmx swaps the list: the filter the
// list now shows is the one marked current (the nav stayed on "All").
func TestMailingListFilterMarksCurrentAfterSwap(t *testing.T) {
	w := newMailingWorld(t)
	resp, body := w.c.post(t, "/mailings", w.form(nil))
	wantStatus(t, resp, body, http.StatusSeeOther)
	resp, body = w.c.get(t, "/mailings")
	wantStatus(t, resp, body, http.StatusOK)
	link := parseHTML(t, body).Find(`a[data-filter=running]`)
	target := link.AttrOr("hx-target", "")
	if link.Length() != 1 || target == "" {
		t.Fatalf("no htmx filter link:\n%s", body)
	}
	resp, body = w.c.request(t, "GET", link.AttrOr("hx-get", ""), nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	if doc.Find(target).Length() != 1 {
		t.Fatalf("the answer is not the %s it replaces:\n%s", target, body)
	}
	if got := strings.TrimSpace(doc.Find(target + ` [aria-current]`).Text()); got != "Running" {
		t.Errorf("after filtering by running, the current filter shown is %q (the swapped fragment holds no filters, so the page keeps All marked)", got)
	}
}

// A mailing that ran more than a screenful of times shows all its runs,
// a page at a time: the figures count 25 runs, the table must reach them.
func TestMailingRunsTablePaged(t *testing.T) {
	w := newMailingWorld(t)
	o := makeObjects(t, w.e, w.ann)
	for i := range 25 {
		started := time.Now().Add(-time.Duration(25-i) * time.Hour)
		fin := started.Add(time.Minute)
		w.e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: started, FinishedAt: &fin, Total: 1, Succeeded: 1})
	}
	loc := "/mailings/" + id(o.mailing.ID)
	resp, body := w.c.get(t, loc)
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	if got := doc.Find("[data-testid=mailing-runs]").Text(); got != "25" {
		t.Fatalf("figures: %q runs", got)
	}
	seen := doc.Find("[data-testid=runs-table] tbody tr").Length()
	next := doc.Find("#mailing-runs [data-testid=next-page]").AttrOr("href", "")
	if next == "" {
		t.Fatalf("the runs table shows %d of 25 runs and no way to the others", seen)
	}
	resp, body = w.c.get(t, next)
	wantStatus(t, resp, body, http.StatusOK)
	seen += parseHTML(t, body).Find("[data-testid=runs-table] tbody tr").Length()
	if seen != 25 {
		t.Errorf("runs reachable: %d, want 25", seen)
	}
	// Paged with htmx, the runs section alone comes back.
	req, _ := http.NewRequest("GET", next, nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Target", "mailing-runs")
	resp, body = w.c.send(t, req)
	wantStatus(t, resp, body, http.StatusOK)
	if d := parseHTML(t, body); d.Find("#mailing-runs").Length() != 1 || d.Find("[data-testid=mailing-show]").Length() != 0 {
		t.Errorf("htmx runs page:\n%.2000s", body)
	}
}

// Disabling a mailing from its own page with htmx changes more than its
// status cell: Send now (and the waiting progress box) must go, and come
// back when it is enabled. The answer swapped only the status cell, so the
// page kept offering Send now on a disabled mailing (and enabling it did
// not offer Send now until a reload).
func TestMailingToggleOnItsPageRefreshesActions(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	page := "/mailings/" + id(o.mailing.ID)
	_, body := c.get(t, page)
	if parseHTML(t, body).Find("[data-testid=send-now]").Length() != 1 {
		t.Fatalf("no Send now on an open mailing:\n%s", body)
	}
	for _, action := range []string{"disable", "enable"} {
		req, _ := http.NewRequest("POST", page+"/"+action, nil)
		req.Header.Set("HX-Request", "true")
		req.Header.Set("HX-Current-URL", e.cfg.BaseURL+page)
		req.Header.Set("X-CSRF-Token", c.csrf(t))
		resp, body := c.send(t, req)
		wantStatus(t, resp, body, http.StatusOK)
		if resp.Header.Get("HX-Refresh") != "true" {
			t.Errorf("%s from the mailing's page: only the status cell is swapped; Send now stays as it was", action)
		}
		// The page reloaded says what the switch did.
		if flash := c.page(t, page).Find("#flash .flash").Text(); !strings.HasPrefix(flash, "Mailing "+action+"d") {
			t.Errorf("%s from the mailing's page: the page reloaded says %q", action, flash)
		}
		// The same switch in the list swaps just the cell.
		req, _ = http.NewRequest("POST", page+"/"+action, nil)
		req.Header.Set("HX-Request", "true")
		req.Header.Set("HX-Current-URL", e.cfg.BaseURL+"/mailings")
		req.Header.Set("X-CSRF-Token", c.csrf(t))
		resp, body = c.send(t, req)
		wantStatus(t, resp, body, http.StatusOK)
		if resp.Header.Get("HX-Refresh") != "" || parseHTML(t, body).Find("[data-testid=mailing-status]").Length() != 1 {
			t.Errorf("%s from the list: %v\n%s", action, resp.Header, body)
		}
	}
	_, body = c.get(t, page)
	if parseHTML(t, body).Find("[data-testid=send-now]").Length() != 1 {
		t.Error("no Send now after enabling again")
	}
}

// A mailing's page says when it sends next, while it will: not once
// switched off, not past its window, and "due now" when the time came.
func TestMailingPageNextSend(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	path := "/mailings/" + id(o.mailing.ID)
	next := func() (string, bool) {
		t.Helper()
		resp, body := c.get(t, path)
		wantStatus(t, resp, body, http.StatusOK)
		sel := parseHTML(t, body).Find("[data-testid=next-send]")
		return strings.TrimSpace(sel.Text()), sel.Length() == 1
	}
	if got, ok := next(); !ok || got != o.mailing.StartsAt.UTC().Format("2006-01-02 15:04 MST") {
		t.Errorf("next send %q (shown %v), want the first send %s", got, ok, o.mailing.StartsAt)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET next_run_at = now() - interval '1 second' WHERE id = ?", o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := next(); got != "due now" {
		t.Errorf("an occurrence whose time came: next send %q, want due now", got)
	}
	if err := e.store.SetMailingDisabled(ctx, store.Own(ann.ID), o.mailing.ID, ann.ID, true); err != nil {
		t.Fatal(err)
	}
	if got, ok := next(); ok {
		t.Errorf("a disabled mailing's next send: %q", got)
	}
	if err := e.store.SetMailingDisabled(ctx, store.Own(ann.ID), o.mailing.ID, ann.ID, false); err != nil {
		t.Fatal(err)
	}
	for what, set := range map[string]string{
		"an occurrence past the end": "next_run_at = ends_at",
		"a finished mailing":         "status = 'finished'",
		"nothing planned":            "next_run_at = NULL",
	} {
		// Each from a mailing that shows its next send, one thing changed.
		if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET status = 'created', next_run_at = starts_at WHERE id = ?", o.mailing.ID); err != nil {
			t.Fatal(err)
		}
		if _, ok := next(); !ok {
			t.Fatal("no next send shown for a planned mailing")
		}
		if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET "+set+" WHERE id = ?", o.mailing.ID); err != nil {
			t.Fatal(err)
		}
		if got, ok := next(); ok {
			t.Errorf("%s: next send %q", what, got)
		}
	}
}

// A filtered attempt log with nothing to show says what it filtered
// ("No failed attempts."), not "No attempts yet." under a run that sent.
func TestAttemptLogEmptyFilterSaysWhat(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	o := makeObjects(t, w.e, w.ann)
	run := w.e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now()})
	a := &model.Attempt{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email, Status: model.AttemptSuccess, Response: "250 ok", Tries: 1}
	if _, err := w.e.db.NewInsert().Model(a).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	base := "/mailings/" + id(o.mailing.ID) + "/attempts"
	for _, htmx := range []bool{false, true} {
		resp, body := w.c.request(t, "GET", base+"?status=failure", nil, htmx)
		wantStatus(t, resp, body, http.StatusOK)
		if got := strings.TrimSpace(parseHTML(t, body).Find("[data-testid=empty]").Text()); got != "No failed attempts." {
			t.Errorf("htmx %v: the empty failure filter says %q, want No failed attempts.", htmx, got)
		}
	}
	m2 := mailingWithRecipients(t, w.e, w.ann, 1)
	_, body := w.c.get(t, "/mailings/"+id(m2.ID)+"/attempts?status=success")
	if got := strings.TrimSpace(parseHTML(t, body).Find("[data-testid=empty]").Text()); got != "No successful attempts." {
		t.Errorf("the empty success filter says %q, want No successful attempts.", got)
	}
}

// A mailing whose window has closed is finished at once, everywhere: the
// worker's reconciler records it within a minute (or when it next runs),
// and until then its page said "running", offered Edit, and took an edit
// that moved its end into the future and sent again.
func TestMailingEndedIsFinishedBeforeTheWorkerRecordsIt(t *testing.T) {
	w := newMailingWorld(t)
	c := w.c
	ctx := context.Background()
	loc, mid := w.create(t)
	if _, err := w.e.db.ExecContext(ctx, "UPDATE mailings SET status = 'running', starts_at = now() - interval '2 hours', ends_at = now() - interval '1 second' WHERE id = ?", mid); err != nil {
		t.Fatal(err)
	}

	_, body := c.get(t, loc)
	doc := parseHTML(t, body)
	if got := doc.Find("[data-testid=mailing-show] [data-testid=badge]").Text(); got != "finished" {
		t.Errorf("the page of a mailing whose window closed says %q", got)
	}
	if strings.Contains(body, loc+"/edit") || doc.Find("[data-testid=send-now]").Length() != 0 || doc.Find("[data-testid=disable-mailing]").Length() != 0 {
		t.Error("a mailing whose window closed offers Edit, Send now or Disable")
	}
	if strings.Contains(body, loc+"/attempts") {
		t.Error("a mailing with no attempts links to its empty attempt log")
	}
	resp, body := c.post(t, loc+"/disable", nil)
	wantRedirect(t, resp, body, loc)
	if m, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mid); m.Disabled() {
		t.Error("a mailing whose window closed was switched off: Disable is refused, not only hidden")
	}
	if _, body := c.get(t, loc); !strings.Contains(body, "nothing to switch off") {
		t.Error("a refused Disable says nothing")
	}
	// One switched off before its window closed may be switched on: it
	// shows as finished then, and the owner is told it sends no more.
	if _, err := w.e.db.ExecContext(ctx, "UPDATE mailings SET disabled_at = now(), disabled_by = owner_id WHERE id = ?", mid); err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(t, loc+"/enable", nil)
	wantRedirect(t, resp, body, loc)
	if _, body := c.get(t, loc); !strings.Contains(body, "Its window has closed, so it sends no more.") {
		t.Error("enabling a mailing whose window closed does not say it sends no more")
	}
	resp, body = c.get(t, loc+"/edit")
	wantRedirect(t, resp, body, loc)
	resp, body = c.post(t, loc, w.form(nil))
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if m, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mid); !m.EndsAt.Before(time.Now()) {
		t.Errorf("an edit moved the end of a mailing whose window closed: %v", m.EndsAt)
	}

	for filter, want := range map[string]int{"finished": 1, "running": 0} {
		_, body := c.request(t, "GET", "/mailings?status="+filter, nil, true)
		if got := parseHTML(t, body).Find("[data-testid=mailing-row]").Length(); got != want {
			t.Errorf("status=%s lists %d, want %d", filter, got, want)
		}
	}
	_, body = c.get(t, "/mailings")
	if got := parseHTML(t, body).Find("#mailing-" + id(mid) + " [data-testid=badge]").Text(); got != "finished" {
		t.Errorf("the list says %q", got)
	}
	_, body = c.get(t, "/stats")
	doc = parseHTML(t, body)
	if doc.Find("[data-testid=stat-finished]").Text() != "1" || doc.Find("[data-testid=stat-running]").Text() != "0" {
		t.Errorf("statistics: finished %q, running %q", doc.Find("[data-testid=stat-finished]").Text(), doc.Find("[data-testid=stat-running]").Text())
	}
	if got := doc.Find("[data-testid=stats-mailing] [data-testid=badge]").Text(); got != "finished" {
		t.Errorf("statistics per mailing say %q", got)
	}
}

// submit sends the page's form found by sel as a browser without script
// would: to its action, with its named inputs as they are.
func submit(t *testing.T, c *client, doc *goquery.Document, sel string) (*http.Response, string) {
	t.Helper()
	f := doc.Find(sel)
	if f.Length() != 1 || !strings.EqualFold(f.AttrOr("method", ""), "post") {
		t.Fatalf("no plain form %s (%d found)", sel, f.Length())
	}
	vals := url.Values{}
	f.Find("input[name]").Each(func(_ int, in *goquery.Selection) { vals.Add(in.AttrOr("name", ""), in.AttrOr("value", "")) })
	return c.postRaw(t, f.AttrOr("action", ""), vals)
}

// The switch of a mailing is a form: without script it posts, with its
// CSRF token, and the page shows the mailing switched. (It was a button
// only htmx made do anything.) The figures say "1 run", not "1 runs".
func TestMailingSwitchWorksWithoutScript(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	path := "/mailings/" + id(o.mailing.ID)
	resp, body := submit(t, c, c.page(t, path), "form:has([data-testid=disable-mailing])")
	wantRedirect(t, resp, body, path)
	if m, _ := e.store.MailingByID(ctx, store.Own(o.mailing.OwnerID), o.mailing.ID); !m.Disabled() {
		t.Fatal("the plain Disable form did not switch the mailing off")
	}
	resp, body = submit(t, c, c.page(t, path), "form:has([data-testid=enable-mailing])")
	wantRedirect(t, resp, body, path)
	if m, _ := e.store.MailingByID(ctx, store.Own(o.mailing.OwnerID), o.mailing.ID); m.Disabled() {
		t.Fatal("the plain Enable form did not switch the mailing on")
	}
	// The list's switches are forms too.
	resp, body = c.get(t, "/mailings")
	wantStatus(t, resp, body, http.StatusOK)
	if parseHTML(t, body).Find("form[method=post]:has([data-testid=disable-mailing]) input[name=_csrf]").Length() != 1 {
		t.Errorf("the list's Disable is no plain form")
	}

	fin := time.Now()
	run := &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: fin, FinishedAt: &fin, Total: 1, Succeeded: 1}
	if _, err := e.db.NewInsert().Model(run).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(c.page(t, path).Find("article:has([data-testid=mailing-runs])").Text()), " "); got != "1 run" {
		t.Errorf("the runs figure reads %q", got)
	}
}

// Copy on a mailing's page opens a new mailing's form with its message,
// repeat and recipients, and a window as long as its own; the copy is a
// mailing of its own once saved. Only the owner's mailing can be copied.
func TestMailingCopy(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	resp, body := w.c.post(t, "/mailings", w.form(nil)) // weekly, a window of 72 hours, clients A and B
	wantStatus(t, resp, body, http.StatusSeeOther)
	orig := mustID(t, resp.Header.Get("Location"))
	page := w.c.page(t, "/mailings/"+id(orig))
	href, _ := page.Find("[data-testid=copy-mailing]").Attr("href")
	if href != "/mailings/new?copy="+id(orig) {
		t.Fatalf("Copy links to %q", href)
	}
	doc := w.c.page(t, href)
	if got := doc.Find(`select[name=message_id] option[selected]`).AttrOr("value", ""); got != id(w.msg.ID) {
		t.Errorf("the copy's message is %q", got)
	}
	if got := doc.Find(`select[name=repeat] option[selected]`).AttrOr("value", ""); got != "weekly" {
		t.Errorf("the copy repeats %q", got)
	}
	ids := doc.Find(`input[name=recipient_ids]`).AttrOr("value", "")
	if ids != id(w.clientA.ID)+","+id(w.clientB.ID) {
		t.Errorf("the copy's recipients are %q", ids)
	}
	starts, err1 := time.ParseInLocation("2006-01-02T15:04", doc.Find(`input[name=starts_at]`).AttrOr("value", ""), w.tokyo)
	ends, err2 := time.ParseInLocation("2006-01-02T15:04", doc.Find(`input[name=ends_at]`).AttrOr("value", ""), w.tokyo)
	if err1 != nil || err2 != nil || ends.Sub(starts) != 72*time.Hour || !starts.After(time.Now()) {
		t.Errorf("the copy's window: %v to %v (%v, %v)", starts, ends, err1, err2)
	}
	if !strings.Contains(doc.Find("[data-testid=copy-of]").Text(), "Spring sale") {
		t.Errorf("the form does not say what it copies")
	}

	// Saved as it is, the copy is a new mailing with the same recipients.
	resp, body = w.c.post(t, "/mailings", url.Values{"message_id": {id(w.msg.ID)}, "repeat": {"weekly"}, "recipient_ids": {ids},
		"starts_at": {starts.Format("2006-01-02T15:04")}, "ends_at": {ends.Format("2006-01-02T15:04")}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	copied := mustID(t, resp.Header.Get("Location"))
	if copied == orig {
		t.Fatal("the copy saved over the original")
	}
	got, err := w.e.store.RecipientIDs(ctx, copied)
	if err != nil || len(got) != 2 {
		t.Errorf("the copy's recipients: %v (%v)", got, err)
	}

	// Another's mailing, a manager's view of it, or no mailing: 404.
	boss := signedIn(t, w.e, "boss@example.com", model.RoleManager)
	for _, tc := range []struct {
		c    *client
		path string
	}{
		{w.c, "/mailings/new?copy=" + id(w.foreign.mailing.ID)},
		{w.c, "/mailings/new?copy=abc"},
		{boss, "/mailings/new?copy=" + id(orig)},
	} {
		resp, body := tc.c.get(t, tc.path)
		wantStatus(t, resp, body, http.StatusNotFound)
	}
	if boss.page(t, "/mailings/"+id(orig)).Find("[data-testid=copy-mailing]").Length() != 0 {
		t.Error("a manager is offered to copy another's mailing")
	}
	// What a manager switched off, its owner can neither switch on again
	// nor send as a copy.
	resp, body = boss.post(t, "/mailings/"+id(orig)+"/disable", nil)
	wantStatus(t, resp, body, http.StatusSeeOther)
	if w.c.page(t, "/mailings/"+id(orig)).Find("[data-testid=copy-mailing]").Length() != 0 {
		t.Error("the owner is offered to copy a mailing a manager switched off")
	}
	resp, body = w.c.get(t, "/mailings/new?copy="+id(orig))
	wantStatus(t, resp, body, http.StatusForbidden)
	if !strings.Contains(body, "A manager switched this mailing off, so it cannot be copied.") {
		t.Errorf("the refusal does not say why:\n%.1500s", body)
	}
}

// The attempt log downloads as CSV, oldest first, of the status chosen,
// read in batches past the first thousand; a reply a spreadsheet would run
// as a formula is written inert.
func TestAttemptLogCSV(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	o := makeObjects(t, w.e, w.ann)
	run := w.e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now()})
	var rows []store.ImportRow
	for i := 0; i < 1200; i++ {
		rows = append(rows, store.ImportRow{Email: fmt.Sprintf("r%04d@example.com", i)})
	}
	if _, err := w.e.store.UpsertClients(ctx, w.ann.ID, rows); err != nil {
		t.Fatal(err)
	}
	// 1,200 attempts in client order, every hundredth a failure whose reply
	// starts like a formula.
	if _, err := w.e.db.ExecContext(ctx, `INSERT INTO attempts (run_id, mailing_id, client_id, email, status, code, response, tries, attempted_at)
		SELECT ?, ?, id, email, CASE WHEN n % 100 = 0 THEN 'failure' ELSE 'success' END, CASE WHEN n % 100 = 0 THEN 550 ELSE 250 END,
			CASE WHEN n % 100 = 0 THEN '-ERR 5.1.1 no such user' ELSE '250 ok' END, 1, '2026-11-01 10:00:00+00'::timestamptz + n * interval '1 second'
		FROM (SELECT id, email, row_number() OVER (ORDER BY id) AS n FROM clients WHERE owner_id = ? AND email LIKE 'r%') AS c`,
		run.ID, o.mailing.ID, w.ann.ID); err != nil {
		t.Fatal(err)
	}
	base := "/mailings/" + id(o.mailing.ID) + "/attempts"
	if href, _ := w.c.page(t, base+"?status=failure&page=1").Find("[data-testid=attempts-csv]").Attr("href"); href != base+".csv?status=failure" {
		t.Errorf("the log's CSV link is %q", href)
	}
	read := func(c *client, path string) [][]string {
		t.Helper()
		resp, body := c.get(t, path)
		wantStatus(t, resp, body, http.StatusOK)
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
			t.Errorf("%s: %s, %s", path, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
		}
		recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "\ufeff"))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	all := read(w.c, base+".csv")
	if len(all) != 1201 || strings.Join(all[0], ",") != "attempted_at,email,status,code,response,tries" {
		t.Fatalf("%d lines, header %v", len(all), all[0])
	}
	if got := strings.Join(all[1], ","); got != "2026-11-01T10:00:01Z,r0000@example.com,success,250,250 ok,1" {
		t.Errorf("first row %s", got)
	}
	if got := strings.Join(all[1200], ","); got != "2026-11-01T10:20:00Z,r1199@example.com,failure,550,'-ERR 5.1.1 no such user,1" {
		t.Errorf("last row %s", got)
	}
	resp, body := w.c.get(t, base+".csv?status=failure")
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, fmt.Sprintf(`filename="attempts-%d-failure-`, o.mailing.ID)) || !strings.Contains(body, "tries\r\n") {
		t.Errorf("the failures' file: %s, lines %q", cd, body[:min(len(body), 80)])
	}
	failed := read(w.c, base+".csv?status=failure")
	if len(failed) != 13 || failed[1][1] != "r0099@example.com" {
		t.Errorf("failures: %d lines, first %v", len(failed), failed[1])
	}
	boss := signedIn(t, w.e, "boss@example.com", model.RoleManager)
	if n := len(read(boss, base+".csv")); n != 1201 {
		t.Errorf("the manager's download has %d lines", n)
	}
	resp, body = w.c.get(t, "/mailings/"+id(w.foreign.mailing.ID)+"/attempts.csv")
	wantStatus(t, resp, body, http.StatusNotFound)
}

// Without JavaScript the picker still chooses: its first page comes with
// the form, and its buttons (search, choose all matching, clear) send the
// form, which comes back as typed with the choice made, saving nothing.
// Enter in a field still saves. Before, the results came only by htmx:
// a mailing could not be made without JavaScript.
func TestMailingPickerWithoutJavaScript(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	doc := w.c.page(t, "/mailings/new")
	if n := doc.Find("#picker-results [data-testid=picker-option]").Length(); n != 2 {
		t.Fatalf("the form comes with %d clients to choose, want 2", n)
	}
	// Enter presses the form's first button: without JavaScript a search,
	// so that Enter in the picker's search saves nothing.
	if first := doc.Find("[data-testid=mailing-form] button[type=submit]").First(); first.AttrOr("name", "") != "picker" || first.AttrOr("value", "") != "search" {
		t.Errorf("the form's first button, which Enter presses, is %q (%s=%s)", first.Text(), first.AttrOr("name", ""), first.AttrOr("value", ""))
	}
	_, before, _ := w.e.store.ListMailings(ctx, store.Own(w.ann.ID), "", "", store.NewPage(1, 50))
	post := func(path string, mod func(url.Values)) *goquery.Document {
		t.Helper()
		resp, body := w.c.post(t, path, w.form(mod))
		wantStatus(t, resp, body, http.StatusOK)
		return parseHTML(t, body)
	}
	count := func(d *goquery.Document) string { return d.Find("[data-testid=recipient-count]").Text() }

	// Search: the results match, what was typed and chosen stays.
	d := post("/mailings", func(v url.Values) {
		v.Set("picker", "search")
		v.Set("picker_q", "b@")
		v.Set("recipient_ids", id(w.clientA.ID))
		v.Del("recipients")
	})
	if got := d.Find("[data-testid=picker-option]").Length(); got != 1 || d.Find("[data-testid=picker-search]").AttrOr("value", "") != "b@" {
		t.Errorf("a search for b@ shows %d clients", got)
	}
	if count(d) != "1" || d.Find("select[name=repeat] option[selected]").AttrOr("value", "") != "weekly" || d.Find("[data-field-error]").Length() != 0 {
		t.Errorf("after a search: %s chosen, repeat %q, %d errors", count(d), d.Find("select[name=repeat] option[selected]").AttrOr("value", ""), d.Find("[data-field-error]").Length())
	}
	// Choose all matching, then clear.
	d = post("/mailings", func(v url.Values) {
		v.Set("picker", "all")
		v.Set("picker_q", "")
		v.Del("recipients")
		v.Del("recipient_ids")
	})
	if count(d) != "2" || d.Find("[data-testid=picker-option][checked]").Length() != 2 {
		t.Errorf("choose all: %s chosen, %d ticked", count(d), d.Find("[data-testid=picker-option][checked]").Length())
	}
	if d = post("/mailings", func(v url.Values) { v.Set("picker", "clear") }); count(d) != "0" {
		t.Errorf("clear: %s chosen", count(d))
	}
	// A box shown and left unticked is no longer chosen, though the list
	// of those chosen still has it.
	both := id(w.clientA.ID) + "," + id(w.clientB.ID)
	untick := func(v url.Values) {
		v.Set("recipient_ids", both)
		v.Set("picker_shown", both)
		v["recipients"] = []string{id(w.clientB.ID)}
	}
	if d = post("/mailings", func(v url.Values) { untick(v); v.Set("picker", "search") }); count(d) != "1" {
		t.Errorf("a box unticked: %s chosen", count(d))
	}
	resp, body := w.c.post(t, "/mailings", w.form(untick))
	wantStatus(t, resp, body, http.StatusSeeOther)
	if m, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mustID(t, resp.Header.Get("Location"))); m.Recipients != 1 {
		t.Errorf("saved with a box unticked: %d recipients, want 1", m.Recipients)
	}
	// Of all the posts above, only the one Save made a mailing.
	if _, after, _ := w.e.store.ListMailings(ctx, store.Own(w.ann.ID), "", "", store.NewPage(1, 50)); after.Total != before.Total+1 {
		t.Fatalf("%d mailings after the picker's buttons and one save, %d before", after.Total, before.Total)
	}

	// The same on an edit: nothing changes until it is saved.
	resp, body = w.c.post(t, "/mailings", w.form(nil))
	wantStatus(t, resp, body, http.StatusSeeOther)
	mid := mustID(t, resp.Header.Get("Location"))
	d = post("/mailings/"+id(mid), func(v url.Values) { v.Set("picker", "clear"); v.Set("repeat", "daily") })
	if count(d) != "0" || d.Find("select[name=repeat] option[selected]").AttrOr("value", "") != "daily" {
		t.Errorf("clear on an edit: %s chosen", count(d))
	}
	if m, _ := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mid); m.Recipients != 2 || m.Repeat != model.RepeatWeekly {
		t.Errorf("a picker's button changed the mailing: %d recipients, %s", m.Recipients, m.Repeat)
	}
}

// "Show them" lists the recipients the form has chosen so far, ticked,
// newest first, a page at a time: with htmx as a fragment (the next page
// asked for with the form, by POST), without it as the form again. Ids
// that are not the owner's clients (another's, deleted, made up) are not
// shown, and nothing is saved.
func TestMailingPickerShowsTheChosen(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	const pickerPage = 50
	var mine []string
	for i := range pickerPage + 5 {
		c := &model.Client{OwnerID: w.ann.ID, Email: fmt.Sprintf("chosen-%02d@example.com", i)}
		if err := w.e.store.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		mine = append(mine, id(c.ID))
	}
	chosen := strings.Join(append(mine, id(w.foreign.client.ID), "999999"), ",")
	fragment := func(path string) *goquery.Document {
		t.Helper()
		resp, body := w.c.request(t, "POST", path, w.form(func(v url.Values) { v.Set("recipient_ids", chosen); v.Del("recipients") }), true)
		wantStatus(t, resp, body, http.StatusOK)
		return parseHTML(t, body)
	}
	d := fragment("/mailings/picker/chosen")
	opts := d.Find("[data-testid=picker-option]")
	if opts.Length() != pickerPage || opts.Filter("[checked]").Length() != pickerPage || opts.First().AttrOr("value", "") != mine[len(mine)-1] ||
		!strings.Contains(d.Text(), "Showing the "+strconv.Itoa(len(mine))+" recipients chosen") || d.Find("[data-testid=picker-back]").Length() != 1 {
		t.Fatalf("the chosen, first page: %d shown, %d ticked, first %s\n%s", opts.Length(), opts.Filter("[checked]").Length(), opts.First().AttrOr("value", ""), d.Text())
	}
	// The next page starts after the last one shown, whatever was
	// unticked on this one meanwhile (the choice is then smaller: a page
	// by number skipped as many as were unticked).
	more := d.Find("[data-picker-more]").AttrOr("hx-post", "")
	if want := "/mailings/picker/chosen?before=" + mine[len(mine)-pickerPage]; more != want {
		t.Fatalf("the next page is asked for by %q, want %q", more, want)
	}
	chosen = strings.Join(append(slices.Clone(mine[:len(mine)-3]), id(w.foreign.client.ID), "999999"), ",") // the newest three unticked
	d = fragment(more)
	if n := d.Find("[data-testid=picker-option]").Length(); n != 5 || d.Find("[data-testid=picker-option]").First().AttrOr("value", "") != mine[4] ||
		strings.Contains(d.Text(), w.foreign.client.Email) || d.Find("[data-picker-more]").Length() != 0 {
		t.Errorf("the chosen, second page: %d shown\n%s", n, d.Text())
	}
	// None chosen says so.
	resp, body := w.c.request(t, "POST", "/mailings/picker/chosen", w.form(func(v url.Values) { v.Del("recipient_ids"); v.Del("recipients") }), true)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "No recipients chosen yet") || !strings.Contains(body, "Back to all clients") {
		t.Errorf("none chosen:\n%s", body)
	}
	if !w.c.page(t, "/mailings/new").Find("[data-testid=picker-chosen]").Is("[disabled]") {
		t.Errorf("Show them is not disabled with none chosen")
	}
	// The button is on the form, and without JavaScript it sends the form,
	// which comes back with the chosen ones as its results.
	if b := w.c.page(t, "/mailings/new").Find("[data-testid=picker-chosen]"); b.AttrOr("name", "") != "picker" || b.AttrOr("value", "") != "chosen" || b.AttrOr("hx-post", "") != "/mailings/picker/chosen" {
		t.Fatalf("the form's Show them button: %v", b.Nodes)
	}
	chosen = strings.Join(append(mine, id(w.foreign.client.ID), "999999"), ",")
	_, before, _ := w.e.store.ListMailings(ctx, store.Own(w.ann.ID), "", "", store.NewPage(1, 50))
	resp, body = w.c.post(t, "/mailings", w.form(func(v url.Values) { v.Set("picker", "chosen"); v.Set("recipient_ids", chosen); v.Del("recipients") }))
	wantStatus(t, resp, body, http.StatusOK)
	d = parseHTML(t, body)
	if n := d.Find("#picker-results [data-testid=picker-option][checked]").Length(); n != pickerPage || d.Find("[data-testid=recipient-count]").Text() != strconv.Itoa(len(mine)+2) {
		t.Errorf("without JavaScript: %d chosen shown, count %q", n, d.Find("[data-testid=recipient-count]").Text())
	}
	// Its More… sends the form too, and the form comes back with the next
	// page in place of the first; a box unticked on the first page is no
	// longer chosen.
	next := d.Find("#picker-results [data-testid=picker-more]")
	if next.AttrOr("type", "") != "submit" || next.AttrOr("name", "") != "picker" || next.AttrOr("value", "") != "chosen:"+mine[len(mine)-pickerPage] {
		t.Fatalf("More… of the chosen without JavaScript: %v", next.Nodes)
	}
	shown := d.Find("#picker-results [data-picker-shown]").AttrOr("value", "")
	resp, body = w.c.post(t, "/mailings", w.form(func(v url.Values) {
		v.Set("picker", next.AttrOr("value", ""))
		v.Set("recipient_ids", chosen)
		v.Set("picker_shown", shown)
		v["recipients"] = mine[:len(mine)-1] // the newest unticked
	}))
	wantStatus(t, resp, body, http.StatusOK)
	d = parseHTML(t, body)
	if opts := d.Find("#picker-results [data-testid=picker-option]"); opts.Length() != 5 || opts.First().AttrOr("value", "") != mine[4] ||
		d.Find("[data-testid=recipient-count]").Text() != strconv.Itoa(len(mine)+1) || d.Find("#picker-results [data-testid=picker-more]").Length() != 0 ||
		d.Find("[data-testid=picker-back]").Length() != 1 || !strings.Contains(d.Find("#picker-results").Text(), "More of the 54 recipients chosen") {
		t.Errorf("the chosen's second page without JavaScript: %d shown, first %s, count %q\n%s",
			opts.Length(), opts.First().AttrOr("value", ""), d.Find("[data-testid=recipient-count]").Text(), d.Find("#picker-results").Text())
	}
	// Its buttons land on the picker in the page that comes back.
	if got := d.Find("[data-testid=picker-back]").AttrOr("formaction", ""); got != "/mailings#recipient-picker" {
		t.Errorf("Back lands on %q", got)
	}
	// A search's More… without JavaScript: its next page, and what was
	// typed in the form kept.
	resp, body = w.c.post(t, "/mailings", w.form(func(v url.Values) { v.Set("picker", "search"); v.Set("picker_q", "chosen-"); v.Del("recipients") }))
	wantStatus(t, resp, body, http.StatusOK)
	d = parseHTML(t, body)
	next = d.Find("#picker-results [data-testid=picker-more]")
	if next.AttrOr("value", "") != "search:2" || next.AttrOr("hx-get", "") != "/mailings/picker?picker_q=chosen-&page=2" || next.AttrOr("formaction", "") != "/mailings#recipient-picker" {
		t.Fatalf("a search's More…: %v", next.Nodes)
	}
	resp, body = w.c.post(t, "/mailings", w.form(func(v url.Values) {
		v.Set("picker", "search:2")
		v.Set("picker_q", "chosen-")
		v.Set("repeat", "daily")
		v.Del("recipients")
	}))
	wantStatus(t, resp, body, http.StatusOK)
	d = parseHTML(t, body)
	if opts := d.Find("#picker-results [data-testid=picker-option]"); opts.Length() != 5 || opts.First().AttrOr("value", "") != mine[4] ||
		d.Find("select[name=repeat] option[selected]").AttrOr("value", "") != "daily" || !strings.Contains(strings.Join(strings.Fields(d.Find("#picker-results").Text()), " "), "51–55 of 55 matching") {
		t.Errorf("a search's second page without JavaScript: %d shown, first %s\n%s", opts.Length(), opts.First().AttrOr("value", ""), d.Find("#picker-results").Text())
	}
	if _, after, _ := w.e.store.ListMailings(ctx, store.Own(w.ann.ID), "", "", store.NewPage(1, 50)); after.Total != before.Total {
		t.Errorf("Show them or More… saved a mailing")
	}
	// Another's session sees only their own among the same ids.
	eve := signedIn(t, w.e, "eve2@example.com", model.RoleUser)
	resp, body = eve.request(t, "POST", "/mailings/picker/chosen", url.Values{"recipient_ids": {chosen}}, true)
	wantStatus(t, resp, body, http.StatusOK)
	if strings.Contains(body, "@example.com") || strings.Contains(body, w.foreign.client.Email) {
		t.Errorf("another user is shown Ann's or Eve's clients:\n%s", body)
	}
}

// A repeat longer than the window sends once: saving it says so (the
// page would otherwise say "Every month" of a mailing that sends once).
func TestMailingRepeatLongerThanItsWindow(t *testing.T) {
	w := newMailingWorld(t)
	short := w.start.Add(2 * time.Hour).Format("2006-01-02T15:04")
	resp, body := w.c.post(t, "/mailings", w.form(func(v url.Values) { v.Set("repeat", "monthly"); v.Set("ends_at", short) }))
	wantStatus(t, resp, body, http.StatusSeeOther)
	if got := flashAfter(t, w.c, resp); !strings.Contains(got, "Its window closes before a second send, so it sends once") {
		t.Errorf("a monthly mailing with a window of two hours saved: %q", got)
	}
	long := w.start.Add(40 * 24 * time.Hour).Format("2006-01-02T15:04")
	resp, body = w.c.post(t, "/mailings", w.form(func(v url.Values) { v.Set("repeat", "monthly"); v.Set("ends_at", long) }))
	wantStatus(t, resp, body, http.StatusSeeOther)
	if got := flashAfter(t, w.c, resp); strings.Contains(got, "sends once") {
		t.Errorf("a monthly mailing with a window of 40 days saved: %q", got)
	}
	// An edit that shortens the window is told too.
	resp, body = w.c.post(t, resp.Header.Get("Location"), w.form(func(v url.Values) { v.Set("repeat", "monthly"); v.Set("ends_at", short) }))
	wantStatus(t, resp, body, http.StatusSeeOther)
	if got := flashAfter(t, w.c, resp); !strings.HasPrefix(got, "Mailing saved. Its window closes before a second send") {
		t.Errorf("an edit to a short window saved: %q", got)
	}
}

// Two tabs editing one mailing: the save from the form opened before the
// other's save is refused (what it typed kept, and said why) instead of
// undoing it without a word; saving that form again replaces the change.
// A switch off and on meanwhile is no edit, and a form without a version
// saves as before.
func TestMailingEditsFromTwoTabs(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	resp, body := w.c.post(t, "/mailings", w.form(nil))
	wantStatus(t, resp, body, http.StatusSeeOther)
	path := resp.Header.Get("Location")
	mid := mustID(t, path)
	version := func() string { return formVersion(t, w.c, path+"/edit") }
	endsAt := func() string {
		m, err := w.e.store.MailingByID(ctx, store.Own(w.ann.ID), mid)
		if err != nil {
			t.Fatal(err)
		}
		return m.EndsAt.In(w.tokyo).Format("2006-01-02T15:04")
	}
	first, second := version(), version()
	for _, step := range []string{"/disable", "/enable"} {
		resp, body := w.c.post(t, path+step, nil)
		wantStatus(t, resp, body, http.StatusSeeOther)
	}
	one := w.start.Add(96 * time.Hour).Format("2006-01-02T15:04")
	two := w.start.Add(120 * time.Hour).Format("2006-01-02T15:04")
	resp, body = w.c.post(t, path, w.form(func(v url.Values) { v.Set("ends_at", one); v.Set("version", first) }))
	wantRedirect(t, resp, body, path)
	// The same form sent twice (a double click without JavaScript) is the
	// same save: no change elsewhere to speak of.
	resp, body = w.c.post(t, path, w.form(func(v url.Values) { v.Set("ends_at", one); v.Set("version", first) }))
	wantRedirect(t, resp, body, path)

	// Without JavaScript the picker sends the form back: it keeps the
	// version it was opened on.
	resp, body = w.c.post(t, path, w.form(func(v url.Values) {
		v.Set("ends_at", two)
		v.Set("version", second)
		v.Set("picker", "search")
	}))
	if got := parseHTML(t, body).Find("input[name=version]").AttrOr("value", ""); got != second {
		t.Fatalf("the picker's round trip carries version %q, want %q (status %d)", got, second, resp.StatusCode)
	}

	resp, body = w.c.post(t, path, w.form(func(v url.Values) { v.Set("ends_at", two); v.Set("version", second) }))
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	doc := parseHTML(t, body)
	if !strings.Contains(doc.Find("[data-testid=form-error]").Text(), "changed elsewhere") || doc.Find("input[name=ends_at]").AttrOr("value", "") != two {
		t.Fatalf("the second tab's save:\n%s", body)
	}
	if got := endsAt(); got != one {
		t.Fatalf("the refused save left the end at %s, want the first tab's %s", got, one)
	}
	again := doc.Find("input[name=version]").AttrOr("value", "")
	if again == "" || again == second {
		t.Fatalf("the refused form carries version %q, want the mailing's new one", again)
	}
	resp, body = w.c.post(t, path, w.form(func(v url.Values) { v.Set("ends_at", two); v.Set("version", again) }))
	wantRedirect(t, resp, body, path)
	if got := endsAt(); got != two {
		t.Fatalf("saved again, the end is %s, want %s", got, two)
	}
	resp, body = w.c.post(t, path, w.form(func(v url.Values) { v.Set("ends_at", one) }))
	wantRedirect(t, resp, body, path)
	if got := endsAt(); got != one {
		t.Fatalf("saved without a version, the end is %s, want %s", got, one)
	}
}

// A new mailing's or message's form sent twice (a double click without
// JavaScript, a post sent again after its answer was lost) creates one: a
// second mailing would mail its recipients twice. The form carries a key
// made when it was opened; one sent again with other settings creates
// another.
func TestFormSentTwiceCreatesOne(t *testing.T) {
	w := newMailingWorld(t)
	count := func(table string) int64 { return countRows(t, w.e, table, w.ann.ID) }
	key := func(path string) string { return formValue(t, w.c, path, "form_key") }
	mk := key("/mailings/new")
	if other := key("/mailings/new"); other == mk {
		t.Fatal("two openings of the new mailing's form have the same key")
	}
	withNew := func(end string) url.Values {
		return w.form(func(v url.Values) {
			v.Set("form_key", mk)
			v.Set("message_id", "new")
			v.Set("new_subject", "Autumn")
			v.Set("new_body", "Hello {{name}}")
			if end != "" {
				v.Set("ends_at", end)
			}
		})
	}
	resp, body := w.c.post(t, "/mailings", withNew(""))
	wantStatus(t, resp, body, http.StatusSeeOther)
	path := resp.Header.Get("Location")
	resp, body = w.c.post(t, "/mailings", withNew(""))
	wantRedirect(t, resp, body, path)
	if got := w.c.page(t, path).Find(".flash").Text(); !strings.Contains(got, "sent twice: the mailing was created once") {
		t.Errorf("the form sent twice: its mailing's page says %q", got)
	}
	if m, n := count("mailings"), count("messages"); m != 1 || n != 2 {
		t.Fatalf("the form sent twice: %d mailings and %d messages, want 1 and 2 (the world's and the form's)", m, n)
	}

	// Restored by Back, changed and sent (twice): another mailing, with
	// the same message.
	later := w.start.Add(96 * time.Hour).Format("2006-01-02T15:04")
	resp, body = w.c.post(t, "/mailings", withNew(later))
	wantStatus(t, resp, body, http.StatusSeeOther)
	laterPath := resp.Header.Get("Location")
	if laterPath == path || count("mailings") != 2 {
		t.Fatalf("the form sent again with another end went to %s (%d mailings), want another mailing", laterPath, count("mailings"))
	}
	resp, body = w.c.post(t, "/mailings", withNew(later))
	wantRedirect(t, resp, body, laterPath)
	if m, n := count("mailings"), count("messages"); m != 2 || n != 2 {
		t.Fatalf("the changed form sent twice: %d mailings and %d messages, want 2 and 2", m, n)
	}

	// A form refused keeps its key, so that its next post is the same
	// form.
	mk = key("/messages/new")
	resp, body = w.c.post(t, "/messages", url.Values{"form_key": {mk}, "subject": {""}, "body": {"Hi"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if got := inputValue(t, body, "form_key"); got != mk {
		t.Fatalf("the refused message form carries key %q, want %q", got, mk)
	}
	before := count("messages")
	msg := url.Values{"form_key": {mk}, "subject": {"Winter"}, "body": {"Hi {{name}}"}}
	resp, body = w.c.post(t, "/messages", msg)
	wantStatus(t, resp, body, http.StatusSeeOther)
	msgPath := resp.Header.Get("Location")
	resp, body = w.c.post(t, "/messages", msg)
	wantRedirect(t, resp, body, msgPath)
	if n := count("messages"); n != before+1 {
		t.Fatalf("the message form sent twice: %d messages, want %d", n, before+1)
	}

	// An edit that writes a new message, sent twice: the second post is
	// the first's save, and makes no second message.
	version := formVersion(t, w.c, path+"/edit")
	ek := key(path + "/edit")
	edit := w.form(func(v url.Values) {
		v.Set("version", version)
		v.Set("form_key", ek)
		v.Set("message_id", "new")
		v.Set("new_subject", "Spring again")
		v.Set("new_body", "Hello again {{name}}")
	})
	before = count("messages")
	for range 2 {
		resp, body = w.c.post(t, path, edit)
		wantRedirect(t, resp, body, path)
	}
	if n := count("messages"); n != before+1 {
		t.Fatalf("an edit writing a new message, sent twice: %d messages, want %d", n, before+1)
	}
}
