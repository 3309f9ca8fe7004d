package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"rassylka/app/model"
	"rassylka/app/testkit"
)

// phoneWidth is the width of a common phone's screen, in CSS pixels.
const phoneWidth = 390

// onPhone narrows the browser's viewport to a phone's.
func (b *browserUser) onPhone() {
	b.t.Helper()
	b.do("phone viewport", chromedp.EmulateViewport(phoneWidth, 844))
}

// phonePages signs in a manager with a client, a message and a mailing of
// their own and returns the pages to look at on a phone.
func phonePages(t *testing.T) (*browserUser, []string) {
	t.Helper()
	e, base := servedEnv(t)
	boss := newUser(t, e, "boss@example.com", model.RoleManager)
	o := makeObjects(t, e, boss)
	// A long address and name, in the lists and the recipients' picker.
	long := &model.Client{OwnerID: boss.ID, Email: "alexandra.konstantinopoulou-vanderbilt@correspondence.example.edu", FullName: "Alexandra Konstantinopoulou-Vanderbilt"}
	if err := e.store.CreateClient(context.Background(), long); err != nil {
		t.Fatal(err)
	}
	// A mail to the client, with a long reply, on the client's page.
	run := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now()})
	if _, err := e.db.NewInsert().Model(&model.Attempt{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email,
		Status: model.AttemptFailure, Response: "451 4.7.1 Greylisted: please try again later, see https://mail.example.org/greylisting-explained", Tries: 3}).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("boss@example.com")
	b.onPhone()
	m := "/mailings/" + id(o.mailing.ID)
	return b, []string{"/", "/clients", "/clients?scope=all", "/clients/import", "/clients/" + id(o.client.ID), "/messages", "/messages?scope=all", "/messages/" + id(o.message.ID),
		"/mailings", "/mailings?scope=all", "/mailings/new", "/mailings/new?copy=" + id(o.mailing.ID), m, m + "/attempts", "/stats", "/stats?scope=all", "/users", "/account"}
}

// No page scrolls sideways on a phone, nor at 320 CSS pixels (a page
// zoomed to 400 % on a laptop, which WCAG's reflow asks for): what is
// wider than the screen (a table) scrolls in its own box.
func TestBrowserPhonePagesDoNotScrollSideways(t *testing.T) {
	b, pages := phonePages(t)
	for _, width := range []int64{phoneWidth, 320} {
		b.do("viewport", chromedp.EmulateViewport(width, 844))
		for _, p := range pages {
			b.pageFits(p, width)
		}
	}
}

// pageFits fails the test when page p scrolls sideways at width.
func (b *browserUser) pageFits(p string, width int64) {
	t := b.t
	t.Helper()
	b.do("open "+p, chromedp.Navigate(b.base+p), chromedp.WaitReady(chromedp.CSS("footer")))
	time.Sleep(200 * time.Millisecond) // load-triggered htmx requests
	wide, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`(() => {
		const w = document.documentElement.clientWidth;
		if (document.documentElement.scrollWidth <= w) return [];
		return [...document.querySelectorAll("body *")].filter(el => {
			const r = el.getBoundingClientRect();
			if (r.width === 0 || r.right <= w + 1) return false;
			for (let a = el.parentElement; a; a = a.parentElement) if (a.scrollWidth > a.clientWidth && getComputedStyle(a).overflowX !== "visible") return false;
			return true;
		}).map(el => el.tagName.toLowerCase() + (el.className ? "." + el.className : "") + " ending at " + Math.round(el.getBoundingClientRect().right) + "px")
			.concat(["page " + document.documentElement.scrollWidth + "px wide for a " + w + "px screen"]);
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if len(wide) > 0 {
		t.Errorf("%s scrolls sideways at %d px: %v", p, width, wide)
	}
}

// On a phone every link of the main navigation is on the screen: a
// manager's "Users" was cut off at the screen's edge, in a strip that
// scrolled sideways with nothing to show it could.
func TestBrowserPhoneNavigationFits(t *testing.T) {
	b, _ := phonePages(t)
	b.do("open the dashboard", chromedp.Navigate(b.base+"/"), chromedp.WaitReady(chromedp.CSS("footer")))
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("nav[aria-label=Main] a, nav[aria-label=Main] button")].filter(el => {
		const r = el.getBoundingClientRect();
		return r.left < 0 || r.right > document.documentElement.clientWidth;
	}).map(el => el.textContent.trim().replace(/\s+/g, " ") + " at " + Math.round(el.getBoundingClientRect().left) + "–" + Math.round(el.getBoundingClientRect().right) + "px")`))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 0 {
		t.Errorf("on a %dpx screen these navigation links are not (wholly) on it: %v", phoneWidth, out)
	}
}

