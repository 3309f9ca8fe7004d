package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/testkit"
	"rassylka/app/web/form"
	"rassylka/views/mailings"
)

// mailingWithRecipients makes a mailing of owner to n new clients.
func mailingWithRecipients(t *testing.T, e *env, owner *model.User, n int) *model.Mailing {
	t.Helper()
	ctx := context.Background()
	ids := make([]int64, 0, n)
	for i := range n {
		c := &model.Client{OwnerID: owner.ID, Email: fmt.Sprintf("r%03d@example.com", i), FullName: fmt.Sprintf("Recipient %03d", i)}
		if err := e.store.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	msg := &model.Message{OwnerID: owner.ID, Subject: "Paged news", Body: "Hello {{name}}"}
	if err := e.store.CreateMessage(ctx, msg); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Minute)
	m := &model.Mailing{OwnerID: owner.ID, MessageID: msg.ID, StartsAt: start, EndsAt: start.Add(48 * time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated, NextRunAt: &start}
	if err := e.store.CreateMailing(ctx, m, ids); err != nil {
		t.Fatal(err)
	}
	return m
}

// The recipients of a mailing are paged with htmx (hx-target
// #mailing-recipients, hx-push-url): the answer is their section alone, not
// the whole page nested in place of it.
func TestBrowserMailingRecipientsPagerSwapsOnlyRecipients(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, perPageForBench+5)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open the mailing", chromedp.Navigate(fmt.Sprintf("%s/mailings/%d", base, m.ID)),
		chromedp.WaitVisible(chromedp.CSS("#mailing-recipients [data-testid=next-page]")))
	b.waitJS("htmx ready", `document.documentElement.dataset.htmx === "ready"`)
	b.settled("#mailing-recipients [data-testid=next-page]")
	b.do("next page of recipients", chromedp.Click(chromedp.CSS("#mailing-recipients [data-testid=next-page]")))
	b.waitJS("second page pushed", `location.search.includes("page=2") && !!document.querySelector("#mailing-recipients [data-testid=prev-page]")`)
	b.settled("#mailing-recipients")
	counts, err := chromedp.Run(b.ctx, chromedp.Evaluate[map[string]int](`({
		nav: document.querySelectorAll("nav[aria-label=Main]").length,
		show: document.querySelectorAll("[data-testid=mailing-show]").length,
		recipients: document.querySelectorAll("#mailing-recipients").length,
		footer: document.querySelectorAll("footer.container").length,
		rows: document.querySelectorAll("[data-testid=recipients-table] tbody tr").length,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if counts["nav"] != 1 || counts["show"] != 1 || counts["recipients"] != 1 || counts["footer"] != 1 || counts["rows"] != 5 {
		t.Errorf("after paging the recipients the page holds %v; want one navigation, one mailing card, one recipients section, one footer and the 5 recipients of page 2", counts)
	}
}

// A click whose htmx request fails (here: Delete on a client that another
// tab already deleted, 404) tells the person what went wrong: htmx swaps
// no error answer, so the page shows the error fragment's words in its
// flash area.
func TestBrowserHTMXErrorIsShown(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	c := &model.Client{OwnerID: ann.ID, Email: "gone@example.com", FullName: "Gone"}
	if err := e.store.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=delete-client]")))
	b.settled("[data-testid=delete-client]")
	// Meanwhile, in another tab, the client is deleted.
	if err := e.store.DeleteClient(context.Background(), ann.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	b.acceptConfirms()
	b.do("delete", chromedp.Click(chromedp.CSS("[data-testid=delete-client]")))
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`[...document.querySelectorAll("[role=alert], #flash .flash, [data-testid=error-page]")].some(el => el.offsetParent !== null && /not found|went wrong|nothing here/i.test(el.textContent))`,
		chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		t.Fatalf("a failed htmx request (404) shows nothing to the user; the page says:\n%s", html)
	}
}

// The session ends (idle timeout, sign-out elsewhere) while a list is
// open; the next htmx request goes to the sign-in page and, once signed
// in, back to the list.
func TestBrowserSessionExpiryMidHTMX(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	twoPagesOfClients(t, e, ann, "c%02d@example.com")
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open clients", chromedp.Navigate(base+"/clients?q=example"), chromedp.WaitVisible(chromedp.CSS("[data-testid=next-page]")))
	b.settled("[data-testid=next-page]")
	endSessions(t, e)
	b.do("page on", chromedp.Click(chromedp.CSS("[data-testid=next-page]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/login" && !!document.querySelector("[data-testid=login-form]")`)
	b.signInHere("ann@example.com")
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/clients" && !!document.querySelector("[data-testid=clients-table]")`)
	if got, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.pathname + location.search`)); !strings.Contains(got, "q=example") {
		t.Errorf("back at %q, want the list as it was (q=example)", got)
	}
}

// waitAcrossNavigation waits until expr is true, through page loads (a
// poll is cut short when the page navigates), for up to 10 s.
func waitAcrossNavigation(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	waitAcrossNavigationFor(t, ctx, 10*time.Second, expr)
}

// waitAcrossNavigationFor is waitAcrossNavigation for up to d: for what
// takes the machine's time (an import of 100,000 rows on a busy machine).
func waitAcrossNavigationFor(t *testing.T, ctx context.Context, d time.Duration, expr string) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		ok, err := chromedp.Run(pctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	href, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	t.Fatalf("waiting for %s (at %s): %v", expr, href, last)
}

// consoleErrors records exceptions, console errors and warnings, and
// browser log errors of the tab.
func consoleErrors(ctx context.Context) func() []string {
	var mu sync.Mutex
	var errs []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				mu.Lock()
				errs = append(errs, m.String()+" ("+m.URL+")")
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

// Every page of a signed-in user and a manager loads without script
// errors or warnings in the console.
func TestBrowserNoConsoleErrors(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleManager)
	o := makeObjects(t, e, ann)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	got := consoleErrors(b.ctx)
	for _, p := range []string{"/", "/login", "/register", "/password/forgot"} {
		b.do("open "+p, chromedp.Navigate(base+p), chromedp.WaitReady(chromedp.CSS("footer")))
		b.waitJS("htmx ready on "+p, `document.documentElement.dataset.htmx === "ready"`)
	}
	b.signIn("ann@example.com")
	for _, p := range []string{"/", "/clients", "/clients/new", "/clients/import", "/clients/" + id(o.client.ID), "/clients/" + id(o.client.ID) + "/edit",
		"/messages", "/messages/new", "/messages/" + id(o.message.ID), "/messages/" + id(o.message.ID) + "/edit",
		"/mailings", "/mailings/new", "/mailings/" + id(o.mailing.ID), "/mailings/" + id(o.mailing.ID) + "/edit", "/mailings/" + id(o.mailing.ID) + "/attempts",
		"/stats", "/stats?scope=all", "/users", "/account"} {
		b.do("open "+p, chromedp.Navigate(base+p), chromedp.WaitReady(chromedp.CSS("footer")))
		b.waitJS("htmx ready on "+p, `document.documentElement.dataset.htmx === "ready"`)
		time.Sleep(300 * time.Millisecond) // load-triggered htmx requests
		if errs := got(); len(errs) > 0 {
			t.Fatalf("console on %s: %v", p, errs)
		}
	}
	// The queue dashboard draws itself under its policy, which keeps its
	// fonts from Google.
	b.do("open the queue dashboard", chromedp.Navigate(base+"/ops/queues"))
	b.waitJS("the dashboard drawn", `document.body.innerText.includes("Queues")`)
	if errs := got(); len(errs) > 0 {
		t.Errorf("console on the queue dashboard: %v", errs)
	}
	// Its way back to the site stays in sight over the dashboard's own
	// drawing, and leads home.
	b.waitJS("the way back shown on top", `(() => {
		const a = document.querySelector("[data-testid=queues-back]"), r = a.getBoundingClientRect();
		return r.width > 0 && document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2).closest("[data-testid=queues-back]") === a;
	})()`)
	b.do("back to the site", chromedp.Click(chromedp.CSS("[data-testid=queues-back]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/" && !!document.querySelector("[data-testid=dashboard]")`)
}

// slowProxy sits between the browser and the app and, while held, holds
// every answer to a POST after the app has handled it, as a slow network
// does: the person sees nothing happen and clicks again.
type slowProxy struct {
	URL  string
	mu   sync.Mutex
	gate chan struct{} // closed: answers pass
}

