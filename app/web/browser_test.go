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

// serve starts the env's app on a free local port and returns its base URL.
func (e *env) serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() { _ = e.app.Listener(ln) }()
	t.Cleanup(func() { _ = e.app.ShutdownWithTimeout(5 * time.Second) })
	return fmt.Sprintf("http://%s", ln.Addr())
}

func TestBrowserLandingLoadsHTMX(t *testing.T) {
	e := newEnv(t)
	base := e.serve(t)
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
