package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"rassylka/app/auth"
	"rassylka/app/mail/mailsink"
)

// client is one browser: it keeps cookies between requests and sends the
// CSRF token with its forms, as the pages tell it to.
type client struct {
	e       *env
	cookies map[string]string
	ip      string // sent as X-Forwarded-For (believed only by envs that trust it)
}

func (e *env) client() *client { return &client{e: e, cookies: map[string]string{}} }

func (c *client) send(t testing.TB, req *http.Request) (*http.Response, string) {
	t.Helper()
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	if c.ip != "" {
		req.Header.Set("X-Forwarded-For", c.ip)
	}
	resp, body := c.e.do(t, req)
	for _, ck := range resp.Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" || (!ck.Expires.IsZero() && ck.Expires.Before(time.Now())) {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return resp, body
}

func (c *client) get(t testing.TB, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, path, nil)
	return c.send(t, req)
}

// page gets path as a whole page, which must answer 200, and parses it.
func (c *client) page(t testing.TB, path string) *goquery.Document {
	t.Helper()
	resp, body := c.get(t, path)
	wantStatus(t, resp, body, http.StatusOK)
	return parseHTML(t, body)
}

// csrf is the token the pages carry; a GET first gets one.
func (c *client) csrf(t testing.TB) string {
	t.Helper()
	name := auth.CSRFCookieName(c.e.cfg.SecureCookies())
	if c.cookies[name] == "" {
		c.get(t, "/")
	}
	return c.cookies[name]
}

// post sends a form with the CSRF field, as a plain form does.
func (c *client) post(t testing.TB, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("_csrf") {
		form.Set("_csrf", c.csrf(t))
	}
	return c.postRaw(t, path, form)
}

func (c *client) postRaw(t testing.TB, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.send(t, req)
}

func wantStatus(t testing.TB, resp *http.Response, body string, status int) {
	t.Helper()
	if resp.StatusCode != status {
		if len(body) > 2000 {
			body = body[:2000]
		}
		t.Fatalf("%s %s = %d, want %d\n%s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
	}
}

func wantRedirect(t testing.TB, resp *http.Response, body, to string) {
	t.Helper()
	wantStatus(t, resp, body, http.StatusSeeOther)
	if got := resp.Header.Get("Location"); got != to {
		t.Fatalf("%s %s redirects to %q, want %q", resp.Request.Method, resp.Request.URL, got, to)
	}
}

// fieldError is the message shown beside a field.
func fieldError(t testing.TB, body, field string) string {
	t.Helper()
	return strings.TrimSpace(parseHTML(t, body).Find(`[data-field-error="` + field + `"]`).Text())
}

func inputValue(t testing.TB, body, name string) string {
	t.Helper()
	v, _ := parseHTML(t, body).Find(`input[name="` + name + `"]`).Attr("value")
	return v
}

var linkRE = regexp.MustCompile(`https?://\S+`)

// waitMail waits for the n-th message (1-based) and returns it with the
// first link in its body, made relative to the app.
func (e *env) waitMail(t testing.TB, sink *mailsink.Server, n int) (mailsink.Received, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	msgs, err := sink.Wait(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[n-1]
	link := linkRE.FindString(m.Body())
	if link == "" {
		return m, ""
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, e.cfg.BaseURL+"/") {
		t.Fatalf("mailed link %q is not on BASE_URL %s", link, e.cfg.BaseURL)
	}
	return m, u.RequestURI()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

type goquerySelection = goquery.Selection