func newSlowProxy(t *testing.T, base string) *slowProxy {
	t.Helper()
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{gate: make(chan struct{})}
	close(p.gate)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodPost {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(func() {
		p.release()
		srv.Close()
	})
	p.URL = srv.URL
	return p
}

// hold keeps the answers to POSTs from now until release.
func (p *slowProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
}

func (p *slowProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// slowDoubleClick clicks sel twice, 150 ms apart, as an impatient person
// does (two clicks of the mouse at the button's place, whatever the page
// does in between), while the answer to the first click is held: however
// slow the machine, the second click finds the page the first one left.
func (b *browserUser) slowDoubleClick(p *slowProxy, sel string) {
	b.t.Helper()
	xy, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]float64](`(() => {
		const el = document.querySelector("`+sel+`");
		el.scrollIntoView({block: "center"});
		const r = el.getBoundingClientRect();
		return [r.left + r.width / 2, r.top + r.height / 2];
	})()`))
	if err != nil {
		b.t.Fatalf("find %s: %v", sel, err)
	}
	p.hold()
	defer p.release()
	b.do("first click on "+sel, chromedp.MouseClickXY(xy[0], xy[1]))
	time.Sleep(150 * time.Millisecond)
	b.do("second click on "+sel, chromedp.MouseClickXY(xy[0], xy[1]))
	time.Sleep(300 * time.Millisecond) // a second POST, if any, is on its way
}

func countRows(t *testing.T, e *env, table string, ownerID int64) int64 {
	t.Helper()
	n, err := e.db.NewSelect().Table(table).Where("owner_id = ?", ownerID).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A double click on "Save message" (a plain form) on a slow connection
// sends the form once: one message.
func TestBrowserDoubleSubmitCreatesOneMessage(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	proxy := newSlowProxy(t, base)
	slow := proxy.URL
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: slow}
	b.signIn("ann@example.com")
	b.do("new message", chromedp.Navigate(slow+"/messages/new"),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=message-form]")),
		chromedp.SetValue(chromedp.CSS("#field-subject"), "Only once"),
		chromedp.SetValue(chromedp.CSS("#field-body"), "Hello {{name}}"),
	)
	b.waitJS("scripts ready", `document.documentElement.dataset.htmx === "ready"`)
	b.slowDoubleClick(proxy, "[data-testid=message-form] button[type=submit]")
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("[data-testid=message-show]")`)
	time.Sleep(time.Second) // a second POST, if any, has been handled
	if n := countRows(t, e, "messages", ann.ID); n != 1 {
		t.Errorf("a double click on Save message created %d messages, want 1", n)
	}
}

// A double click on "Send now" on a slow connection posts once: the page
// says "Sending to N recipients", not a second post's refusal ("A run of
// this mailing is still sending").
func TestBrowserDoubleClickSendNow(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, 3)
	proxy := newSlowProxy(t, base)
	slow := proxy.URL
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: slow}
	b.signIn("ann@example.com")
	b.do("open the mailing", chromedp.Navigate(fmt.Sprintf("%s/mailings/%d", slow, m.ID)),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=send-now]")))
	b.waitJS("scripts ready", `document.documentElement.dataset.htmx === "ready"`)
	b.acceptConfirms()
	b.slowDoubleClick(proxy, "[data-testid=send-now]")
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("#flash .flash")`)
	time.Sleep(time.Second)
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("#flash .flash")`)
	flash, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("#flash")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flash, "Sending to 3 recipients") {
		t.Errorf("after a double click on Send now the page says %q, want %q", strings.TrimSpace(flash), "Sending to 3 recipients.")
	}
}

// A form sent back with an error keeps what was typed and puts the focus
// on the field in error, so a keyboard or screen-reader user lands on the
// message. The message form always focuses the subject (autofocus), and
// the mailing form focuses nothing.
func TestBrowserValidationFocusesTheFieldInError(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	mailingWithRecipients(t, e, ann, 1)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")

	b.do("a message without text", chromedp.Navigate(base+"/messages/new"),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=message-form]")),
		chromedp.SetValue(chromedp.CSS("#field-subject"), "Kept subject"),
		chromedp.Click(chromedp.CSS("[data-testid=message-form] button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`[data-field-error="body"]`)),
	)
	b.waitJS("scripts ran", `document.documentElement.dataset.htmx === "ready"`)
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[document.querySelector("#field-subject").value, document.activeElement.id]`))
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "Kept subject" {
		t.Errorf("the subject typed is lost: %q", got[0])
	}
	if got[1] != "field-body" {
		t.Errorf("after the error on the text the focus is on %q, want field-body", got[1])
	}

	b.do("a mailing that ends before it starts", chromedp.Navigate(base+"/mailings/new"),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-form]")))
	b.settled("[data-testid=picker-option]")
	start := time.Now().Add(48 * time.Hour)
	b.do("fill",
		chromedp.SetValue(chromedp.CSS("#field-message_id"), "1"),
		chromedp.SetValue(chromedp.CSS("#field-starts_at"), start.Format("2006-01-02T15:04")),
		chromedp.SetValue(chromedp.CSS("#field-ends_at"), start.Add(-time.Hour).Format("2006-01-02T15:04")),
		chromedp.Click(chromedp.CSS("[data-testid=picker-option]")),
		chromedp.Click(chromedp.CSS("[data-testid=save-mailing]")),
		chromedp.WaitVisible(chromedp.CSS(`[data-field-error="ends_at"]`)),
	)
	b.waitJS("scripts ran", `document.documentElement.dataset.htmx === "ready"`)
	focus, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement.id || document.activeElement.tagName`))
	if err != nil {
		t.Fatal(err)
	}
	if focus != "field-ends_at" {
		t.Errorf("after the error on the end of sending the focus is on %q, want field-ends_at", focus)
	}
}

// Search and page the clients with htmx, then Back, Forward and reload:
// the address and the list agree at every step, and a search typed with
// pauses is one step.
func TestBrowserClientsHistory(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	twoPagesOfClients(t, e, ann, "c%02d@example.com")
	extra := &model.Client{OwnerID: ann.ID, Email: "zed@other.test"}
	if err := e.store.CreateClient(context.Background(), extra); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=next-page]")))
	b.settled("[data-testid=next-page]")
	b.do("next page", chromedp.Click(chromedp.CSS("[data-testid=next-page]")))
	b.waitJS("page 2", `location.search === "?page=2" && !!document.querySelector("[data-testid=prev-page]")`)
	b.settled("[data-testid=client-search]")
	// Typed with a pause: the search runs for "z", then for "zed"; it is
	// one step back all the same.
	b.do("search", chromedp.SendKeys(chromedp.CSS("[data-testid=client-search]"), "z"))
	b.waitJS("searched z", `location.search === "?q=z"`)
	b.settled("[data-testid=client-search]")
	b.do("search on", chromedp.SendKeys(chromedp.CSS("[data-testid=client-search]"), "ed"))
	b.waitJS("searched", `location.search === "?q=zed" && document.querySelectorAll("[data-testid=client-row]").length === 1`)
	state := func() string {
		s, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.search + " rows=" + document.querySelectorAll("[data-testid=client-row]").length +
			" q=" + document.querySelector("[data-testid=client-search]").value + " pager=" + document.querySelector("[data-testid=pager]").textContent.replace(/\s+/g, " ").trim()`))
		return s
	}
	b.do("back", chromedp.NavigateBack())
	waitAcrossNavigation(t, b.ctx, `location.search === "?page=2"`)
	waitAcrossNavigation(t, b.ctx, `document.querySelectorAll("[data-testid=client-row]").length === 6 && document.querySelector("[data-testid=client-search]").value === ""`)
	b.do("back again", chromedp.NavigateBack())
	waitAcrossNavigation(t, b.ctx, `location.search === "" && document.querySelectorAll("[data-testid=client-row]").length === 50`)
	b.do("forward", chromedp.NavigateForward())
	waitAcrossNavigation(t, b.ctx, `location.search === "?page=2" && document.querySelectorAll("[data-testid=client-row]").length === 6`)
	b.do("forward again", chromedp.NavigateForward())
	waitAcrossNavigation(t, b.ctx, `location.search === "?q=zed" && document.querySelectorAll("[data-testid=client-row]").length === 1`)
	b.do("reload", chromedp.Reload())
	waitAcrossNavigation(t, b.ctx, `location.search === "?q=zed" && document.querySelectorAll("[data-testid=client-row]").length === 1 && document.querySelector("[data-testid=client-search]").value === "zed"`)
	if got := state(); !strings.HasPrefix(got, "?q=zed rows=1 q=zed ") {
		t.Errorf("after the reload: %s", got)
	}
}

// A search typed while the list is filtered keeps the filter, and a
// filter chosen after the search keeps the search.
func TestBrowserSearchKeepsTheFilter(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	var bounced []int64
	for _, email := range []string{"zed@one.test", "zed@two.test", "amy@one.test"} {
		cl := &model.Client{OwnerID: ann.ID, Email: email}
		if err := e.store.CreateClient(ctx, cl); err != nil {
			t.Fatal(err)
		}
		if email != "zed@two.test" {
			bounced = append(bounced, cl.ID)
		}
	}
	if err := e.store.MarkBounced(ctx, bounced); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("bounced clients", chromedp.Navigate(base+"/clients?state=bounced"), chromedp.WaitVisible(chromedp.CSS("[data-testid=clients-table]")))
	b.settled("[data-testid=client-search]")
	b.do("search", chromedp.SendKeys(chromedp.CSS("[data-testid=client-search]"), "zed"))
	b.waitJS("searched among the bounced", `location.search === "?q=zed&state=bounced" && document.querySelectorAll("[data-testid=client-row]").length === 1`)
	b.settled("a[data-filter='']")
	b.do("everyone", chromedp.Click(chromedp.CSS("a[data-filter='']")))
	b.waitJS("everyone searched", `location.search === "?q=zed" && document.querySelectorAll("[data-testid=client-row]").length === 2`)
}

