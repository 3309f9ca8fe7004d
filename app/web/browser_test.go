package web_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"rassylka/app/testkit"
)

// servedEnv is an env whose app listens on a free local port, with
// BASE_URL pointing at it so that mailed links work in the browser.
func servedEnv(t testing.TB) (*env, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	base := fmt.Sprintf("http://%s", ln.Addr())
	cfg := testConfig(t)
	cfg.BaseURL = base
	e := newEnvWith(t, cfg, testkit.Redis(t), nil)
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
