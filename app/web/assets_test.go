package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"rassylka/app/model"
	"rassylka/assets"
)

func TestAssetsFingerprintedAndImmutable(t *testing.T) {
	e := newEnv(t)
	_, body := e.get(t, "/")
	doc := parseHTML(t, body)

	var urls []string
	doc.Find(`link[rel=stylesheet], script[src]`).Each(func(_ int, s *goquery.Selection) {
		if v, ok := s.Attr("href"); ok {
			urls = append(urls, v)
		}
		if v, ok := s.Attr("src"); ok {
			urls = append(urls, v)
		}
	})
	if len(urls) != 4 {
		t.Fatalf("page references %d assets, want 4 (pico, app.css, htmx, app.js): %v", len(urls), urls)
	}
	for _, u := range urls {
		resp, content := e.get(t, u)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", u, resp.StatusCode)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s Cache-Control = %q", u, cc)
		}
		sum := sha256.Sum256([]byte(content))
		if !strings.Contains(u, "."+hex.EncodeToString(sum[:])[:12]+".") {
			t.Errorf("%s does not carry the fingerprint of its content", u)
		}
		ct := resp.Header.Get("Content-Type")
		if (strings.HasSuffix(u, ".css") && !strings.HasPrefix(ct, "text/css")) ||
			(strings.HasSuffix(u, ".js") && !strings.Contains(ct, "javascript")) {
			t.Errorf("%s Content-Type = %q", u, ct)
		}

		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		if resp, _ := e.do(t, req); resp.StatusCode != http.StatusNotModified {
			t.Errorf("revalidating %s = %d, want 304", u, resp.StatusCode)
		}
	}

	if got := assets.Path("vendor/htmx.min.js"); !strings.HasPrefix(got, "/assets/vendor/htmx.min.") {
		t.Errorf("assets.Path = %q", got)
	}
	// The unfingerprinted name and a stale fingerprint are not served.
	for _, u := range []string{"/assets/vendor/htmx.min.js", "/assets/vendor/htmx.min.000000000000.js"} {
		if resp, _ := e.get(t, u); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", u, resp.StatusCode)
		}
	}
}

// A response served "public, immutable" may be kept by a shared cache
// (CDN, reverse proxy) and handed to every visitor with its headers: it
// must not set or clear cookies. An anonymous first visit would otherwise
// hand one CSRF token to everyone behind the cache, and a request with an
// ended session (here: its user was blocked) would clear the session
// cookie of everyone who gets the cached answer.
func TestAssetsSetNoCookies(t *testing.T) {
	e := newEnv(t)
	u := assets.Path("css/app.css")

	resp, _ := e.get(t, u)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", u, resp.StatusCode)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("anonymous GET %s (%s) sets cookies: %q", u, resp.Header.Get("Cache-Control"), sc)
	}

	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	if _, err := e.db.ExecContext(context.Background(), "UPDATE users SET blocked_at = now() WHERE email = 'ann@example.com'"); err != nil {
		t.Fatal(err)
	}
	resp, _ = c.get(t, u)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", u, resp.StatusCode)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("GET %s with an ended session (%s) sets cookies: %q", u, resp.Header.Get("Cache-Control"), sc)
	}
}