// Send now with a worker: the progress box fills, the page reloads once
// the run has ended, the runs table and the attempt log show the sends.
func TestBrowserSendNowProgress(t *testing.T) {
	e, base := servedEnv(t)
	sink := e.withWorker(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, 5)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	got := consoleErrors(b.ctx)
	b.do("open the mailing", chromedp.Navigate(fmt.Sprintf("%s/mailings/%d", base, m.ID)),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=send-now]")))
	b.waitJS("scripts ready", `document.documentElement.dataset.htmx === "ready"`)
	b.acceptConfirms()
	b.do("send now", chromedp.Click(chromedp.CSS("[data-testid=send-now]")))
	// The word that it started, unless the run was over so soon that the
	// page has reloaded already (the one-time word gone with it).
	waitAcrossNavigation(t, b.ctx, `(document.querySelector("#flash")||{}).textContent?.includes("Sending to 5 recipients") ||
		(document.querySelector("[data-testid=runs-table] tbody")||{}).textContent?.includes("manual")`)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := sink.Wait(ctx, 5); err != nil {
		t.Fatal(err)
	}
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("[data-testid=runs-table]") && !document.querySelector("[data-testid=runs-table]").textContent.includes("sending…")`)
	waitAcrossNavigation(t, b.ctx, `document.querySelector("[data-testid=progress-bar]").value === 5 && document.querySelector("[data-testid=progress-sent]").textContent === "5"`)
	waitAcrossNavigation(t, b.ctx, `document.querySelectorAll("[data-testid=attempt-row]").length === 5`)
	// The sections above renew on their own, and may show the run's end
	// before the progress box reloads the page: wait for the page after
	// the run (its box no longer polls every second).
	waitAcrossNavigation(t, b.ctx, `document.readyState === "complete" && document.querySelector("[data-testid=run-progress]").getAttribute("hx-trigger") !== "every 1s"`)
	// Asked once the page has reloaded (the run over), not while it may.
	if asked, want := b.asked(), "Send this mailing to its 5 recipients now? It takes the place of the send planned for "; len(asked) != 1 || !strings.HasPrefix(asked[0], want) {
		t.Errorf("Send now asked %q first, want %q", asked, want)
	}
	b.do("attempt log", chromedp.Navigate(fmt.Sprintf("%s/mailings/%d/attempts?status=failure", base, m.ID)))
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("[data-testid=empty]")`)
	if errs := got(); len(errs) > 0 {
		t.Errorf("console: %v", errs)
	}
}

// A run switched off after 2 of its 5 recipients: "Send to the rest"
// asks first, the worker mails only the 3 not reached, and the page
// shows the rest run as it ends.
func TestBrowserSendToTheRest(t *testing.T) {
	e, base := servedEnv(t)
	sink := e.withWorker(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, 5)
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET starts_at = now() - interval '1 hour', next_run_at = NULL, status = 'running' WHERE id = ?", m.ID); err != nil {
		t.Fatal(err)
	}
	fin := time.Now().Add(-time.Minute)
	run := e.insertRun(t, &model.Run{MailingID: m.ID, Trigger: model.TriggerManual, StartedAt: fin.Add(-time.Minute), FinishedAt: &fin,
		Total: 5, Succeeded: 2, Skipped: 3, Unreached: 3})
	if _, err := e.db.ExecContext(ctx, `INSERT INTO attempts (run_id, mailing_id, client_id, email, status, response, tries)
		SELECT ?, ?, id, email, 'success', '250 ok', 1 FROM clients WHERE email IN ('r000@example.com', 'r001@example.com')`, run.ID, m.ID); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	got := consoleErrors(b.ctx)
	b.do("open the mailing", chromedp.Navigate(fmt.Sprintf("%s/mailings/%d", base, m.ID)),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=send-rest]")))
	b.waitJS("scripts ready", `document.documentElement.dataset.htmx === "ready"`)
	b.acceptConfirms()
	b.do("send to the rest", chromedp.Click(chromedp.CSS("[data-testid=send-rest]")))
	wait, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := sink.Wait(wait, 3); err != nil {
		t.Fatal(err)
	}
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("[data-testid=runs-table]") && !document.querySelector("[data-testid=runs-table]").textContent.includes("sending…")`)
	waitAcrossNavigation(t, b.ctx, `document.querySelector("[data-testid=progress-sent]").textContent === "3" && document.querySelector("[data-testid=run-progress]").textContent.includes("rest run")`)
	var to []string
	for _, r := range sink.Messages() {
		to = append(to, r.To...)
	}
	slices.Sort(to)
	if strings.Join(to, ",") != "r002@example.com,r003@example.com,r004@example.com" {
		t.Errorf("the rest mailed %v, want the 3 not reached", to)
	}
	if asked := b.asked(); len(asked) != 1 || !strings.Contains(asked[0], ": 3 recipients it did not get to when it stopped") {
		t.Errorf("Send to the rest asked %q first", asked)
	}
	if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=send-rest]").length`)); err != nil || n != 0 {
		t.Errorf("Send to the rest still offered once everyone is reached (%d, %v)", n, err)
	}
	if errs := got(); len(errs) > 0 {
		t.Errorf("console: %v", errs)
	}
}

// Every control of the main pages has a name a screen reader reads (a
// label tied to it, or aria-label), and the focused control is visible.
// (A hidden one, such as the username field password managers read, is
// not read at all.)
func TestBrowserControlsLabelledAndFocusVisible(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	o := makeObjects(t, e, ann)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	for _, p := range []string{"/login", "/register", "/password/forgot"} {
		b.do("open "+p, chromedp.Navigate(base+p), chromedp.WaitReady(chromedp.CSS("footer")))
		b.checkControls(p)
	}
	b.signIn("ann@example.com")
	for _, p := range []string{"/clients", "/clients/new", "/clients/import", "/clients/" + id(o.client.ID) + "/edit",
		"/messages", "/messages/new", "/mailings", "/mailings/new", "/mailings/" + id(o.mailing.ID) + "/edit", "/account", "/stats"} {
		b.do("open "+p, chromedp.Navigate(base+p), chromedp.WaitReady(chromedp.CSS("footer")))
		b.waitJS("htmx ready", `document.documentElement.dataset.htmx === "ready"`)
		time.Sleep(300 * time.Millisecond)
		b.checkControls(p)
	}
}

func (b *browserUser) checkControls(page string) {
	b.t.Helper()
	bad, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")].filter(el => !el.closest("[hidden]")).filter(el => {
		const name = (el.labels && [...el.labels].map(l => l.textContent).join("").trim()) || el.getAttribute("aria-label") ||
			(el.getAttribute("aria-labelledby") && document.getElementById(el.getAttribute("aria-labelledby"))?.textContent) ||
			(el.tagName === "BUTTON" && el.textContent.trim()) || el.title;
		return !name;
	}).map(el => el.outerHTML.slice(0, 160))`))
	if err != nil {
		b.t.Fatal(err)
	}
	if len(bad) > 0 {
		b.t.Errorf("%s: controls without a name: %v", page, bad)
	}
	// Focus each control in turn: each shows it. (The tab must have the
	// focus first: a click on the page, as a person's first keypress.)
	b.do("focus the tab", chromedp.Click(chromedp.CSS("footer small")))
	invisible, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`(async () => {
		const out = [];
		const els = [...document.querySelectorAll("main a[href], main input:not([type=hidden]), main select, main textarea, main button")].filter(el => el.offsetParent !== null && !el.disabled);
		const look = el => { const s = getComputedStyle(el); return s.outlineStyle + " " + s.outlineWidth + " " + s.boxShadow; };
		const checked = els.slice(0, 8);
		document.activeElement?.blur(); // an autofocus field
		await new Promise(r => setTimeout(r, 250));
		const unfocused = checked.map(look); // a button has a transparent shadow before any focus
		for (const [i, el] of checked.entries()) {
			el.focus({focusVisible: true});
			if (document.activeElement !== el) continue;
			await new Promise(r => setTimeout(r, 250)); // past the style's transition
			const s = getComputedStyle(el);
			const ring = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0) || (s.boxShadow && s.boxShadow !== "none");
			if (!ring || look(el) === unfocused[i]) out.push(el.outerHTML.slice(0, 120));
		}
		return out;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatal(err)
	}
	if len(invisible) > 0 {
		b.t.Errorf("%s: focus not visible on %v", page, invisible)
	}
}

