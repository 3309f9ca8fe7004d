package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"rassylka/app/model"
	"rassylka/app/store"
)

func TestUsersBlockInline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	ann := signedIn(t, e, "ann@example.com", model.RoleUser)
	newUser(t, e, "other.manager@example.com", model.RoleManager)
	annUser, _ := e.store.UserByEmail(ctx, "ann@example.com")
	bossUser, _ := e.store.UserByEmail(ctx, "boss@example.com")
	otherMgr, _ := e.store.UserByEmail(ctx, "other.manager@example.com")
	makeObjects(t, e, annUser)

	if _, err := e.db.ExecContext(ctx, "UPDATE users SET email_confirmed_at = NULL WHERE id = ?", otherMgr.ID); err != nil {
		t.Fatal(err)
	}
	resp, body := boss.get(t, "/users")
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	// The queue dashboard is found from the users' page.
	if href := doc.Find("[data-testid=ops-queues]").AttrOr("href", ""); href != "/ops/queues" {
		t.Errorf("the users' page links the queue dashboard as %q", href)
	} else if resp, body := boss.get(t, href); resp.StatusCode != http.StatusOK {
		t.Errorf("the queue dashboard answers a manager %d\n%.300s", resp.StatusCode, body)
	}
	if got := doc.Find("#user-" + id(otherMgr.ID) + " [data-testid=badge]").Text(); got != "managerunconfirmed" {
		t.Errorf("an unconfirmed manager's address is marked %q", got)
	}
	if doc.Find("[data-testid=user-row]").Length() != 3 {
		t.Fatalf("users listed:\n%s", body)
	}
	annRow := doc.Find("#user-" + id(annUser.ID))
	// A figure reads as it shows; a screen reader hears whose it is.
	shown := func(td *goquery.Selection) string {
		c := td.Clone()
		c.Find(".visually-hidden").Remove()
		return strings.TrimSpace(c.Text())
	}
	if annRow.Find("[data-testid=badge]").Length() != 0 || shown(annRow.Find("td").Eq(2)) != "1" || shown(annRow.Find("td").Eq(3)) != "1" ||
		strings.TrimSpace(annRow.Find("td").Eq(3).Text()) != "Mailings of ann@example.com: 1" {
		t.Errorf("ann's row (a confirmed user, 1 client, 1 mailing): %q", annRow.Text())
	}
	if got := doc.Find("#user-" + id(bossUser.ID) + " td.address [data-testid=badge]").Text(); got != "manager" {
		t.Errorf("the manager's address is marked %q", got)
	}
	if doc.Find("#user-"+id(bossUser.ID)+" [data-testid=block-user]").Length() != 0 ||
		doc.Find("#user-"+id(otherMgr.ID)+" [data-testid=block-user]").Length() != 0 {
		t.Error("block offered for a manager or oneself")
	}
	// What a user's mail says it is from, and where replies go, once set
	// (only a confirmed reply address: one waiting is not shown).
	if annRow.Find("[data-testid=user-sender]").Length() != 0 {
		t.Errorf("ann's row, no sender name: %q", annRow.Find("[data-testid=user-sender]").Text())
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE users SET sender_name = 'Ann <Shop>', reply_to = 'help@ann.example', reply_to_pending = 'other@ann.example' WHERE id = ?", annUser.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = boss.get(t, "/users")
	wantStatus(t, resp, body, http.StatusOK)
	if got := strings.Join(strings.Fields(parseHTML(t, body).Find("#user-"+id(annUser.ID)+" [data-testid=user-sender]").Text()), " "); got != "Sends as “Ann <Shop>” · replies to help@ann.example" {
		t.Errorf("ann's sender: %q", got)
	}
	_, body = boss.request(t, "GET", "/users?q=ANN", nil, true)
	if n := parseHTML(t, body).Find("[data-testid=user-row]").Length(); n != 1 {
		t.Errorf("search found %d", n)
	}

	resp, body = boss.request(t, "POST", "/users/"+id(annUser.ID)+"/block", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	row := parseHTML(t, "<table>"+body+"</table>")
	if !strings.Contains(row.Find("[data-testid=badge]").Text(), "blocked") || row.Find("[data-testid=unblock-user]").Length() != 1 {
		t.Fatalf("blocked row:\n%s", body)
	}
	// Ann's open session ends at once.
	// The session ended at once, and its next request is told why.
	resp, _ = ann.get(t, "/clients")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fclients&ended=blocked" {
		t.Fatalf("blocked user's next request: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body = ann.get(t, resp.Header.Get("Location")); !strings.Contains(body, "You were signed out because your account was blocked.") {
		t.Errorf("the sign-in page does not say why:\n%s", body)
	}
	resp, body = login(t, e.client(), "ann@example.com", goodPassword)
	wantStatus(t, resp, body, http.StatusForbidden)

	for target, why := range map[int64]string{bossUser.ID: "You cannot block or unblock yourself.", otherMgr.ID: "Managers cannot be blocked."} {
		resp, body = boss.request(t, "POST", "/users/"+id(target)+"/block", nil, true)
		wantStatus(t, resp, body, http.StatusForbidden)
		if !strings.Contains(body, why) {
			t.Errorf("blocking user %d is refused without saying %q:\n%s", target, why, body)
		}
	}
	if u, _ := e.store.UserByID(ctx, otherMgr.ID); u.Blocked() {
		t.Fatal("a manager was blocked")
	}
	resp, body = boss.request(t, "POST", "/users/999999/block", nil, true)
	wantStatus(t, resp, body, http.StatusNotFound)

	resp, body = boss.request(t, "POST", "/users/"+id(annUser.ID)+"/unblock", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	resp, body = login(t, e.client(), "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
}

func TestManagerOversight(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	annUser := newUser(t, e, "ann@example.com", model.RoleUser)
	o := makeObjects(t, e, annUser)

	// Own scope by default; everyone's on request, with the owner shown.
	_, body := boss.get(t, "/clients")
	if strings.Contains(body, o.client.Email) {
		t.Error("a manager's own list shows others' clients")
	}
	for _, path := range []string{"/clients?scope=all", "/messages?scope=all", "/mailings?scope=all"} {
		resp, body := boss.get(t, path)
		wantStatus(t, resp, body, http.StatusOK)
		if !strings.Contains(body, "ann@example.com") {
			t.Errorf("%s lacks the owner column", path)
		}
		if sub := parseHTML(t, body).Find("hgroup p").Text(); !strings.HasPrefix(sub, "All users'") {
			t.Errorf("%s does not say whose it lists: %q", path, sub)
		}
		if strings.Contains(body, `data-testid="edit-client"`) || strings.Contains(body, "/edit") {
			t.Errorf("%s offers to edit another user's objects", path)
		}
	}
	_, body = boss.get(t, "/clients?scope=all&owner="+id(annUser.ID))
	if !strings.Contains(body, o.client.Email) || !strings.Contains(body, "Showing the clients of") {
		t.Error("owner filter")
	}
	boss.post(t, "/clients", map[string][]string{"email": {"mine@example.com"}})
	_, body = boss.get(t, "/clients?scope=all&owner="+id(annUser.ID))
	if strings.Contains(parseHTML(t, body).Find("[data-testid=clients-table]").Text(), "mine@example.com") {
		t.Error("owner filter shows another owner's client")
	}

	// Pages of others' objects are read-only.
	for _, path := range []string{"/clients/" + id(o.client.ID), "/messages/" + id(o.message.ID), "/mailings/" + id(o.mailing.ID)} {
		resp, body := boss.get(t, path)
		wantStatus(t, resp, body, http.StatusOK)
		if strings.Contains(body, path+"/edit") || strings.Contains(body, path+"/delete") {
			t.Errorf("%s offers edit or delete to a manager", path)
		}
		// Its way back is to the owner's list, where the manager came from
		// (it led to the manager's own, most often empty).
		back, ok := parseHTML(t, body).Find("[data-testid=back-to-list]").Attr("href")
		if !strings.HasPrefix(path, "/mailings/") && (!ok || !strings.HasSuffix(back, "?scope=all&owner="+id(o.client.OwnerID))) {
			t.Errorf("%s leads back to %q", path, back)
		}
	}
	// The mailing switch is theirs to use.
	resp, body := boss.request(t, "POST", "/mailings/"+id(o.mailing.ID)+"/disable", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "boss@example.com") {
		t.Errorf("disable does not record the manager:\n%s", body)
	}
	mm, _ := e.store.MailingByID(ctx, store.Everyone(0), o.mailing.ID)
	if mm.DisabledBy == nil || mm.DisabledAt == nil {
		t.Error("the manager's disable was not stored")
	}
}

// A manager looking at a blocked user's mailing is told that its owner is
// blocked, and that it sends nothing meanwhile (it said when its next send
// was due, and then "due now", with none coming). Everyone's clients offer
// no export of the manager's own.
func TestManagerSeesABlockedOwnersMailing(t *testing.T) {
	e := newEnv(t)
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	o := makeObjects(t, e, ann)
	path := "/mailings/" + id(o.mailing.ID)
	look := func() (next, blocked, listed string) {
		t.Helper()
		doc := boss.page(t, path)
		list := boss.page(t, "/mailings?scope=all")
		return strings.TrimSpace(doc.Find("[data-testid=next-send]").Text()), doc.Find("hgroup [data-testid=owner-blocked]").Text(),
			list.Find("[data-testid=owner-blocked]").Text()
	}
	if next, blocked, listed := look(); next == "" || strings.Contains(next, "blocked") || blocked != "" || listed != "" {
		t.Fatalf("before the block: next send %q, marks %q and %q", next, blocked, listed)
	}
	resp, body := boss.post(t, "/users/"+id(ann.ID)+"/block", nil)
	wantRedirect(t, resp, body, "/users")
	if next, blocked, listed := look(); next != "none while its owner is blocked" || blocked != "(blocked)" || listed != "(blocked)" {
		t.Fatalf("the owner blocked: next send %q, marks %q and %q", next, blocked, listed)
	}
	// Its status says it is paused, on its page and in the list (a green
	// "running" or "created" badge said it would send).
	for _, doc := range []*goquery.Document{boss.page(t, path), boss.page(t, "/mailings?scope=all")} {
		st := doc.Find("[data-testid=mailing-status]").First()
		if badge := st.Find("[data-testid=badge]").Text(); badge != "paused" || st.Find("[data-testid=paused]").Text() != "its owner is blocked" {
			t.Errorf("the blocked owner's mailing shows %q", strings.Join(strings.Fields(st.Text()), " "))
		}
	}

	if boss.page(t, "/clients").Find(`a[href="/clients/export.csv"]`).Length() != 1 {
		t.Error("the manager's own clients offer no export")
	}
	if boss.page(t, "/clients?scope=all").Find(`a[href="/clients/export.csv"]`).Length() != 0 {
		t.Error("everyone's clients offer an export of the manager's own")
	}
}

// What a manager switches off stays off until a manager switches it on:
// its owner is offered no switch, and enabling by hand is refused with a
// message. What the owner switched off, the owner switches on.
func TestOwnerCannotUndoAManagersDisable(t *testing.T) {
	e, ann, _, o := signedInWithObjects(t)
	ctx := context.Background()
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	path := "/mailings/" + id(o.mailing.ID)
	disabled := func() bool {
		t.Helper()
		m, err := e.store.MailingByID(ctx, store.Everyone(0), o.mailing.ID)
		if err != nil {
			t.Fatal(err)
		}
		return m.DisabledAt != nil
	}

	resp, body := boss.request(t, "POST", path+"/disable", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	_, body = ann.get(t, path)
	cell := parseHTML(t, body).Find("[data-testid=mailing-status]")
	if cell.Find("[data-testid=enable-mailing]").Length() != 0 {
		t.Error("the owner is offered to switch on what a manager switched off")
	}
	if by := cell.Find("[data-testid=disabled-by]").Text(); !strings.Contains(by, "boss@example.com") || !strings.Contains(by, "only a manager") {
		t.Errorf("the owner is not told who switched it off and who may switch it on: %q", by)
	}
	resp, _ = ann.post(t, path+"/enable", nil)
	if flash := flashAfter(t, ann, resp); !strings.Contains(flash, "only a manager can switch it on") {
		t.Errorf("the owner's enable says %q", flash)
	}
	if !disabled() {
		t.Fatal("the owner switched on what a manager switched off")
	}
	resp, body = ann.request(t, "POST", path+"/enable", nil, true)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("HX-Redirect") != path || !disabled() {
		t.Errorf("the owner's enable with htmx: %d %q, disabled %t\n%s", resp.StatusCode, resp.Header.Get("HX-Redirect"), disabled(), body)
	}
	// Switching it off again keeps the manager's name on it.
	ann.post(t, path+"/disable", nil)
	_, body = boss.get(t, path)
	if by := parseHTML(t, body).Find("[data-testid=disabled-by]").Text(); !strings.Contains(by, "boss@example.com") {
		t.Errorf("the owner's disable took the manager's place: %q", by)
	}
	if parseHTML(t, body).Find("[data-testid=enable-mailing]").Length() != 1 {
		t.Error("the manager is not offered the switch")
	}

	resp, body = boss.request(t, "POST", path+"/enable", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	if disabled() {
		t.Fatal("the manager could not switch it on")
	}
	// The owner's own switch goes both ways.
	ann.post(t, path+"/disable", nil)
	_, body = ann.get(t, path)
	if parseHTML(t, body).Find("[data-testid=enable-mailing]").Length() != 1 {
		t.Error("the owner is not offered to switch on what they switched off")
	}
	resp, body = ann.post(t, path+"/enable", nil)
	wantStatus(t, resp, body, http.StatusSeeOther)
	if disabled() {
		t.Error("the owner could not switch on what they switched off")
	}
}

func TestDashboardCounts(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	a, b := makeObjects(t, e, ann), makeObjects(t, e, ann)
	makeObjects(t, e, ann)
	_, _ = e.db.ExecContext(ctx, "UPDATE mailings SET status = 'running' WHERE id = ?", a.mailing.ID)
	_, _ = e.db.ExecContext(ctx, "UPDATE mailings SET disabled_at = now() WHERE id = ?", b.mailing.ID)
	makeObjects(t, e, newUser(t, e, "other@example.com", model.RoleUser))

	_, body := c.get(t, "/")
	doc := parseHTML(t, body)
	for tid, want := range map[string]string{"count-clients": "3", "count-messages": "3", "count-created": "1", "count-running": "1", "count-finished": "0", "count-disabled": "1"} {
		if got := doc.Find("[data-testid=" + tid + "]").Text(); got != want {
			t.Errorf("%s = %q, want %s", tid, got, want)
		}
	}
	// Each figure's noun agrees with it ("1 messages" read oddly), and the
	// texts one writes are told apart from the mails sent.
	label := func(doc *goquery.Document, tid string) string {
		return strings.Join(strings.Fields(doc.Find("[data-testid="+tid+"]").Parent().Text()), " ")
	}
	if got := label(doc, "count-messages"); got != "3 messages written" {
		t.Errorf("messages figure %q", got)
	}
	if doc.Find("[data-testid=manager-links]").Length() != 0 {
		t.Error("a user is offered everyone's figures")
	}
	one := signedIn(t, e, "one@example.com", model.RoleManager)
	oneUser, _ := e.store.UserByEmail(ctx, "one@example.com")
	makeObjects(t, e, oneUser)
	_, body = one.get(t, "/")
	doc = parseHTML(t, body)
	for tid, want := range map[string]string{"count-clients": "1 client", "count-messages": "1 message written", "count-created": "1 created"} {
		if got := label(doc, tid); got != want {
			t.Errorf("%s reads %q, want %q", tid, got, want)
		}
	}
	// A manager's start page leads to everyone's figures and lists (it
	// showed the manager's own, most often none, and nothing more).
	links := doc.Find("[data-testid=manager-links] a")
	if links.Length() != 5 || links.First().AttrOr("href", "") != "/stats?scope=all" {
		t.Errorf("a manager's start page leads to %d of everyone's pages:\n%s", links.Length(), body)
	}
}

// A user blocked and then made a manager (`web user role --role manager`,
// which keeps the block) can be unblocked: a manager may "block and
// unblock users (not themselves)", and the block must not become
// permanent because of the role.
func TestBlockedUserMadeManagerCanBeUnblocked(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)

	resp, body := boss.post(t, "/users/"+id(ann.ID)+"/block", nil)
	wantRedirect(t, resp, body, "/users")
	if _, err := e.store.SetUserRole(ctx, "ann@example.com", model.RoleManager); err != nil { // what the CLI does
		t.Fatal(err)
	}
	_, body = boss.get(t, "/users")
	if parseHTML(t, body).Find("#user-"+id(ann.ID)+" [data-testid=unblock-user]").Length() != 1 {
		t.Errorf("no way offered to unblock Ann")
	}
	resp, body = boss.post(t, "/users/"+id(ann.ID)+"/unblock", nil)
	wantRedirect(t, resp, body, "/users")
	resp, body = login(t, e.client(), "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	// Still: a manager who is not blocked cannot be blocked, nor oneself.
	resp, body = boss.post(t, "/users/"+id(ann.ID)+"/block", nil)
	wantStatus(t, resp, body, http.StatusForbidden)
}

// Without JavaScript a manager can still block and unblock: each row's
// switch is a plain form posting to /users/:id/block (or /unblock) with
// the _csrf field, and the htmx answer keeps it a form.
func TestUsersBlockWithoutJS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)

	plainForm := func(body, action string) {
		t.Helper()
		doc := parseHTML(t, body)
		f := doc.Find(`#user-` + id(ann.ID) + ` form[method=post][action="` + action + `"]`)
		if f.Length() != 1 || f.Find(`input[name=_csrf]`).AttrOr("value", "") == "" || f.Find(`button[type=submit]`).Length() != 1 {
			h, _ := doc.Find("#user-" + id(ann.ID)).Html()
			t.Fatalf("no plain form posting to %s in Ann's row:\n%s", action, h)
		}
	}
	_, body := boss.get(t, "/users")
	plainForm(body, "/users/"+id(ann.ID)+"/block")
	// What that form sends, as a browser without JavaScript sends it.
	resp, body := boss.post(t, "/users/"+id(ann.ID)+"/block", nil)
	wantRedirect(t, resp, body, "/users")
	if u, _ := e.store.UserByID(ctx, ann.ID); !u.Blocked() {
		t.Fatal("not blocked")
	}
	_, body = boss.get(t, "/users")
	plainForm(body, "/users/"+id(ann.ID)+"/unblock")
	// The row htmx swaps in keeps the form.
	resp, body = boss.request(t, "POST", "/users/"+id(ann.ID)+"/block", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	plainForm("<table>"+body+"</table>", "/users/"+id(ann.ID)+"/unblock")
}

// Unblocking inline swaps in Ann's row as it now is: no "blocked" badge,
// and the Block switch back (not a row still saying blocked, offering
// Unblock again).
func TestUsersUnblockInlineShowsUnblocked(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	resp, body := boss.request(t, "POST", "/users/"+id(ann.ID)+"/block", nil, true)
	wantStatus(t, resp, body, http.StatusOK)

	resp, body = boss.request(t, "POST", "/users/"+id(ann.ID)+"/unblock", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	if u, _ := e.store.UserByID(ctx, ann.ID); u.Blocked() {
		t.Fatal("not unblocked")
	}
	row := parseHTML(t, "<table>"+body+"</table>")
	if strings.Contains(row.Find("[data-testid=badge]").Text(), "blocked") ||
		row.Find("[data-testid=block-user]").Length() != 1 || row.Find("[data-testid=unblock-user]").Length() != 0 {
		t.Fatalf("the row swapped in after unblocking:\n%s", body)
	}
}

// The dashboard's sending figures are the user's attempts, whatever their
// list of clients holds now: once every client is deleted (attempts stay,
// DESIGN: "client (kept nullable if the client is deleted)"), the
// figures and the week's chart still show what was sent.
func TestDashboardKeepsSendsAfterClientsDeleted(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	run := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now()})
	a := &model.Attempt{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email,
		Status: model.AttemptSuccess, Response: "250 OK", Tries: 1, AttemptedAt: time.Now()}
	if _, err := e.db.NewInsert().Model(a).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteClient(ctx, ann.ID, o.client.ID); err != nil {
		t.Fatal(err)
	}
	resp, body := c.get(t, "/")
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	if got := doc.Find("[data-testid=stat-sent]").Text(); got != "1" || doc.Find("[data-testid=chart]").Length() != 1 {
		t.Errorf("dashboard after deleting every client: sent %q, chart %d:\n%s", got, doc.Find("[data-testid=chart]").Length(),
			doc.Find("[data-testid=dashboard]").Text())
	}
}
