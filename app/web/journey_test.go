package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"rassylka/app/testkit"
)

// TestJourneyNewUser is what a new user does: register, open the link from
// the mail, sign in, sign out, forget the password, reset it, sign in.
func TestJourneyNewUser(t *testing.T) {
	e, base := servedEnv(t)
	sink := e.withWorker(t)
	ctx := testkit.Browser(t)

	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	signIn := func(password string) {
		step("sign in",
			chromedp.Navigate(base+"/login"),
			chromedp.WaitVisible(chromedp.CSS("[data-testid=login-form]")),
			chromedp.SetValue(chromedp.CSS("#field-email"), "journey@example.com"),
			chromedp.SendKeys(chromedp.CSS("#field-password"), password),
			chromedp.Click(chromedp.CSS("[data-testid=login-form] button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("[data-testid=dashboard]")),
		)
		if got := text("[data-testid=viewer]"); !strings.Contains(got, "Journey Person") {
			t.Fatalf("signed in as %q", got)
		}
	}

	// The browser lives in Tokyo; the new account must take that zone.
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatalf("set the browser's time zone: %v", err)
	}
	step("register",
		chromedp.Navigate(base+"/"),
		chromedp.Click(chromedp.CSS(`a[href="/register"]`)),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=register-form]")),
		chromedp.SendKeys(chromedp.CSS("#field-email"), "journey@example.com"),
		chromedp.SendKeys(chromedp.CSS("#field-full_name"), "Journey Person"),
		chromedp.SendKeys(chromedp.CSS("#field-password"), "first secret pass"),
		chromedp.Click(chromedp.CSS("[data-testid=register-form] button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=notice]")),
	)
	_, confirmPath := e.waitMail(t, sink, 1)
	u, err := e.store.UserByEmail(context.Background(), "journey@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.TimeZone != "Asia/Tokyo" {
		t.Fatalf("the new account's time zone is %q, want the browser's Asia/Tokyo", u.TimeZone)
	}

	step("confirm from the mail",
		chromedp.Navigate(base+confirmPath),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=login-form]")),
	)
	if got := text("#flash"); !strings.Contains(got, "confirmed") {
		t.Fatalf("flash after confirming = %q", got)
	}
	// The address is filled in, the password to type.
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#field-email").value + " " + document.activeElement.id`)); err != nil || got != "journey@example.com field-password" {
		t.Errorf("the sign-in form after confirming: %q, %v", got, err)
	}
	signIn("first secret pass")

	step("sign out",
		chromedp.Click(chromedp.CSS("[data-testid=sign-out]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=landing]")),
	)
	if got := text("#flash"); !strings.Contains(got, "signed out") {
		t.Fatalf("flash after signing out = %q", got)
	}

	step("forgot password",
		chromedp.Navigate(base+"/login"),
		chromedp.Click(chromedp.CSS(`a[href="/password/forgot"]`)),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=forgot-form]")),
		chromedp.SendKeys(chromedp.CSS("#field-email"), "journey@example.com"),
		chromedp.Click(chromedp.CSS("[data-testid=forgot-form] button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=notice]")),
	)
	_, resetPath := e.waitMail(t, sink, 2)
	if !strings.HasPrefix(resetPath, "/password/reset/") {
		t.Fatalf("reset link %q", resetPath)
	}
	step("reset",
		chromedp.Navigate(base+resetPath),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=reset-form]")),
		chromedp.SendKeys(chromedp.CSS("#field-password"), "second secret pass"),
		chromedp.Click(chromedp.CSS("[data-testid=reset-form] button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=dashboard]")),
		chromedp.Click(chromedp.CSS("[data-testid=sign-out]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=landing]")),
	)
	signIn("second secret pass")
}