// The next page of a list, followed in place from the pager at the
// bottom, is shown from its top, as a page loaded whole would be: the
// view stayed where the pager was, at the bottom of the next page.
func TestBrowserNextPageShowsItsTop(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	for i := range 2*perPageForBench + 5 {
		if err := e.store.CreateClient(context.Background(), &model.Client{OwnerID: ann.ID, Email: fmt.Sprintf("c%03d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=next-page]")))
	b.settled("[data-testid=next-page]")
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(window.scrollTo(0, document.body.scrollHeight), scrollY > 0)`)); err != nil {
		t.Fatal(err)
	}
	b.do("next page", chromedp.Click(chromedp.CSS("[data-testid=next-page]")))
	b.waitJS("page 2", `location.search === "?page=2" && !!document.querySelector("[data-testid=prev-page]")`)
	b.waitJS("its first rows in view", `(() => {
		const r = document.querySelector("[data-testid=client-row]").getBoundingClientRect();
		return r.top >= 0 && r.bottom <= innerHeight;
	})()`)
}

// twoPagesOfClients gives owner a page of clients and 5 more, their
// addresses made of format and their number.
func twoPagesOfClients(t *testing.T, e *env, owner *model.User, format string) {
	t.Helper()
	for i := range perPageForBench + 5 {
		c := &model.Client{OwnerID: owner.ID, Email: fmt.Sprintf(format, i)}
		if err := e.store.CreateClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

// A comment of several lines (a CSV import takes them) keeps its lines
// when the client is edited and saved, on the edit page and in the list's
// row alike: a one-line text input joined them without a word.
func TestBrowserEditKeepsAMultiLineComment(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	const comment = "met at the fair\ncall back in May"
	cl := &model.Client{OwnerID: ann.ID, Email: "multi@example.com", FullName: "Multi", Comment: comment}
	if err := e.store.CreateClient(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
	stored := func(step string) {
		t.Helper()
		got, err := e.store.ClientByID(context.Background(), store.Own(ann.ID), cl.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Comment != comment {
			t.Fatalf("after %s the comment is %q, want %q", step, got.Comment, comment)
		}
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")

	b.do("edit page", chromedp.Navigate(base+"/clients/"+id(cl.ID)+"/edit"), chromedp.WaitVisible(chromedp.CSS("[data-testid=client-edit-form]")))
	b.do("save", chromedp.Click(chromedp.CSS("[data-testid=client-edit-form] button[type=submit]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/clients/`+id(cl.ID)+`" && !!document.querySelector("[data-testid=client-show]")`)
	stored("saving the edit page")

	b.do("list", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=edit-client]")))
	b.settled("[data-testid=edit-client]")
	b.do("edit row", chromedp.Click(chromedp.CSS("[data-testid=edit-client]")))
	b.settled("[data-testid=save-client]")
	b.do("save row", chromedp.Click(chromedp.CSS("[data-testid=save-client]")))
	b.settled("[data-testid=edit-client]")
	stored("saving the list's row")
}

// A new user adds their first client with the form above the list: the
// list shows it at once (not "No clients yet" beside "was added"), and
// its count follows; deleting it brings the empty list back.
func TestBrowserListFollowsInlineAddAndDelete(t *testing.T) {
	e, base := servedEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=empty]")))
	b.settled("[data-testid=new-client]")
	b.do("add client form", chromedp.Click(chromedp.CSS("[data-testid=new-client]")), chromedp.WaitVisible(chromedp.CSS("[data-testid=client-new-form]")))
	b.settled("#field-email")
	b.do("add the first client",
		chromedp.SendKeys(chromedp.CSS("#field-email"), "first@example.com"),
		chromedp.Click(chromedp.CSS("[data-testid=client-new-form] button[type=submit]")),
	)
	b.waitJS("added", `document.querySelector("#client-new")?.textContent.includes("first@example.com was added")`)
	state := func() string {
		s, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`"rows=" + document.querySelectorAll("[data-testid=client-row]").length +
			" empty=" + !!document.querySelector("#clients-list [data-testid=empty]") +
			" pager=" + document.querySelector("#clients-list [data-testid=pager]").textContent.replace(/\s+/g, " ").trim()`))
		return s
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("[data-testid=client-row]").length === 1`,
		chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("the first client added is not in the list: %s", state())
	}
	b.settled("[data-testid=client-row]")
	if got := state(); got != "rows=1 empty=false pager=1 client" {
		t.Errorf("after adding the first client the list shows %s, want rows=1 empty=false pager=1 client", got)
	}
	b.do("add a second",
		chromedp.SendKeys(chromedp.CSS("#field-email"), "second@example.com"),
		chromedp.Click(chromedp.CSS("[data-testid=client-new-form] button[type=submit]")),
	)
	b.waitJS("second added", `document.querySelectorAll("[data-testid=client-row]").length === 2`)
	b.settled("[data-testid=client-row]")
	if got := state(); got != "rows=2 empty=false pager=2 clients" {
		t.Errorf("after adding a second client the list shows %s, want pager=2 clients", got)
	}
	b.acceptConfirms()
	for range 2 {
		b.do("delete", chromedp.Click(chromedp.CSS("[data-testid=delete-client]")))
		b.waitJS("deleted", `document.querySelectorAll("[data-testid=delete-client]").length < 2 && document.querySelector(".htmx-request") === null`)
		b.settled("#clients-list")
	}
	// The page says so, as after a plain form's delete (the row went
	// without a word).
	if got := b.text("#flash [data-testid=flash]"); got != "Client deleted." {
		t.Errorf("after a delete in the list the page says %q", got)
	}
	b.waitJS("empty again", `!!document.querySelector("#clients-list [data-testid=empty]")`)
	if got := state(); got != "rows=0 empty=true pager=" {
		t.Errorf("after deleting every client the list shows %s, want rows=0 empty=true and no count beside the empty state", got)
	}
}

// Enter in the recipient picker's search runs the search: it does not
// send the mailing form around it (which came back "Choose at least one
// recipient", the search typed lost, or saved a half-made mailing).
func TestBrowserPickerSearchEnterDoesNotSubmit(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	mailingWithRecipients(t, e, ann, 3)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("new mailing", chromedp.Navigate(base+"/mailings/new"), chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-form]")))
	b.waitJS("picker loaded", `document.querySelectorAll("[data-testid=picker-option]").length === 3`)
	b.settled("[data-testid=picker-search]")
	// With the script, Enter elsewhere saves (the form's first button,
	// which searches without it, saves) and the buttons for a page
	// without it are hidden.
	b.waitJS("the first button saves", `!document.querySelector("[data-picker-default]").hasAttribute("name") && document.querySelector("[data-testid=picker-search-button]").hidden`)
	b.do("search and press Enter",
		chromedp.SendKeys(chromedp.CSS("[data-testid=picker-search]"), "r001"),
		chromedp.KeyEvent(kb.Enter),
	)
	b.waitJS("searched", `document.querySelectorAll("[data-testid=picker-option]").length === 1`)
	time.Sleep(500 * time.Millisecond) // a form post, if any, has come back
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.pathname + " errors=" + document.querySelectorAll("[data-field-error]").length +
		" q=" + document.querySelector("[data-testid=picker-search]").value`))
	if err != nil {
		t.Fatal(err)
	}
	if got != "/mailings/new errors=0 q=r001" {
		t.Errorf("after Enter in the picker's search the page is %s, want /mailings/new errors=0 q=r001", got)
	}
	if n := countRows(t, e, "mailings", ann.ID); n != 1 {
		t.Errorf("%d mailings, want the 1 made before", n)
	}
}

