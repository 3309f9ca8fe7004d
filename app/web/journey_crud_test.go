package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"rassylka/app/model"
	"rassylka/app/testkit"
)

// browserUser is one person at one browser.
type browserUser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func (b *browserUser) do(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", name, err)
	}
}

func (b *browserUser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// waitJS waits until the expression is true.
func (b *browserUser) waitJS(name, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("%s: waiting for %s: %v", name, expr, err)
	}
}

// settled waits until sel is on the page and htmx has finished swapping
// and processing (an element clicked before htmx processed it would do a
// plain, full-page request).
func (b *browserUser) settled(sel string) {
	b.t.Helper()
	b.waitJS("settled "+sel, `document.querySelector("`+sel+`") !== null && document.querySelector(".htmx-request, .htmx-settling, .htmx-swapping, .htmx-added") === null`)
}

// acceptConfirms answers every confirm() of the page with OK and records
// its question, in window.__asked and, for a page the answer navigates
// away from, in the tab's sessionStorage (see asked).
func (b *browserUser) acceptConfirms() {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[chromedp.Void](
		`window.__asked = []; sessionStorage.removeItem("asked");
		window.confirm = function (q) {
			window.__asked.push(q);
			sessionStorage.setItem("asked", JSON.stringify(window.__asked));
			return true;
		}`)); err != nil {
		b.t.Fatal(err)
	}
}

// asked is what confirm() asked since acceptConfirms, in this tab.
func (b *browserUser) asked() []string {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`JSON.parse(sessionStorage.getItem("asked") || "[]")`))
	if err != nil {
		b.t.Fatal(err)
	}
	return got
}

func (b *browserUser) signIn(email string) {
	b.t.Helper()
	b.do("open the sign-in page", chromedp.Navigate(b.base+"/login"))
	b.signInHere(email)
	b.do("the dashboard", chromedp.WaitVisible(chromedp.CSS("[data-testid=dashboard]")))
}

// signInHere sends the sign-in form on the page shown (the sign-in page a
// request was sent to) as email; where it leads is the caller's to wait for.
func (b *browserUser) signInHere(email string) {
	b.t.Helper()
	b.do("sign in "+email,
		chromedp.SendKeys(chromedp.CSS("#field-email"), email),
		chromedp.SendKeys(chromedp.CSS("#field-password"), goodPassword),
		chromedp.Click(chromedp.CSS("[data-testid=login-form] button[type=submit]")),
	)
}

