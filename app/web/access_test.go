package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"rassylka/app/model"
)

// Roles of the access matrix.
const (
	anon    = "anonymous"
	owner   = "owner"
	other   = "other user"
	manager = "manager"
	blocked = "blocked user"
)

var roles = []string{anon, owner, other, manager, blocked}

// route is one request of the matrix, made against fresh objects of the
// owner, with the status each role must get. A role without an entry must
// be sent to the sign-in page.
type route struct {
	method string
	path   func(o objects) string
	form   func(o objects) url.Values
	htmx   bool
	want   map[string]int
}

func futureLocal(d time.Duration) string {
	return time.Now().Add(d).UTC().Format("2006-01-02T15:04")
}

func TestAccessMatrix(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	users := map[string]*model.User{}
	clients := map[string]*client{anon: e.client()}
	for _, r := range []struct {
		role  string
		email string
		mrole model.Role
	}{{owner, "owner@example.com", model.RoleUser}, {other, "other@example.com", model.RoleUser},
		{manager, "manager@example.com", model.RoleManager}, {blocked, "blocked@example.com", model.RoleUser}} {
		clients[r.role] = signedIn(t, e, r.email, r.mrole)
		users[r.role], _ = e.store.UserByEmail(ctx, r.email)
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET blocked_at = now() WHERE id = ?", users[blocked].ID); err != nil {
		t.Fatal(err)
	}
	victim := newUser(t, e, "victim@example.com", model.RoleUser) // blocked and unblocked by the matrix
	// Each role has something of its own, so lists are never empty by accident.
	for _, r := range []string{other, manager} {
		makeObjects(t, e, users[r])
	}

	ok := func(own, oth, mgr int) map[string]int { return map[string]int{owner: own, other: oth, manager: mgr} }
	all := func(s int) map[string]int { return ok(s, s, s) }
	const (
		s200 = http.StatusOK
		s303 = http.StatusSeeOther
		s403 = http.StatusForbidden
		s404 = http.StatusNotFound
		s422 = http.StatusUnprocessableEntity
	)
	p := func(s string) func(objects) string { return func(objects) string { return s } }
	clientForm := func(objects) url.Values {
		return url.Values{"email": {"new-" + time.Now().Format("150405.000000000") + "@example.com"}, "full_name": {"N"}}
	}
	messageForm := func(objects) url.Values { return url.Values{"subject": {"Hi"}, "body": {"Text"}} }
	mailingForm := func(o objects) url.Values {
		return url.Values{"message_id": {id(o.message.ID)}, "starts_at": {futureLocal(2 * time.Hour)}, "ends_at": {futureLocal(5 * time.Hour)},
			"repeat": {"once"}, "recipient_ids": {id(o.client.ID)}}
	}
	routes := map[string]route{
		"list clients":        {method: "GET", path: p("/clients"), want: all(s200)},
		"list clients (all)":  {method: "GET", path: p("/clients?scope=all"), want: all(s200)},
		"new client":          {method: "GET", path: p("/clients/new"), want: all(s200)},
		"create client":       {method: "POST", path: p("/clients"), form: clientForm, want: all(s303)},
		"export clients":      {method: "GET", path: p("/clients/export.csv"), want: all(s200)},
		"import form":         {method: "GET", path: p("/clients/import"), want: all(s200)},
		"import without file": {method: "POST", path: p("/clients/import"), want: all(s422)},
		"import page, none":   {method: "GET", path: p("/clients/import/0123456789abcdef0123456789abcdef"), want: all(s404)},
		"show client":         {method: "GET", path: func(o objects) string { return "/clients/" + id(o.client.ID) }, want: ok(s200, s404, s200)},
		"client row (htmx)":   {method: "GET", path: func(o objects) string { return "/clients/" + id(o.client.ID) }, htmx: true, want: ok(s200, s404, s200)},
		"edit client":         {method: "GET", path: func(o objects) string { return "/clients/" + id(o.client.ID) + "/edit" }, want: ok(s200, s404, s404)},
		"update client":       {method: "POST", path: func(o objects) string { return "/clients/" + id(o.client.ID) }, form: clientForm, want: ok(s303, s404, s404)},
		"delete client (htmx)": {method: "DELETE", path: func(o objects) string { return "/clients/" + id(o.client.ID) }, htmx: true,
			want: ok(s200, s404, s404)},
		"delete client": {method: "POST", path: func(o objects) string { return "/clients/" + id(o.client.ID) + "/delete" }, want: ok(s303, s404, s404)},

		"list messages":   {method: "GET", path: p("/messages?scope=all"), want: all(s200)},
		"new message":     {method: "GET", path: p("/messages/new"), want: all(s200)},
		"create message":  {method: "POST", path: p("/messages"), form: messageForm, want: all(s303)},
		"show message":    {method: "GET", path: func(o objects) string { return "/messages/" + id(o.message.ID) }, want: ok(s200, s404, s200)},
		"edit message":    {method: "GET", path: func(o objects) string { return "/messages/" + id(o.message.ID) + "/edit" }, want: ok(s200, s404, s404)},
		"update message":  {method: "POST", path: func(o objects) string { return "/messages/" + id(o.message.ID) }, form: messageForm, want: ok(s303, s404, s404)},
		"test of message": {method: "POST", path: func(o objects) string { return "/messages/" + id(o.message.ID) + "/test" }, want: ok(s303, s404, s404)},
		"delete used message (htmx)": {method: "DELETE", path: func(o objects) string { return "/messages/" + id(o.message.ID) }, htmx: true,
			want: ok(s422, s404, s404)},
		"delete message": {method: "POST", path: func(o objects) string { return "/messages/" + id(o.message.ID) + "/delete" }, want: ok(s303, s404, s404)},

		"list mailings":  {method: "GET", path: p("/mailings?scope=all&status=created"), want: all(s200)},
		"new mailing":    {method: "GET", path: p("/mailings/new"), want: all(s200)},
		"create mailing": {method: "POST", path: p("/mailings"), form: mailingForm, want: ok(s303, s422, s422)},
		"show mailing":   {method: "GET", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) }, want: ok(s200, s404, s200)},
		"edit mailing":   {method: "GET", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/edit" }, want: ok(s200, s404, s404)},
		"copy mailing":   {method: "GET", path: func(o objects) string { return "/mailings/new?copy=" + id(o.mailing.ID) }, want: ok(s200, s404, s404)},
		"update mailing": {method: "POST", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) }, form: mailingForm, want: ok(s303, s404, s404)},
		"delete mailing (htmx)": {method: "DELETE", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) }, htmx: true,
			want: ok(s200, s404, s404)},
		"delete mailing":  {method: "POST", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/delete" }, want: ok(s303, s404, s404)},
		"disable mailing": {method: "POST", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/disable" }, want: ok(s303, s404, s303)},
		"disable mailing (htmx)": {method: "POST", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/disable" }, htmx: true,
			want: ok(s200, s404, s200)},
		"enable mailing":   {method: "POST", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/enable" }, want: ok(s303, s404, s303)},
		"attempt log":      {method: "GET", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/attempts?status=failure" }, want: ok(s200, s404, s200)},
		"attempt log CSV":  {method: "GET", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/attempts.csv" }, want: ok(s200, s404, s200)},
		"send now":         {method: "POST", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/send" }, want: ok(s303, s404, s404)},
		"retry failed":     {method: "POST", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/retry" }, want: ok(s303, s404, s404)},
		"send to the rest": {method: "POST", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/rest" }, want: ok(s303, s404, s404)},
		"progress":         {method: "GET", path: func(o objects) string { return "/mailings/" + id(o.mailing.ID) + "/progress" }, htmx: true, want: ok(286, s404, 286)},
		"clear bounce":     {method: "POST", path: func(o objects) string { return "/clients/" + id(o.client.ID) + "/bounce/clear" }, want: ok(s303, s404, s404)},
		"clear bounces":    {method: "POST", path: p("/clients/bounces/clear"), want: all(s303)},
		"bounced clients":  {method: "GET", path: p("/clients?scope=all&state=bounced"), want: all(s200)},
		"picker":           {method: "GET", path: p("/mailings/picker?picker_q=secret"), htmx: true, want: all(s200)},
		"picker ids":       {method: "GET", path: p("/mailings/picker/ids?q=secret"), want: all(s200)},

		"users":        {method: "GET", path: p("/users"), want: ok(s403, s403, s200)},
		"block user":   {method: "POST", path: func(objects) string { return "/users/" + id(victim.ID) + "/block" }, want: ok(s403, s403, s303)},
		"unblock user": {method: "POST", path: func(objects) string { return "/users/" + id(victim.ID) + "/unblock" }, want: ok(s403, s403, s303)},
		"dashboard":    {method: "GET", path: p("/"), want: all(s200)},

		"stats":       {method: "GET", path: p("/stats?range=7"), want: all(s200)},
		"stats (all)": {method: "GET", path: p("/stats?scope=all"), want: all(s200)},
		"stats of the owner": {method: "GET", path: func(objects) string { return "/stats?scope=all&owner=" + id(users[owner].ID) },
			want: all(s200)},
		"stats mailings page (htmx)": {method: "GET", path: p("/stats?page=1"), htmx: true, want: all(s200)},
		"queue dashboard":            {method: "GET", path: p("/ops/queues"), want: ok(s403, s403, s200)},
		"queue dashboard API":        {method: "GET", path: p("/ops/queues/api/queues"), want: ok(s403, s403, s200)},
		"a path only like the dashboard's": {method: "GET", path: p("/ops/queuesX"),
			want: map[string]int{anon: s404, owner: s404, other: s404, manager: s404, blocked: s404}},
		"queue action (read-only)": {method: "POST", path: p("/ops/queues/api/queues/default:pause"), want: ok(s403, s403, http.StatusMethodNotAllowed)},
	}

	for name, rt := range routes {
		t.Run(name, func(t *testing.T) {
			for _, role := range roles {
				o := makeObjects(t, e, users[owner])
				path := rt.path(o)
				var form url.Values
				if rt.form != nil {
					form = rt.form(o)
				}
				c := clients[role]
				if role == blocked {
					// A fresh session each time: the first request ends it.
					c = e.client()
					if _, err := e.db.ExecContext(ctx, "UPDATE users SET blocked_at = NULL WHERE id = ?", users[blocked].ID); err != nil {
						t.Fatal(err)
					}
					resp, body := login(t, c, "blocked@example.com", goodPassword)
					wantRedirect(t, resp, body, "/")
					if _, err := e.db.ExecContext(ctx, "UPDATE users SET blocked_at = now() WHERE id = ?", users[blocked].ID); err != nil {
						t.Fatal(err)
					}
				}
				resp, body := c.request(t, rt.method, path, form, rt.htmx)
				want, listed := rt.want[role]
				switch {
				case listed && resp.StatusCode != want:
					t.Errorf("%s: %s %s = %d, want %d\n%.400s", role, rt.method, path, resp.StatusCode, want, body)
				case !listed && name == "dashboard":
					if resp.StatusCode != s200 || strings.Contains(body, `data-testid="dashboard"`) || !strings.Contains(body, `data-testid="landing"`) {
						t.Errorf("%s: / = %d, want the landing page", role, resp.StatusCode)
					}
				case !listed:
					loc := resp.Header.Get("Location") + resp.Header.Get("HX-Redirect")
					if !strings.HasPrefix(loc, "/login?next=") {
						t.Errorf("%s: %s %s = %d (to %q), want sent to sign in", role, rt.method, path, resp.StatusCode, loc)
					}
				}
				if role != owner && role != manager {
					for _, secret := range []string{o.client.Email, o.message.Subject, o.client.Comment, id(o.client.ID) + "]", "[" + id(o.client.ID)} {
						if strings.Contains(body, secret) {
							t.Errorf("%s: %s %s shows the owner's data %q", role, rt.method, path, secret)
						}
					}
				}
			}
		})
	}
}

// request sends a request of any method, with the CSRF token and, for
// htmx, its header.
func (c *client) request(t testing.TB, method, path string, form url.Values, htmx bool) (*http.Response, string) {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	req, _ := http.NewRequest(method, path, strings.NewReader(form.Encode()))
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-CSRF-Token", c.csrf(t))
	}
	if htmx {
		req.Header.Set("HX-Request", "true")
	}
	return c.send(t, req)
}

// Pages whose lists page and filter with htmx (and push the URL) answer a
// history restore, which htmx makes with HX-Request too when its own cache
// no longer holds the page, with the whole page: htmx puts the answer in
// place of the body. Caches tell the two answers apart.
func TestHistoryRestoreGetsTheWholePage(t *testing.T) {
	_, c, _, o := signedInWithObjects(t)
	for _, path := range []string{"/clients?page=1", "/messages?q=a", "/mailings?status=created",
		"/mailings/" + id(o.mailing.ID) + "/attempts?status=failure", "/stats?page=1"} {
		for _, restore := range []bool{false, true} {
			req, _ := http.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("HX-Request", "true")
			req.Header.Set("HX-Target", "stats-mailings") // the statistics' table of mailings
			if restore {
				req.Header.Set("HX-History-Restore-Request", "true")
			}
			resp, body := c.send(t, req)
			wantStatus(t, resp, body, http.StatusOK)
			if whole := strings.Contains(body, `data-testid="viewer"`); whole != restore {
				t.Errorf("%s (history restore %v): whole page %v", path, restore, whole)
			}
			if v := resp.Header.Get("Vary"); !strings.Contains(v, "HX-History-Restore-Request") {
				t.Errorf("%s: Vary %q", path, v)
			}
		}
	}
}

// A page htmx asks for (not to restore it from history) answers with its
// content alone, its title and flash with it, not the whole document:
// htmx requests get the fragment, the same URL without gets the page.
func TestHTMXGetsThePagesContent(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	msg, ml := "/messages/"+id(o.message.ID), "/mailings/"+id(o.mailing.ID)
	// (The lists, and a client's pages, which the lists edit in place,
	// answer htmx with their own fragments: see their tests.)
	pages := map[string]*client{"/": c, "/clients/import": c, "/messages/new": c, msg: c, msg + "/edit": c,
		"/mailings/new": c, ml: c, ml + "/edit": c, "/stats": c, "/account": c, "/stats?scope=all": boss}
	for path, who := range pages {
		for _, restore := range []bool{false, true} {
			req, _ := http.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("HX-Request", "true")
			if restore {
				req.Header.Set("HX-History-Restore-Request", "true")
			}
			resp, body := who.send(t, req)
			wantStatus(t, resp, body, http.StatusOK)
			whole := strings.Contains(body, "<html") || strings.Contains(body, `data-testid="viewer"`)
			if whole != restore {
				t.Errorf("%s (history restore %v): whole page %v", path, restore, whole)
			}
			if doc := parseHTML(t, body); doc.Find("title").Not("svg title").Length() != 1 || doc.Find("h1").Length() != 1 || doc.Find("#flash").Length() != 1 {
				t.Errorf("%s (history restore %v): %d titles and %d headings, want one of each, and the flash:\n%s", path, restore, doc.Find("title").Not("svg title").Length(), doc.Find("h1").Length(), body)
			}
		}
	}
}

// A manager reads everyone's data but changes nobody's. The queue
// dashboard must not hand them another account's sign-in links: a reset
// link waiting in the mail queue (worker busy, SMTP down and retrying)
// would let them set the owner's password and act as them.
func TestQueueDashboardHidesMailedLinks(t *testing.T) {
	e := newEnv(t) // no worker: the mail waits in the queue, as it does while SMTP is down
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	newUser(t, e, "ann@example.com", model.RoleUser)

	resp, body := e.client().post(t, "/password/forgot", url.Values{"email": {"ann@example.com"}})
	wantRedirect(t, resp, body, "/password/forgot/sent")

	resetRE := regexp.MustCompile(`/password/reset/[A-Za-z0-9_-]+`)
	var listing string
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The mail is queued after the answer.
		// (the queue is unknown, 500, until its first task)
		resp, listing = boss.get(t, "/ops/queues/api/queues/critical/pending_tasks")
		if resp.StatusCode == http.StatusOK && strings.Contains(listing, "email:deliver") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(listing, "email:deliver") {
		t.Fatalf("the reset mail was never queued: %s", listing)
	}
	if link := resetRE.FindString(listing); link != "" {
		t.Errorf("the queue dashboard shows a manager Ann's reset link %s", link)
	}
	if !strings.Contains(listing, "ann@example.com") {
		t.Errorf("the queued mail does not say whom it is for: %s", listing)
	}
}

// A manager looking at one user's clients or messages (?scope=all&owner=)
// and searching them stays on that user's: the search form carries the
// owner as it carries the scope.
func TestSearchKeepsOwnerFilter(t *testing.T) {
	e := newEnv(t)
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	bob := newUser(t, e, "bob@example.com", model.RoleUser)
	makeObjects(t, e, ann)
	makeObjects(t, e, bob)
	for _, list := range []struct{ path, row string }{{"/clients", "client-row"}, {"/messages", "message-row"}} {
		resp, body := boss.get(t, list.path+"?scope=all&owner="+id(ann.ID))
		wantStatus(t, resp, body, http.StatusOK)
		// What the search form submits for "secret", which both users' objects hold.
		q := url.Values{"q": {"secret"}}
		parseHTML(t, body).Find(`form[role=search] input[type=hidden]`).Each(func(_ int, s *goquery.Selection) {
			q.Set(s.AttrOr("name", ""), s.AttrOr("value", ""))
		})
		resp, body = boss.request(t, "GET", list.path+"?"+q.Encode(), nil, true)
		wantStatus(t, resp, body, http.StatusOK)
		if rows := parseHTML(t, body).Find("[data-testid=" + list.row + "]"); rows.Length() != 1 || strings.Contains(rows.Text(), "bob@example.com") {
			t.Errorf("%s: searching ann's (form sent %s) lists %d rows:\n%s", list.path, q.Encode(), rows.Length(), rows.Text())
		}
	}
}

// A manager's list narrowed to a user that does not exist answers 404, on
// every list and on the statistics alike, not an empty list that looks
// like a user without objects.
func TestOwnerFilterOfAnUnknownUser(t *testing.T) {
	e := newEnv(t)
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	makeObjects(t, e, ann)
	for _, path := range []string{"/clients", "/messages", "/mailings", "/stats"} {
		resp, body := boss.get(t, path+"?scope=all&owner="+id(ann.ID))
		wantStatus(t, resp, body, http.StatusOK)
		if !strings.Contains(body, "ann@example.com") {
			t.Errorf("%s narrowed to ann does not name her", path)
		}
		resp, body = boss.get(t, path+"?scope=all&owner=987654")
		wantStatus(t, resp, body, http.StatusNotFound)
	}
}