// A client's row edited in place works from the keyboard: Edit puts the
// focus in the row's first field, Enter in a field saves, Escape cancels,
// and the focus goes back to the row's Edit button each time (it fell to
// the page, with Enter and Escape doing nothing).
func TestBrowserInlineEditByKeyboard(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	cl := &model.Client{OwnerID: ann.ID, Email: "kb@example.com", FullName: "Kay"}
	if err := e.store.CreateClient(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
	row := "#client-" + id(cl.ID)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=edit-client]")))
	b.settled("[data-testid=edit-client]")
	focused := func() string {
		s, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(document.activeElement.closest("tr")?.id || "-") + " " +
			(document.activeElement.getAttribute("name") || document.activeElement.dataset.testid || document.activeElement.tagName)`))
		return s
	}
	open := func() {
		t.Helper()
		b.do("focus Edit", chromedp.Focus(chromedp.CSS(row+" [data-testid=edit-client]")))
		b.do("press Enter on Edit", chromedp.KeyEvent(kb.Enter))
		b.waitJS("edit row", `!!document.querySelector("[data-testid=client-edit-row]")`)
		b.settled("[data-testid=client-edit-row]")
		if got, want := focused(), row[1:]+" email"; got != want {
			t.Errorf("the edit row opened with the focus on %q, want %q", got, want)
		}
	}
	open()
	b.do("change the name and press Enter",
		chromedp.SetValue(chromedp.CSS(row+" input[name=full_name]"), "Kay Two"),
		chromedp.Focus(chromedp.CSS(row+" input[name=full_name]")),
		chromedp.KeyEvent(kb.Enter),
	)
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!document.querySelector("`+row+`[data-testid=client-row]")`, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatal("Enter in the row's field did not save it")
	}
	b.settled(row)
	if got, _ := e.store.ClientByID(context.Background(), store.Own(ann.ID), cl.ID); got == nil || got.FullName != "Kay Two" {
		t.Errorf("saved name %+v, want Kay Two", got)
	}
	if got, want := focused(), row[1:]+" edit-client"; got != want {
		t.Errorf("after saving the focus is on %q, want %q", got, want)
	}
	open()
	b.do("type and press Escape",
		chromedp.Focus(chromedp.CSS(row+" input[name=full_name]")),
		chromedp.KeyEvent("zzz"),
		chromedp.KeyEvent(kb.Escape),
	)
	ctx2, cancel2 := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel2()
	if _, err := chromedp.Run(ctx2, chromedp.Poll[bool](`!!document.querySelector("`+row+`[data-testid=client-row]")`, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatal("Escape in the row's field did not cancel the edit")
	}
	b.settled(row)
	if name := b.text(row + " td:nth-child(2)"); name != "Kay Two" {
		t.Errorf("after Escape the row shows the name %q, want Kay Two", name)
	}
	if got, want := focused(), row[1:]+" edit-client"; got != want {
		t.Errorf("after cancelling the focus is on %q, want %q", got, want)
	}
}

// The add-client form above the list works from the keyboard: it opens
// with the focus in its first field, Escape closes it as Close does, and
// the focus goes back to "Add client" (it fell to the page).
func TestBrowserAddClientFormByKeyboard(t *testing.T) {
	e, base := servedEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=new-client]")))
	b.settled("[data-testid=new-client]")
	focused := func() string {
		s, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement.id || document.activeElement.dataset.testid || document.activeElement.tagName`))
		return s
	}
	for _, close := range []string{"Escape", "Close"} {
		b.do("focus Add client", chromedp.Focus(chromedp.CSS("[data-testid=new-client]")))
		b.do("press Enter", chromedp.KeyEvent(kb.Enter))
		b.waitJS("form open", `!!document.querySelector("[data-testid=client-new-form]")`)
		b.settled("[data-testid=client-new-form]")
		if got := focused(); got != "field-email" {
			t.Errorf("the form opened with the focus on %q, want field-email", got)
		}
		if close == "Escape" {
			b.do("press Escape", chromedp.KeyEvent(kb.Escape))
		} else {
			b.do("focus Close and press Enter", chromedp.Focus(chromedp.CSS("[data-testid=client-new-form] [data-clear]")), chromedp.KeyEvent(kb.Enter))
		}
		ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.querySelector("[data-testid=client-new-form]")`, chromedp.WithPollingInterval(50*time.Millisecond)))
		cancel()
		if err != nil {
			t.Fatalf("%s did not close the add-client form", close)
		}
		if got := focused(); got != "new-client" {
			t.Errorf("after %s the focus is on %q, want the Add client button", close, got)
		}
	}
}

// Switches swapped in place keep the keyboard's place: after Disable on
// a mailing in the list the focus is on its Enable, and after Block on a user on
// their Unblock (it fell to the page, the next Tab starting over from
// the top).
func TestBrowserSwitchesKeepTheFocus(t *testing.T) {
	e, base := servedEnv(t)
	boss := newUser(t, e, "boss@example.com", model.RoleManager)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, boss, 1)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("boss@example.com")
	b.acceptConfirms()
	focused := func() string {
		s, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement.dataset.testid || document.activeElement.tagName`))
		return s
	}
	press := func(what, page, sel, want string) {
		t.Helper()
		b.do("open "+page, chromedp.Navigate(base+page), chromedp.WaitVisible(chromedp.CSS(sel)))
		b.settled(sel)
		b.acceptConfirms()
		b.do(what, chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(kb.Enter))
		b.waitJS(what+" done", `!!document.querySelector("[data-testid=`+want+`]")`)
		b.settled("[data-testid=" + want + "]")
		if got := focused(); got != want {
			t.Errorf("after %s the focus is on %q, want %s", what, got, want)
		}
	}
	press("Disable", "/mailings", "#mailing-"+id(m.ID)+" [data-testid=disable-mailing]", "enable-mailing")
	press("Block", "/users", "#user-"+id(ann.ID)+" [data-testid=block-user]", "unblock-user")
}

// The keyboard's first stop is a link past the navigation: hidden until
// focused, then shown, and Enter puts the focus on the page's content.
func TestBrowserSkipLink(t *testing.T) {
	e, base := servedEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=new-client]")))
	b.settled("[data-testid=new-client]")
	onScreen := `(() => { const r = document.querySelector(".skip-link").getBoundingClientRect(); return r.bottom > 0 && r.top >= 0 })()`
	if shown, _ := chromedp.Run(b.ctx, chromedp.Evaluate[bool](onScreen)); shown {
		t.Errorf("the skip link shows before it has the focus")
	}
	b.do("press Tab", chromedp.KeyEvent(kb.Tab))
	b.waitJS("the skip link has the focus, and shows", `document.activeElement.matches(".skip-link") && `+onScreen)
	b.do("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitJS("the content has the focus", `document.activeElement.id === "main"`)
}

// An empty chart says so over its plot, and stays there when its table
// is opened below (the note was placed on the whole figure, and landed
// on the table).
func TestBrowserEmptyChartNoteStaysOnThePlot(t *testing.T) {
	e, base := servedEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open the statistics", chromedp.Navigate(base+"/stats"), chromedp.WaitVisible(chromedp.CSS("[data-testid=chart-empty]")))
	b.do("show the table", chromedp.Click(chromedp.CSS("[data-testid=chart] details summary")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=chart-table]")))
	inside, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => {
		const note = document.querySelector("[data-testid=chart-empty]").getBoundingClientRect();
		const plot = document.querySelector("[data-testid=chart] svg").getBoundingClientRect();
		return note.height > 0 && note.top >= plot.top && note.bottom <= plot.bottom;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if !inside {
		t.Error("the empty chart's note is not over its plot with the table open")
	}
}

// "Choose all matching" with more clients than a mailing takes chooses the
// newest it takes and says so beside the count, rather than leave the
// owner to find out which were left; with exactly as many it chooses them
// all and says nothing.
func TestBrowserPickerChooseAllSaysWhatItLeft(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	addClients := func(from, to int) {
		t.Helper()
		if _, err := e.db.ExecContext(context.Background(), `INSERT INTO clients (owner_id, email)
			SELECT ?, 'c' || g || '@example.com' FROM generate_series(?::int, ?::int) AS g`, ann.ID, from, to); err != nil {
			t.Fatal(err)
		}
	}
	addClients(1, form.MaxRecipients)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("new mailing", chromedp.Navigate(base+"/mailings/new"), chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-form]")))
	b.waitJS("picker loaded", `document.querySelectorAll("[data-testid=picker-option]").length > 0`)
	b.settled("[data-testid=picker-all]")
	chooseAll := func() string {
		t.Helper()
		b.do("clear", chromedp.Click(chromedp.CSS("[data-picker-clear]")))
		b.waitJS("cleared", `document.querySelector("[data-testid=recipient-count]").textContent === "0"`)
		b.do("choose all", chromedp.Click(chromedp.CSS("[data-testid=picker-all]")))
		b.waitJS("chosen", `document.querySelector("[data-testid=recipient-count]").textContent === "100\u202f000"`)
		note, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(n => n.hidden ? "" : n.textContent)(document.querySelector("[data-testid=picker-note]"))`))
		if err != nil {
			t.Fatal(err)
		}
		return note
	}
	if note := chooseAll(); note != "" {
		t.Errorf("choosing all of exactly 100,000 clients says %q", note)
	}
	addClients(form.MaxRecipients+1, form.MaxRecipients+1)
	if note := chooseAll(); !strings.Contains(note, "the newest 100\u202f000 were chosen") {
		t.Errorf("choosing all of 100,001 clients says %q", note)
	}
}