func TestJourneyClientsMessagesMailings(t *testing.T) {
	e, base := servedEnv(t)
	newUser(t, e, "ann@example.com", model.RoleUser)
	newUser(t, e, "boss@example.com", model.RoleManager)
	ann := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	ann.signIn("ann@example.com")

	addClient := func(email, name string) {
		ann.settled("[data-testid=client-new-form]")
		ann.do("add "+email,
			chromedp.SetValue(chromedp.CSS("[data-testid=client-new-form] #field-email"), email),
			chromedp.SetValue(chromedp.CSS("[data-testid=client-new-form] #field-full_name"), name),
			chromedp.Click(chromedp.CSS("[data-testid=client-new-form] button[type=submit]")),
		)
		ann.waitJS("saved "+email, `(document.querySelector("[data-testid=client-new-form] .flash")||{}).textContent?.includes("`+email+`")`)
		ann.waitJS("row for "+email, `[...document.querySelectorAll("[data-testid=client-row]")].some(r => r.textContent.includes("`+email+`"))`)
	}
	ann.do("open the add form",
		chromedp.Navigate(base+"/clients"),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=empty]")),
		chromedp.Click(chromedp.CSS("[data-testid=new-client]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=client-new-form]")),
	)
	// The first client goes into the empty list without a table: the row
	// shows once the list is reloaded.
	ann.settled("[data-testid=client-new-form]")
	ann.do("add first",
		chromedp.SetValue(chromedp.CSS("[data-testid=client-new-form] #field-email"), "first@example.com"),
		chromedp.SetValue(chromedp.CSS("[data-testid=client-new-form] #field-full_name"), "First"),
		chromedp.Click(chromedp.CSS("[data-testid=client-new-form] button[type=submit]")),
	)
	ann.waitJS("first saved", `document.querySelector("[data-testid=client-new-form] .flash") !== null`)
	ann.do("reload", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=clients-table]")),
		chromedp.Click(chromedp.CSS("[data-testid=new-client]")), chromedp.WaitVisible(chromedp.CSS("[data-testid=client-new-form]")))
	addClient("second@example.com", "Second")
	addClient("third@example.com", "Third")
	ann.do("close the add form", chromedp.Click(chromedp.CSS("[data-testid=client-new-form] [data-clear]")))
	ann.waitJS("add form closed", `document.querySelector("[data-testid=client-new-form]") === null`)

	// Edit inline.
	ann.settled("[data-testid=clients-table]")
	ann.do("edit first inline",
		chromedp.Click(chromedp.Search(`//tr[contains(., "first@example.com")]//a[@data-testid="edit-client"]`)),
	)
	ann.settled("[data-testid=client-edit-row] input[name=full_name]")
	ann.do("save first inline",
		chromedp.SetValue(chromedp.CSS("[data-testid=client-edit-row] input[name=full_name]"), "First Renamed"),
		chromedp.Click(chromedp.CSS("[data-testid=save-client]")),
	)
	ann.waitJS("saved row", `[...document.querySelectorAll("[data-testid=client-row]")].some(r => r.textContent.includes("First Renamed"))`)

	// Delete with confirmation.
	ann.settled("[data-testid=clients-table]")
	ann.acceptConfirms()
	ann.do("delete third", chromedp.Click(chromedp.Search(`//tr[contains(., "third@example.com")]//button[@data-testid="delete-client"]`)))
	ann.waitJS("row gone", `![...document.querySelectorAll("[data-testid=client-row]")].some(r => r.textContent.includes("third@example.com"))`)
	asked, err := chromedp.Run(ann.ctx, chromedp.Evaluate[[]string](`window.__asked`))
	if err != nil || len(asked) != 1 || !strings.Contains(asked[0], "third@example.com") {
		t.Fatalf("delete asked %v, %v", asked, err)
	}

	// A message.
	ann.do("write a message",
		chromedp.Navigate(base+"/messages/new"),
		chromedp.SetValue(chromedp.CSS("#field-subject"), "Hello {{name}}"),
		chromedp.SetValue(chromedp.CSS("#field-body"), "Dear {{name}}, news for {{email}}."),
		chromedp.Click(chromedp.CSS("[data-testid=message-form] button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=preview]")),
	)
	if got := ann.text("[data-testid=preview-subject]"); got != "Hello First Renamed" {
		t.Fatalf("preview subject %q", got)
	}

	// A mailing to two recipients chosen in the picker.
	start := time.Now().Add(48 * time.Hour).UTC()
	ann.do("new mailing",
		chromedp.Navigate(base+"/mailings/new"),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=picker-option]")),
	)
	ann.settled("[data-testid=picker-option]")
	ann.do("fill the mailing",
		chromedp.SetValue(chromedp.CSS("#field-message_id"), "1"),
		chromedp.SetValue(chromedp.CSS("#field-starts_at"), start.Format("2006-01-02T15:04")),
		chromedp.SetValue(chromedp.CSS("#field-ends_at"), start.Add(24*time.Hour).Format("2006-01-02T15:04")),
		chromedp.Click(chromedp.Search(`//label[contains(., "first@example.com")]/input`)),
		chromedp.Click(chromedp.Search(`//label[contains(., "second@example.com")]/input`)),
	)
	if got := ann.text("[data-testid=recipient-count]"); got != "2" {
		t.Fatalf("picker count %q", got)
	}
	ann.do("save mailing",
		chromedp.Click(chromedp.CSS("[data-testid=save-mailing]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-show]")),
	)
	ann.waitJS("two recipients", `document.querySelectorAll("[data-testid=recipients-table] tbody tr").length === 2`)
	// Off the mailing's page, whose box polls for its runs: a poll after
	// the block below would send her to the sign-in page on its own, at a
	// moment of its own.
	ann.do("the messages", chromedp.Navigate(base+"/messages"), chromedp.WaitVisible(chromedp.CSS("[data-testid=messages-table]")))

	// The manager disables it inline and blocks Ann inline.
	boss := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	boss.signIn("boss@example.com")
	boss.do("all mailings", chromedp.Navigate(base+"/mailings?scope=all"), chromedp.WaitVisible(chromedp.CSS("[data-testid=mailing-row]")))
	boss.settled("[data-testid=disable-mailing]")
	boss.acceptConfirms()
	boss.do("disable", chromedp.Click(chromedp.CSS("[data-testid=disable-mailing]")))
	boss.waitJS("disabled badge", `document.querySelector("[data-testid=mailing-status] [data-testid=badge]").textContent === "disabled"`)
	if got := boss.text("[data-testid=disabled-by]"); !strings.Contains(got, "boss@example.com") {
		t.Fatalf("disabled by %q", got)
	}
	// Everyone's statistics, narrowed to a week: the chart is drawn.
	boss.do("statistics", chromedp.Navigate(base+"/stats?scope=all"), chromedp.WaitVisible(chromedp.CSS("[data-testid=stats-users]")))
	boss.do("a week", chromedp.Click(chromedp.CSS("[data-testid=range-7]")), chromedp.WaitVisible(chromedp.CSS(`[data-testid=range-7][aria-current=page]`)))
	boss.waitJS("seven days drawn", `document.querySelectorAll("[data-testid=chart-day]").length === 7 &&
		document.querySelector("[data-testid=chart] svg").getBoundingClientRect().height > 50`)
	if got := boss.text("[data-testid=stat-disabled]"); got != "1" {
		t.Fatalf("disabled mailings in the statistics: %q", got)
	}
	boss.do("users", chromedp.Navigate(base+"/users"), chromedp.WaitVisible(chromedp.CSS("[data-testid=block-user]")))
	boss.settled("[data-testid=block-user]")
	boss.acceptConfirms()
	boss.do("block ann", chromedp.Click(chromedp.CSS("[data-testid=block-user]")))
	boss.waitJS("blocked", `document.querySelector("[data-testid=unblock-user]") !== null`)

	// Ann's session is over, and the page she is sent to tells her why;
	// signing in again tells her in its own words (waited for by its text:
	// the form error of the page being left is on screen until then).
	ann.do("ann is out", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.CSS("[data-testid=login-form]")))
	if got := ann.text("[data-testid=form-error]"); !strings.Contains(got, "You were signed out because your account was blocked.") {
		t.Fatalf("signed-out user not told why: %q", got)
	}
	ann.do("ann tries again",
		chromedp.SendKeys(chromedp.CSS("#field-email"), "ann@example.com"),
		chromedp.SendKeys(chromedp.CSS("#field-password"), goodPassword),
		chromedp.Click(chromedp.CSS("[data-testid=login-form] button[type=submit]")),
		chromedp.WaitVisible(chromedp.Search(`//p[@data-testid="form-error"][starts-with(normalize-space(.), "Your account has been blocked. Ask a manager")]`)),
	)
}