// On a phone a list's rows fit the screen, each a block of its fields:
// a row's Edit and Delete buttons and an attempt's server reply were
// past the screen's edge, in a table to scroll sideways.
func TestBrowserPhoneTablesFit(t *testing.T) {
	b, _ := phonePages(t)
	for p, sel := range map[string]string{
		"/clients":  "[data-testid=client-row] button",
		"/messages": "[data-testid=message-row] td",
		"/mailings": "[data-testid=mailing-row] td",
		"/users":    "[data-testid=user-row] td",
		"/stats":    "[data-testid=stats-mailing] td",
	} {
		b.do("open "+p, chromedp.Navigate(b.base+p), chromedp.WaitReady(chromedp.CSS(sel)))
		out, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("`+sel+`")].filter(el => {
			const r = el.getBoundingClientRect();
			return r.width > 0 && (r.left < 0 || r.right > document.documentElement.clientWidth);
		}).map(el => el.textContent.trim().replace(/\s+/g, " ").slice(0, 40) + " at " + Math.round(el.getBoundingClientRect().left) + "–" + Math.round(el.getBoundingClientRect().right) + "px")`))
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > 0 {
			t.Errorf("%s on a %dpx screen: these are not (wholly) on it: %v", p, phoneWidth, out)
		}
	}
}

// On a laptop's screen (1280 px) no list needs scrolling sideways in its
// box, even with a long address in it: the users' list was wider than its
// box (556 px with this one), its last column behind a scrollbar.
func TestBrowserDesktopTablesFit(t *testing.T) {
	e, base := servedEnv(t)
	boss := newUser(t, e, "boss@example.com", model.RoleManager)
	o := makeObjects(t, e, boss)
	ctx := context.Background()
	long := newUser(t, e, "a.rather.long.address.for.a.reader@mail.example.com", model.RoleUser)
	if _, err := e.store.SetBlocked(ctx, boss.ID, long.ID, true); err != nil {
		t.Fatal(err)
	}
	// An attempt with a long reply, beside the owner's common address.
	fin := time.Now()
	run := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: fin.Add(-time.Minute), FinishedAt: &fin, Total: 1, Failed: 1})
	code := 550
	a := &model.Attempt{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email, Status: model.AttemptFailure, Code: &code,
		Response: "550 5.1.1 <" + o.client.Email + ">: Recipient address rejected: User unknown in virtual mailbox table; see https://support.example.com/smtp/550-5-1-1 for details", Tries: 1}
	if _, err := e.db.NewInsert().Model(a).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("boss@example.com")
	b.do("laptop viewport", chromedp.EmulateViewport(1280, 800))
	m := "/mailings/" + id(o.mailing.ID)
	for _, p := range []string{"/", "/clients", "/clients?scope=all", "/messages", "/messages?scope=all", "/mailings", "/mailings?scope=all",
		m, m + "/attempts", "/stats", "/stats?scope=all", "/users"} {
		b.do("open "+p, chromedp.Navigate(b.base+p), chromedp.WaitReady(chromedp.CSS("footer")))
		time.Sleep(200 * time.Millisecond) // load-triggered htmx requests
		wide, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("table")].map(t => {
			for (let a = t.parentElement; a; a = a.parentElement) if (a.scrollWidth > a.clientWidth + 1 && getComputedStyle(a).overflowX !== "visible")
				return (t.dataset.testid || t.className || "table") + " is " + a.scrollWidth + "px in a box of " + a.clientWidth + "px";
			return "";
		}).filter(s => s)`))
		if err != nil {
			t.Fatal(err)
		}
		if len(wide) > 0 {
			t.Errorf("%s at 1280 px: %v", p, wide)
		}
		// What fits on a line stays on one: a common address, a time.
		broken, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("td.address, td.when, td .when")].map(el => el.querySelector(":scope > a") || el).filter(el => {
			const text = el.textContent.trim();
			if (text.length > 30) return false;
			const r = document.createRange();
			r.selectNodeContents(el);
			return new Set([...r.getClientRects()].map(q => Math.round(q.top))).size > 1;
		}).map(el => el.textContent.trim())`))
		if err != nil {
			t.Fatal(err)
		}
		if len(broken) > 0 {
			t.Errorf("%s at 1280 px breaks %q over lines", p, broken)
		}
	}
}

// On a phone a user's figures on the users' page, which are links to
// their clients and mailings, are a finger's size to tap: a "1" was a
// 10×19 px target.
func TestBrowserPhoneFiguresAreTappable(t *testing.T) {
	b, _ := phonePages(t)
	b.do("open /users", chromedp.Navigate(b.base+"/users"), chromedp.WaitReady(chromedp.CSS("footer")))
	small, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('td[data-label=Clients] a, td[data-label=Mailings] a')]
		.map(a => a.getBoundingClientRect()).filter(r => r.width < 44 || r.height < 44).map(r => Math.round(r.width) + "×" + Math.round(r.height))`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('td[data-label=Clients] a, td[data-label=Mailings] a').length`))
	if err != nil || n == 0 {
		t.Fatalf("no figure links on /users (%v)", err)
	}
	if len(small) > 0 {
		t.Errorf("figure links smaller than 44×44 px on a phone: %v", small)
	}
}