// Keyboard users keep their place in a list htmx replaces: a row deleted
// moves the focus to the same button of the row that takes its place
// (and keeps it there when the list reloads after it), and a list paged
// keeps it on its pager. It used to fall to the page, and the next Tab
// started over from the top.
func TestBrowserListKeepsTheFocus(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	twoPagesOfClients(t, e, ann, "kept-%02d@example.com")
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=next-page]")))
	b.settled("[data-testid=delete-client]")
	b.acceptConfirms()
	focused := func() string {
		t.Helper()
		s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(function () {
			var a = document.activeElement;
			var same = Array.from(document.querySelectorAll('[data-testid="' + a.dataset.testid + '"]'));
			return (a.dataset.testid || a.tagName) + " " + same.indexOf(a) + " " + ((a.closest("tr") || {}).textContent || "").trim().split(/\s+/)[0];
		})()`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	row := func(i int) string {
		t.Helper()
		s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelectorAll("[data-testid=client-row]")[%d].textContent.trim().split(/\s+/)[0]`, i)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// deleteSecond deletes the second row by keyboard (after the script
	// first, if any) and says where the focus is once the list reloaded.
	deleteSecond := func(first string) string {
		t.Helper()
		gone := row(1)
		b.do("delete the second row by keyboard", chromedp.Evaluate[chromedp.Void](first+`;
			document.querySelectorAll("[data-testid=delete-client]")[1].focus()`), chromedp.KeyEvent("\r"))
		b.waitJS("deleted and the list reloaded", `!document.getElementById("clients-list").textContent.includes("`+gone+`") &&
			document.querySelector(".htmx-request, .htmx-settling, .htmx-swapping, .htmx-added") === null`)
		time.Sleep(300 * time.Millisecond) // the reload after the delete
		b.settled("#clients-list")
		return focused()
	}

	third := row(2)
	if got := deleteSecond(""); got != "delete-client 1 "+third {
		t.Errorf("after deleting a row the focus is on %q, want %q", got, "delete-client 1 "+third)
	}
	// A busy browser may handle the list's reload before a timer due at
	// once: the focus must not wait for one (it fell to the page so).
	fourth := row(2)
	if got := deleteSecond(`var set = window.__setTimeout = window.setTimeout;
		window.setTimeout = function (f, ms) { return set(f, ms > 0 ? ms : 1000); }`); got != "delete-client 1 "+fourth {
		t.Errorf("after deleting a row with the browser busy the focus is on %q, want %q", got, "delete-client 1 "+fourth)
	}

	// The focus is back as the new page comes in, not when htmx settles
	// it (20 ms later, here held back): a key pressed meanwhile went to
	// the page.
	b.do("slower timers and next page by keyboard",
		chromedp.Evaluate[chromedp.Void](`window.setTimeout = function (f, ms) { return window.__setTimeout(f, (ms || 0) + 1000); }`),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("[data-testid=next-page]").focus()`), chromedp.KeyEvent("\r"))
	b.waitJS("second page", `location.search.includes("page=2") && !!document.querySelector("[data-testid=prev-page]")`)
	got := focused()
	b.do("timers back", chromedp.Evaluate[chromedp.Void](`window.setTimeout = window.__setTimeout`))
	b.settled("#clients-list")
	if got != "prev-page 0 " {
		t.Errorf("as the page came in the focus is on %q, want the pager's Previous (Next is gone)", got)
	}
	if got := focused(); got != "prev-page 0 " {
		t.Errorf("after paging the focus is on %q, want the pager's Previous (Next is gone)", got)
	}

	// The last row of a list deleted leaves the focus on the list, as it
	// reloads to say it is empty (it fell to the page).
	only, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("[data-testid=client-row] td.address a").textContent.trim()`))
	if err != nil {
		t.Fatal(err)
	}
	b.do("search for one client", chromedp.Navigate(base+"/clients?q="+url.QueryEscape(only)),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=delete-client]")))
	b.settled("#clients-list")
	b.acceptConfirms()
	b.do("delete the only row by keyboard", chromedp.Focus(chromedp.CSS("[data-testid=delete-client]")), chromedp.KeyEvent("\r"))
	b.waitJS("deleted and the list reloaded", `!document.querySelector("[data-testid=client-row]") &&
		document.querySelector(".htmx-request, .htmx-settling, .htmx-swapping, .htmx-added") === null`)
	time.Sleep(300 * time.Millisecond) // the reload after the delete
	b.settled("#clients-list")
	if got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement.id || document.activeElement.tagName`)); err != nil || got != "clients-list" {
		t.Errorf("after deleting the list's only row the focus is on %q (%v), want the list", got, err)
	}
}

// The recipient picker from the keyboard and a screen reader (reached by
// Space on New mailing, a link shown as a button): "More…"
// leaves the focus on the first client it brought (it fell to the page,
// and Tab went on to Save past them); a search's count is said once, in a
// status of its own; and a form refused for its recipients alone puts the
// focus on the picker, whose search is described by the error.
func TestBrowserPickerByKeyboard(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, 60)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	// A link shown as a button is pressed by Space too, as a button is.
	b.do("mailings", chromedp.Navigate(base+"/mailings"), chromedp.WaitVisible(chromedp.CSS("[data-testid=new-mailing]")))
	b.do("Space on New mailing", chromedp.Focus(chromedp.CSS("[data-testid=new-mailing]")), chromedp.KeyEvent(" "))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/mailings/new" && !!document.querySelector("[data-testid=mailing-form]")`)
	b.waitJS("first page", `document.querySelectorAll("[data-testid=picker-option]").length === 50`)
	b.settled("[data-picker-more]")
	b.do("More… by keyboard", chromedp.Focus(chromedp.CSS("[data-picker-more]")), chromedp.KeyEvent(kb.Enter))
	b.waitJS("the next clients, the first of them focused", `document.querySelectorAll("[data-testid=picker-option]").length === 60 &&
		document.activeElement === document.querySelectorAll("[data-testid=picker-option]")[50]`)
	b.do("search", chromedp.SendKeys(chromedp.CSS("[data-testid=picker-search]"), "r001"))
	b.waitJS("the count said", `document.querySelector("#announce").textContent === "1 matching" &&
		!document.querySelector("#`+mailings.ResultsID+`").hasAttribute("aria-live")`)

	b.do("edit", chromedp.Navigate(base+"/mailings/"+id(m.ID)+"/edit"), chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-form]")))
	b.settled("[data-picker-clear]")
	b.do("clear and save", chromedp.Click(chromedp.CSS("[data-picker-clear]")), chromedp.Click(chromedp.CSS("[data-testid=save-mailing]")))
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("[data-field-error=recipients]") &&
		document.activeElement === document.querySelector("[data-testid=picker-search]") &&
		document.activeElement.getAttribute("aria-invalid") === "true" &&
		document.activeElement.getAttribute("aria-describedby") === "field-recipients-error"`)
}

// "Show them" puts the recipients chosen so far in place of the picker's
// results, ticked, the next page by "More…"; one unticked there is no
// longer chosen, and showing them again leaves it out.
func TestBrowserPickerShowsTheChosen(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, 60)
	if err := e.store.CreateClient(context.Background(), &model.Client{OwnerID: ann.ID, Email: "not-chosen@example.com"}); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("edit", chromedp.Navigate(base+"/mailings/"+id(m.ID)+"/edit"), chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-form]")))
	b.settled("[data-testid=picker-chosen]")
	b.do("show them", chromedp.Click(chromedp.CSS("[data-testid=picker-chosen]")))
	b.waitJS("the chosen shown", `document.querySelector("#announce").textContent.includes("Showing the 60 recipients chosen") &&
		document.querySelectorAll("[data-testid=picker-option]").length === 50 &&
		document.querySelectorAll("[data-testid=picker-option]:checked").length === 50 &&
		!document.body.textContent.includes("not-chosen@")`)
	// Three unticked, then the next page: none of the chosen is skipped.
	b.settled("[data-testid=picker-option]")
	for i := range 3 {
		b.do("untick", chromedp.Click(chromedp.CSS(fmt.Sprintf("label:nth-of-type(%d) [data-testid=picker-option]", i+1))))
	}
	b.waitJS("57 chosen", `document.querySelector("[data-testid=recipient-count]").textContent === "57"`)
	b.settled("[data-picker-more]")
	b.do("more", chromedp.Click(chromedp.CSS("[data-picker-more]")))
	b.waitJS("the other 10", `document.querySelectorAll("[data-testid=picker-option]").length === 60 &&
		document.querySelectorAll("[data-testid=picker-option]:checked").length === 57`)
	b.do("show them again", chromedp.Click(chromedp.CSS("[data-testid=picker-chosen]")))
	b.waitJS("57 shown", `document.querySelector("#announce").textContent.includes("Showing the 57 recipients chosen") &&
		document.querySelectorAll("[data-testid=picker-option]:checked").length === 50`)
	b.settled("[data-testid=save-mailing]")
	b.do("save", chromedp.Click(chromedp.CSS("[data-testid=save-mailing]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/mailings/`+id(m.ID)+`"`)
	if got, _ := e.store.MailingByID(context.Background(), store.Own(ann.ID), m.ID); got == nil || got.Recipients != 57 {
		t.Fatalf("saved: %+v", got)
	}

	// Cleared while they are shown, the picker goes back to the clients,
	// and Show them waits for a choice.
	b.do("edit again", chromedp.Navigate(base+"/mailings/"+id(m.ID)+"/edit"), chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-form]")))
	b.settled("[data-testid=picker-chosen]")
	b.do("show them", chromedp.Click(chromedp.CSS("[data-testid=picker-chosen]")))
	b.waitJS("shown", `!!document.querySelector("[data-picker-chosen-view]")`)
	b.settled("[data-picker-clear]")
	b.do("clear", chromedp.Click(chromedp.CSS("[data-picker-clear]")))
	b.waitJS("back to the clients", `!document.querySelector("[data-picker-chosen-view]") &&
		document.body.textContent.includes("not-chosen@") &&
		document.querySelector("[data-testid=picker-chosen]").disabled`)
}

