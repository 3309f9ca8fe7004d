package web_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"rassylka/app/model"
	"rassylka/app/testkit"
	"rassylka/app/web"
)

// servedEnv is an env whose app listens on a free local port, with
// BASE_URL pointing at it so that mailed links work in the browser.
func servedEnv(t testing.TB, opts ...func(*web.Deps)) (*env, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	base := fmt.Sprintf("http://%s", ln.Addr())
	cfg := testConfig(t)
	cfg.BaseURL = base
	e := newEnvWith(t, cfg, testkit.Redis(t), nil, opts...)
	go func() { _ = e.app.Listener(ln) }()
	t.Cleanup(func() { _ = e.app.ShutdownWithTimeout(5 * time.Second) })
	return e, base
}

func TestBrowserLandingLoadsHTMX(t *testing.T) {
	_, base := servedEnv(t)
	ctx := testkit.Browser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=landing]")),
	); err != nil {
		t.Fatalf("load landing page: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || title != "Rassylka" {
		t.Fatalf("title = %q, %v", title, err)
	}
	pollCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	version, err := chromedp.Run(pollCtx, chromedp.Poll[string](
		`window.htmx && document.documentElement.dataset.htmx === "ready" ? htmx.version : null`))
	if err != nil {
		t.Fatalf("htmx did not load and configure itself: %v", err)
	}
	if version == "" || version[0] != '2' {
		t.Fatalf("htmx version = %q, want 2.x", version)
	}
	// Pico CSS applied: the body has its font, not the browser default serif.
	font, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).fontFamily`))
	if err != nil || font == "" || font == "serif" || font == `"Times New Roman"` {
		t.Fatalf("stylesheet not applied: font-family %q, %v", font, err)
	}
}

// Paging a list with htmx (hx-push-url) must not leave the signed-in
// user's pages in the browser's storage: htmx keeps snapshots of pushed
// pages in sessionStorage by default, where they outlive the sign-out and
// are put back on "Back" without asking the server, for whoever uses the
// browser next.
func TestBrowserSignOutLeavesNoPrivatePages(t *testing.T) {
	e, base := servedEnv(t)
	ann := newUser(t, e, "ann@example.com", model.RoleUser)
	twoPagesOfClients(t, e, ann, "secret-%02d@owner.example")
	ctx := testkit.Browser(t)
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	step("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=login-form]")),
		chromedp.SendKeys(chromedp.CSS("#field-email"), "ann@example.com"),
		chromedp.SendKeys(chromedp.CSS("#field-password"), goodPassword),
		chromedp.Click(chromedp.CSS("[data-testid=login-form] button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=dashboard]")),
	)
	poll := func(what, js string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := chromedp.Run(pctx, chromedp.Poll[bool](js)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	step("open the clients",
		chromedp.Navigate(base+"/clients"),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=next-page]")),
	)
	poll("htmx ready", `document.documentElement.dataset.htmx === "ready"`)
	step("page the clients with htmx", chromedp.Click(chromedp.CSS("[data-testid=next-page]")))
	poll("second page pushed and settled", `location.search.includes("page=2") && !!document.querySelector("[data-testid=prev-page]") &&
		document.querySelector(".htmx-request, .htmx-settling, .htmx-swapping, .htmx-added") === null`)
	step("sign out",
		chromedp.Click(chromedp.CSS("[data-testid=sign-out]")),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=landing]")),
	)
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`[localStorage, sessionStorage].flatMap(s => Object.keys(s).map(k => k + "=" + s.getItem(k))).join("\n")`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, "secret-") {
		i := strings.Index(stored, "secret-")
		t.Errorf("after sign-out the tab's storage still holds the user's clients: …%s…", stored[max(0, i-80):min(len(stored), i+40)])
	}

	// Nor does "Back" show them from the browser's caches (its HTTP cache,
	// its back/forward cache of whole pages): each page back asks the
	// server again, which now asks to sign in.
	for i := range 2 {
		// (history.back, as NavigateBack waits for a load that a page from
		// the back/forward cache does not fire)
		step("back", chromedp.Evaluate[chromedp.Void](`history.back()`))
		// What the tab shows is read until the sign-in page has come: the
		// page brought back, hidden while it is asked for again, and the
		// server's answer. A read while the document changes is retried.
		deadline := time.Now().Add(10 * time.Second)
		for {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			text, err := chromedp.Run(rctx, chromedp.Evaluate[string](
				`(document.documentElement.style.visibility === "hidden" ? "" : document.body.innerText) +
				(location.pathname === "/login" && document.readyState === "complete" ? "\n[signed out]" : "")`))
			cancel()
			if err == nil && strings.Contains(text, "secret-") {
				t.Fatalf("back %d after sign-out shows the user's clients:\n%.300s", i+1, text)
			}
			if err == nil && strings.HasSuffix(text, "[signed out]") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("back %d after sign-out: the sign-in page did not come (%q, %v)", i+1, text, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