// A form refused as a whole (a wrong password) puts the focus on its
// message, which a screen reader then reads (an alert on a page's load is
// not read, and the password field focused said nothing of it); a form
// with a field in error focuses that field, described by its message.
func TestBrowserFormErrorTakesTheFocus(t *testing.T) {
	e, base := servedEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.do("sign in wrongly", chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("[data-testid=login-form]")),
		chromedp.SendKeys(chromedp.CSS("#field-email"), "ann@example.com"),
		chromedp.SendKeys(chromedp.CSS("#field-password"), "not the password"),
		chromedp.Submit(chromedp.CSS("[data-testid=login-form]")))
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("[data-testid=form-error]") && document.activeElement === document.querySelector("[data-testid=form-error]")`)
}

// While a run sends, the mailing's figures renew every few seconds: the
// chart's table opened meanwhile stays open, and the focus on its toggle
// stays there (it closed, and the focus went to the section).
func TestBrowserRenewedFiguresKeepTheTableOpen(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, 3)
	e.insertRun(t, &model.Run{MailingID: m.ID, Trigger: model.TriggerManual, StartedAt: time.Now().Add(-time.Minute), Total: 3})
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("mailing", chromedp.Navigate(base+"/mailings/"+id(m.ID)), chromedp.WaitVisible(chromedp.CSS("[data-testid=chart-table-toggle]")))
	b.settled("[data-testid=chart-table-toggle]")
	b.do("open the table", chromedp.Focus(chromedp.CSS("[data-testid=chart-table-toggle]")), chromedp.KeyEvent(kb.Enter))
	b.waitJS("opened", `document.querySelector("#mailing-figures details").open && (window.renewed = document.querySelector("#mailing-figures"), true)`)
	b.waitJS("renewed, still open and focused", `document.querySelector("#mailing-figures") !== window.renewed &&
		document.querySelector("#mailing-figures details").open &&
		document.activeElement === document.querySelector("[data-testid=chart-table-toggle]")`)
}

// What changes in place is said once in the page's one status, which stays
// on the page (the lists were live regions swapped in whole, which a
// screen reader does not read): a search's count, an empty result, and
// the message a page comes with after a form.
func TestBrowserChangesAreAnnounced(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, 3)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("input[type=search]")))
	b.settled("input[type=search]")
	b.do("search", chromedp.SendKeys(chromedp.CSS("input[type=search]"), "r001"))
	b.waitJS("the count said", `document.querySelector("#announce").textContent === "1 client" && !document.querySelector("#clients-list, [id$=-list]")?.hasAttribute("aria-live")`)
	b.do("search for none", chromedp.SendKeys(chromedp.CSS("input[type=search]"), "nobody"))
	b.waitJS("the empty result said", `/match/i.test(document.querySelector("#announce").textContent)`)

	b.do("edit the mailing", chromedp.Navigate(base+"/mailings/"+id(m.ID)+"/edit"), chromedp.WaitVisible(chromedp.CSS("[data-testid=save-mailing]")))
	b.settled("[data-testid=save-mailing]")
	b.do("save", chromedp.Click(chromedp.CSS("[data-testid=save-mailing]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/mailings/`+id(m.ID)+`" && document.querySelector("#announce").textContent.startsWith("Mailing saved.")`)
}

// Choosing a filter of the attempt log by keyboard leaves the focus on the
// filter chosen, now marked current (it went to "All", the first link).
func TestBrowserFilterKeepsTheFocus(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, 1)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("attempt log", chromedp.Navigate(base+"/mailings/"+id(m.ID)+"/attempts"), chromedp.WaitVisible(chromedp.CSS("[data-testid=filter-status-failure]")))
	b.settled("[data-testid=filter-status-failure]")
	b.do("choose Failure", chromedp.Focus(chromedp.CSS("[data-testid=filter-status-failure]")), chromedp.KeyEvent(kb.Enter))
	b.waitJS("Failure chosen and focused", `location.search === "?status=failure" &&
		document.activeElement === document.querySelector("[data-testid=filter-status-failure]") &&
		document.activeElement.getAttribute("aria-current") === "page"`)
}

// The page a run's end reloads keeps the focus on the control it was on:
// the reload, which the reader did not ask for, put it back at the top.
func TestBrowserRunEndKeepsTheFocus(t *testing.T) {
	e, base := servedEnv(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	m := mailingWithRecipients(t, e, ann, 3)
	if _, err := e.db.ExecContext(ctx, "UPDATE mailings SET starts_at = now() - interval '1 hour', next_run_at = NULL, status = 'running' WHERE id = ?", m.ID); err != nil {
		t.Fatal(err)
	}
	run := e.insertRun(t, &model.Run{MailingID: m.ID, Trigger: model.TriggerManual, StartedAt: time.Now(), Total: 3})
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	b.do("open the mailing", chromedp.Navigate(fmt.Sprintf("%s/mailings/%d", base, m.ID)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=run-progress][hx-trigger="every 1s"]`)))
	b.waitJS("scripts ready", `document.documentElement.dataset.htmx === "ready"`)
	b.do("focus a control far down the page", chromedp.Evaluate[chromedp.Void](`window.__before = true; document.querySelector("[data-testid=copy-mailing]").focus()`))
	if _, err := e.db.ExecContext(ctx, "UPDATE runs SET finished_at = now(), skipped = 3 WHERE id = ?", run.ID); err != nil {
		t.Fatal(err)
	}
	waitAcrossNavigation(t, b.ctx, `!window.__before && document.readyState === "complete" && document.querySelector("[data-testid=run-progress]").getAttribute("hx-trigger") !== "every 1s"`)
	focused, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement.dataset.testid || document.activeElement.tagName`))
	if err != nil {
		t.Fatal(err)
	}
	if focused != "copy-mailing" {
		t.Errorf("after the reload at the run's end the focus is on %q, want copy-mailing", focused)
	}
}

// A form sent after its session ended, or with a token out of date (a
// sign-out and sign-in in another tab), loses nothing typed: the sign-in
// page, or the refusal page's link back, leads to the same form with what
// was typed put back, said so, and saved from there.
func TestBrowserFormKeptAcrossASessionEnd(t *testing.T) {
	e, base := servedEnv(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	o := makeObjects(t, e, ann)
	second := &model.Client{OwnerID: ann.ID, Email: "second@example.com", FullName: "Second"}
	if err := e.store.CreateClient(ctx, second); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")

	// The session ends while a new message is typed.
	b.do("new message", chromedp.Navigate(base+"/messages/new"), chromedp.WaitVisible(chromedp.CSS("[data-testid=message-form]")))
	b.do("type it",
		chromedp.SendKeys(chromedp.CSS("#field-subject"), "Spring news"),
		chromedp.SendKeys(chromedp.CSS("#field-body"), "Dear {{name}}, spring is here."),
	)
	endSessions(t, e)
	b.do("save", chromedp.Click(chromedp.CSS("[data-testid=message-form] button[type=submit]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/login" &&
		/once you are signed in/.test(document.querySelector("[data-testid=draft-note]")?.textContent)`)
	b.signInHere("ann@example.com")
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/messages/new" &&
		/What you typed is back/.test(document.querySelector("[data-testid=draft-note]")?.textContent) &&
		document.querySelector("#field-subject").value === "Spring news" &&
		document.querySelector("#field-body").value.trim() === "Dear {{name}}, spring is here."`)
	b.do("save again", chromedp.Click(chromedp.CSS("[data-testid=message-form] button[type=submit]")))
	waitAcrossNavigation(t, b.ctx, `/^\/messages\/\d+$/.test(location.pathname) && sessionStorage.getItem("draft") === null`)
	var msg model.Message
	if err := e.db.NewSelect().Model(&msg).Where("owner_id = ? AND id <> ?", ann.ID, o.message.ID).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "Spring news" || strings.TrimSpace(msg.Body) != "Dear {{name}}, spring is here." {
		t.Errorf("the message saved after signing in again: %q / %q", msg.Subject, msg.Body)
	}

	// An edit sent with a token out of date: the refusal leads back to it,
	// with the recipient chosen and the repeat changed.
	edit := "/mailings/" + id(o.mailing.ID) + "/edit"
	b.do("edit the mailing", chromedp.Navigate(base+edit), chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-form]")))
	b.settled("[data-testid=picker-option][value='" + id(second.ID) + "']")
	b.do("change it",
		chromedp.Click(chromedp.CSS("[data-testid=picker-option][value='"+id(second.ID)+"']")),
		chromedp.SetValue(chromedp.CSS("#field-repeat"), "weekly"),
		chromedp.SetValue(chromedp.CSS("[data-testid=mailing-form] input[name=_csrf]"), "out-of-date"),
		chromedp.Click(chromedp.CSS("[data-testid=save-mailing]")),
	)
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("[data-form-expired] [data-testid=draft-back]")`)
	b.do("back to the form", chromedp.Click(chromedp.CSS("[data-testid=draft-back]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "`+edit+`" &&
		!!document.querySelector("[data-testid=draft-note]") &&
		document.querySelector("#field-repeat").value === "weekly" &&
		document.querySelector("[data-picker-ids]").value.split(",").sort().join() === ["`+id(o.client.ID)+`", "`+id(second.ID)+`"].sort().join() &&
		document.querySelector("[data-testid=picker-option][value='`+id(second.ID)+`']").checked`)
	b.do("save it", chromedp.Click(chromedp.CSS("[data-testid=save-mailing]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/mailings/`+id(o.mailing.ID)+`"`)
	m, err := e.store.MailingByID(ctx, store.Own(ann.ID), o.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.store.RecipientIDs(ctx, o.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Repeat != model.RepeatWeekly || len(got) != 2 {
		t.Errorf("the mailing saved from its kept form repeats %q to %v", m.Repeat, got)
	}

	// A page that is neither leaves no draft for the form's next opening.
	b.do("edit again", chromedp.Navigate(base+edit), chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-form]")))
	if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=draft-note]").length`)); n != 0 {
		t.Errorf("a form opened after its save says it was put back")
	}

	// Someone else signing in at the same screen gets an empty form.
	newUser(t, e, "bob@example.com", model.RoleUser)
	b.do("another message", chromedp.Navigate(base+"/messages/new"), chromedp.WaitVisible(chromedp.CSS("[data-testid=message-form]")),
		chromedp.SendKeys(chromedp.CSS("#field-subject"), "Ann's secret"))
	endSessions(t, e)
	b.do("save", chromedp.Click(chromedp.CSS("[data-testid=message-form] button[type=submit]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/login" && !!document.querySelector("[data-testid=draft-note]")`)
	b.signInHere("bob@example.com")
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/messages/new" && !!document.querySelector("[data-testid=message-form]")`)
	if got, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("#field-subject").value + (document.querySelector("[data-testid=draft-note]") ? " (noted)" : "") + (sessionStorage.getItem("draft") || "")`)); got != "" {
		t.Errorf("another person signing in at the same screen finds %q", got)
	}
}

// Text reads against its background in both colour schemes: at least
// 4.5:1 (3:1 when large), as WCAG 2.1 AA asks, on the pages a user sees
// most, with a run's figures, badges and a chart on them.
func TestBrowserTextContrast(t *testing.T) {
	e, base := servedEnv(t)
	ctx := context.Background()
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	o := makeObjects(t, e, ann)
	run := e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now(), Total: 2, Succeeded: 1, Failed: 1})
	if _, err := e.db.ExecContext(ctx, `INSERT INTO attempts (run_id, mailing_id, client_id, email, status, code, response, tries)
		VALUES (?, ?, ?, ?, 'success', 250, '250 OK', 1), (?, ?, NULL, 'gone@example.com', 'failure', 550, '550 5.1.1 no such user', 1)`,
		run.ID, o.mailing.ID, o.client.ID, o.client.Email, run.ID, o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	check := func(pages ...string) {
		for _, scheme := range []string{"light", "dark"} {
			if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
				t.Fatal(err)
			}
			for _, p := range pages {
				b.do("open "+p, chromedp.Navigate(base+p), chromedp.WaitReady(chromedp.CSS("footer")))
				if got, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.pathname + location.search`)); got != p {
					t.Fatalf("%s shows %s", p, got)
				}
				low, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](lowContrastJS))
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range low {
					t.Errorf("%s, %s scheme: %s", p, scheme, l)
				}
			}
		}
	}
	check("/login", "/register", "/login?ended=expired", "/no-such-page")
	b.signIn("ann@example.com")
	check("/", "/clients", "/clients/"+id(o.client.ID), "/messages", "/messages/"+id(o.message.ID),
		"/mailings", "/mailings/"+id(o.mailing.ID), "/mailings/"+id(o.mailing.ID)+"/attempts", "/stats", "/account")
}

// lowContrastJS lists the page's text that reads below WCAG 2.1 AA
// against the background it is drawn on (its own and its ancestors'
// colours, blended; text over an image is left out).
const lowContrastJS = `(() => {
	const rgba = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
		const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
	const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3])).concat(1);
	const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
		return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
	const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
	const backdrop = el => {
		const layers = [];
		for (let e = el; e; e = e.parentElement) {
			const s = getComputedStyle(e);
			if (s.backgroundImage !== "none") return null;
			const c = rgba(s.backgroundColor);
			if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
		}
		return layers.reduceRight((bg, c) => over(c, bg), [255, 255, 255, 1]);
	};
	const out = [];
	for (const el of document.body.querySelectorAll("*")) {
		// In a chart, its labels: drawn in their fill, not their colour.
		const drawn = el.closest("svg");
		if ((drawn && el.tagName !== "text") || el.closest("[hidden], :disabled, [aria-disabled=true]")) continue;
		const text = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join("").trim();
		const r = el.getBoundingClientRect();
		if (!text || r.width <= 1 || r.height <= 1) continue;
		const s = getComputedStyle(el);
		if (s.visibility !== "visible" || parseFloat(s.opacity) === 0) continue;
		const bg = backdrop(el), fg = rgba(drawn ? s.fill : s.color);
		if (!bg || !fg) continue;
		const size = parseFloat(s.fontSize), large = size >= 24 || (size >= 18.66 && parseInt(s.fontWeight) >= 700);
		const got = ratio(over(fg, bg), bg);
		if (got < (large ? 3 : 4.5)) out.push(el.tagName.toLowerCase() + (el.className ? "." + String(el.className).trim().replace(/\s+/g, ".") : "") +
			" " + JSON.stringify(text.slice(0, 40)) + " " + got.toFixed(2) + ":1 (" + s.color + " on rgb(" + bg.slice(0, 3).map(Math.round).join(", ") + "))");
	}
	return out;
})()`

// endSessions ends every session, as a Redis wiped or a sign-out
// elsewhere does.
func endSessions(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	keys, err := e.redis.Keys(ctx, "session:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("session keys %v, %v", keys, err)
	}
	e.redis.Del(ctx, keys...)
}

// A form shown again with its errors is at the address it was sent to (a
// record's page): sent again after its session ended, it comes back on its
// own page once signed in, with what was typed since. Sent with a token
// out of date after someone else signed in in another tab, it is offered
// back to no one.
func TestBrowserFormKeptAfterItsErrors(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	newUser(t, e, "bob@example.com", model.RoleUser)
	o := makeObjects(t, e, ann)
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	edit := "/clients/" + id(o.client.ID) + "/edit"
	b.do("edit", chromedp.Navigate(base+edit), chromedp.WaitVisible(chromedp.CSS("[data-testid=client-edit-form]")))
	b.do("a bad address", chromedp.SetValue(chromedp.CSS("#field-email"), "not-an-address"),
		chromedp.Click(chromedp.CSS("[data-testid=client-edit-form] button[type=submit]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/clients/`+id(o.client.ID)+`" && !!document.querySelector("[data-testid=client-edit-form] [aria-invalid=true]")`)
	b.do("mended", chromedp.SetValue(chromedp.CSS("#field-email"), "mended@example.com"),
		chromedp.SetValue(chromedp.CSS("#field-full_name"), "Typed After The Error"))
	endSessions(t, e)
	b.do("save", chromedp.Click(chromedp.CSS("[data-testid=client-edit-form] button[type=submit]")))
	waitAcrossNavigation(t, b.ctx, `location.pathname === "/login" && !!document.querySelector("[data-testid=draft-note]")`)
	b.signInHere("ann@example.com")
	waitAcrossNavigation(t, b.ctx, `location.pathname === "`+edit+`" && !!document.querySelector("[data-testid=draft-note]") &&
		document.querySelector("#field-email").value === "mended@example.com" &&
		document.querySelector("#field-full_name").value === "Typed After The Error"`)

	// Ann's profile open here; in another tab Ann signs out and Bob in.
	b.do("profile", chromedp.Navigate(base+"/account"), chromedp.WaitVisible(chromedp.CSS("[data-testid=profile-form]")),
		chromedp.SetValue(chromedp.CSS("[data-testid=profile-form] #field-full_name"), "Ann Private-Name"))
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(async () => {
		const tok = document.querySelector("meta[name=csrf-token]").content;
		await fetch("/logout", {method: "POST", body: new URLSearchParams({_csrf: tok}), credentials: "same-origin"});
		const page = await (await fetch("/login", {credentials: "same-origin"})).text();
		const tok2 = new DOMParser().parseFromString(page, "text/html").querySelector("meta[name=csrf-token]").content;
		const r = await fetch("/login", {method: "POST", credentials: "same-origin",
			body: new URLSearchParams({_csrf: tok2, email: "bob@example.com", password: "`+goodPassword+`", next: "/"})});
		return r.url;
	})()`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	b.do("save here", chromedp.Click(chromedp.CSS("[data-testid=profile-form] button[type=submit]")))
	waitAcrossNavigation(t, b.ctx, `!!document.querySelector("[data-form-expired]")`)
	if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=draft-back]").length + (sessionStorage.getItem("draft") ? 1 : 0)`)); n != 0 {
		t.Errorf("Ann's profile form, refused while Bob is signed in, is offered back or kept")
	}
	b.do("Bob's account", chromedp.Navigate(base+"/account"), chromedp.WaitVisible(chromedp.CSS("[data-testid=profile-form]")))
	if got, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("[data-testid=profile-form] #field-full_name").value`)); got == "Ann Private-Name" {
		t.Errorf("Bob's profile form holds Ann's name")
	}
}
