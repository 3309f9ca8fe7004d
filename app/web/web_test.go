package web_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"rassylka/app/model"
	"rassylka/app/testkit"
	"rassylka/app/web"
	"rassylka/app/web/form"
	"rassylka/views/component"
)

func TestLanding(t *testing.T) {
	e := newEnv(t)
	resp, body := e.get(t, "/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "private, no-cache" {
		t.Errorf("Cache-Control = %q, want private, no-cache", cc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q", ct)
	}
	doc := parseHTML(t, body)
	if doc.Find("[data-testid=landing]").Length() != 1 {
		t.Error("landing section missing")
	}
	if _, ok := doc.Find(`meta[name="csrf-token"]`).Attr("content"); !ok {
		t.Error(`<meta name="csrf-token"> missing`)
	}
	if hx, _ := doc.Find("body").Attr("hx-headers"); !strings.Contains(hx, "X-CSRF-Token") {
		t.Errorf("body hx-headers = %q, want the CSRF header", hx)
	}
	for _, sel := range []string{"nav", "#flash[aria-live]", "footer", "title"} {
		if doc.Find(sel).Length() == 0 {
			t.Errorf("layout lacks %s", sel)
		}
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID header")
	}
}

// On https, browsers are told to come back on https only (HSTS): the
// session and CSRF cookies are Secure, but a first plain-http request (a
// typed address, an old bookmark) can still be intercepted and rewritten.
func TestHSTSOnHTTPS(t *testing.T) {
	cfg := testConfig(t)
	cfg.BaseURL = "https://mail.example.com"
	e := newEnvWith(t, cfg, testkit.Redis(t), nil)
	for _, path := range []string{"/", "/login", "/nowhere"} {
		resp, _ := e.get(t, path)
		if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=") || strings.HasPrefix(hsts, "max-age=0") {
			t.Errorf("GET %s on https: Strict-Transport-Security %q", path, hsts)
		}
	}
	// Not on plain http (a local run): it would pin localhost to https.
	resp, _ := newEnv(t).get(t, "/")
	if hsts := resp.Header.Get("Strict-Transport-Security"); hsts != "" {
		t.Errorf("on http: Strict-Transport-Security %q", hsts)
	}
}

// Pages carry a Content-Security-Policy that runs only the site's own
// script files: an injection that got past templ's escaping (a template
// change, a library's HTML) could not run inline script, and the pages
// need none (htmx and app.js are files). So no page may use an inline
// event handler either.
func TestContentSecurityPolicy(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	pages := []string{"/", "/account", "/clients", "/clients/" + id(o.client.ID), "/messages/" + id(o.message.ID),
		"/mailings/" + id(o.mailing.ID), "/mailings/new", "/stats", "/nowhere"}
	for _, path := range pages {
		resp, body := c.get(t, path)
		csp := resp.Header.Get("Content-Security-Policy")
		directives := map[string]string{}
		for _, d := range strings.Split(csp, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		script, ok := directives["script-src"]
		if !ok {
			script, ok = directives["default-src"]
		}
		if !ok || strings.Contains(script, "'unsafe-inline'") || strings.Contains(script, "'unsafe-eval'") || strings.Contains(script, "*") {
			t.Errorf("GET %s: Content-Security-Policy %q lets inline or foreign script run", path, csp)
		}
		if directives["frame-ancestors"] != "'none'" || directives["object-src"] != "'none'" || directives["base-uri"] == "" {
			t.Errorf("GET %s: Content-Security-Policy %q: want frame-ancestors 'none', object-src 'none', base-uri", path, csp)
		}
		parseHTML(t, body).Find("*").Each(func(_ int, el *goquerySelection) {
			for _, a := range el.Nodes[0].Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("GET %s: <%s %s=%q> is inline script", path, el.Nodes[0].Data, a.Key, a.Val)
				}
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, "/clients/new", nil)
	req.Header.Set("HX-Request", "true")
	_, body := c.send(t, req)
	if strings.Contains(body, "onclick") {
		t.Errorf("the new-client form has an inline handler:\n%s", body)
	}
	// The login page of an anonymous visitor too.
	resp, _ := e.get(t, "/login")
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("GET /login: no Content-Security-Policy")
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	resp, body := e.get(t, "/healthz")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("GET /healthz = %d %q", resp.StatusCode, body)
	}
}

func TestReadyz(t *testing.T) {
	addr, stopRedis := testkit.RedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	e := newEnvWith(t, testConfig(t), rdb, nil)

	resp, body := e.get(t, "/readyz")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz with everything up = %d %q", resp.StatusCode, body)
	}

	stopRedis()
	resp, body = e.get(t, "/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz with Redis stopped = %d %q, want 503", resp.StatusCode, body)
	}
	if !strings.Contains(body, "redis") || strings.Contains(body, "postgres") {
		t.Fatalf("503 body = %q, want it to name redis only", body)
	}
}

// A schema rolled back under a running server (web migrate down) fails
// every page: the server is not ready then, and says why.
func TestReadyzNeedsTheSchema(t *testing.T) {
	e := newEnv(t)
	if resp, body := e.get(t, "/readyz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz = %d %q", resp.StatusCode, body)
	}
	if _, err := e.db.ExecContext(context.Background(), "DELETE FROM bun_migrations WHERE name = (SELECT max(name) FROM bun_migrations)"); err != nil {
		t.Fatal(err)
	}
	resp, body := e.get(t, "/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "schema") || strings.Contains(body, "postgres") {
		t.Fatalf("GET /readyz with a migration missing = %d %q, want 503 naming the schema", resp.StatusCode, body)
	}
	if _, err := e.db.ExecContext(context.Background(), "DROP TABLE bun_migrations"); err != nil {
		t.Fatal(err)
	}
	if resp, body := e.get(t, "/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz with no migrations' table = %d %q, want 503", resp.StatusCode, body)
	}
}

// A browser signed in while Redis (which holds the sessions) is down still
// gets the truth from /healthz and /readyz: probes and operators' browsers
// send the session cookie too. Once Redis is back, the same session works
// again without a restart.
func TestHealthWithASessionWhileRedisIsDown(t *testing.T) {
	srv := testkit.RedisProcess(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	e := newEnvWith(t, testConfig(t), rdb, nil)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)

	srv.Stop()
	resp, body := c.get(t, "/healthz")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("GET /healthz with a session, Redis stopped = %d %q, want 200 ok", resp.StatusCode, body)
	}
	resp, body = c.get(t, "/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(body) != "unavailable: redis" {
		t.Errorf("GET /readyz with a session, Redis stopped = %d %q, want 503 naming redis", resp.StatusCode, body)
	}
	resp, body = c.get(t, "/clients")
	if resp.StatusCode != http.StatusServiceUnavailable || parseHTML(t, body).Find("[data-testid=error-page]").Length() != 1 ||
		strings.Contains(body, "connection refused") {
		t.Errorf("GET /clients with Redis stopped = %d, want 503 and the error page without internal text:\n%s", resp.StatusCode, body)
	}

	srv.Start()
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, body = c.get(t, "/clients")
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /clients with Redis back = %d, want the session to work again:\n%s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, body = c.get(t, "/readyz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz with Redis back = %d %q", resp.StatusCode, body)
	}
}

func TestNotFoundPage(t *testing.T) {
	e := newEnv(t)
	resp, body := e.get(t, "/no/such/page")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status = %d, want 404", resp.StatusCode)
	}
	doc := parseHTML(t, body)
	if doc.Find("[data-testid=error-page]").Length() != 1 || !strings.Contains(doc.Find("h1").Text(), "not found") {
		t.Fatalf("404 is not the friendly page: %s", body)
	}
	if strings.Contains(body, "Cannot GET") {
		t.Error("404 page shows Fiber's internal message")
	}
	if strings.Contains(e.logs.String(), "request failed") {
		t.Error("a 404 was logged as a failure")
	}
}

func TestServerErrorPage(t *testing.T) {
	e := newEnv(t)
	const secret = "pq: password authentication failed for user secret-db-user"
	e.app.Get("/boom", func(*fiber.Ctx) error { return errors.New(secret) })
	e.app.Get("/panic", func(*fiber.Ctx) error { panic(secret) })

	for _, path := range []string{"/boom", "/panic"} {
		t.Run(path, func(t *testing.T) {
			resp, body := e.get(t, path)
			if resp.StatusCode != http.StatusInternalServerError {
				t.Fatalf("status = %d, want 500", resp.StatusCode)
			}
			if strings.Contains(body, "secret-db-user") {
				t.Fatal("the error page shows internal error text")
			}
			doc := parseHTML(t, body)
			if doc.Find("[data-testid=error-page]").Length() != 1 {
				t.Fatalf("500 is not the friendly page: %s", body)
			}
			id := resp.Header.Get("X-Request-ID")
			if shown := doc.Find("[data-testid=request-id]").Text(); id == "" || shown != id {
				t.Fatalf("request id on the page %q, header %q", shown, id)
			}
			failures := regexp.MustCompile(`"request failed".*request_id=`+id).FindAllString(e.logs.String(), -1)
			if len(failures) != 1 {
				t.Fatalf("the 5xx was logged %d times with its request id, want once; logs:\n%s", len(failures), e.logs)
			}
		})
	}
}

func TestHTMXErrorIsAFragment(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodGet, "/missing", nil)
	req.Header.Set("HX-Request", "true")
	resp, body := e.do(t, req)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if strings.Contains(body, "<html") || !strings.Contains(body, `data-testid="error-page"`) {
		t.Fatalf("htmx error answer is not the fragment alone: %s", body)
	}
}

// The main navigation marks the section the page belongs to
// (aria-current), and only that one.
func TestNavigationMarksTheCurrentSection(t *testing.T) {
	_, c, _, o := signedInWithObjects(t)
	for path, want := range map[string]string{
		"/clients":                                    "/clients",
		"/clients/" + id(o.client.ID) + "/edit":       "/clients",
		"/messages/new":                               "/messages",
		"/mailings/" + id(o.mailing.ID):               "/mailings",
		"/mailings/" + id(o.mailing.ID) + "/attempts": "/mailings",
		"/stats?days=7":                               "/stats",
		"/":                                           "",
		"/account":                                    "",
	} {
		resp, body := c.get(t, path)
		wantStatus(t, resp, body, http.StatusOK)
		var current []string
		parseHTML(t, body).Find(`nav[aria-label=Main] a[aria-current]`).Each(func(_ int, a *goquery.Selection) {
			if v, _ := a.Attr("aria-current"); v == "page" {
				h, _ := a.Attr("href")
				current = append(current, h)
			}
		})
		if want == "" && len(current) != 0 || want != "" && (len(current) != 1 || current[0] != want) {
			t.Errorf("%s: navigation marks %v as current, want %q", path, current, want)
		}
	}
}

// A body larger than its route takes is refused before it is read: 413
// for a form over MaxFormBytes (signed in or not); one sent in chunks,
// with no length to check first, is read up to that bound. What a
// mailing's largest form sends still goes through.
func TestBodiesAreBounded(t *testing.T) {
	e := newEnv(t)
	anon := e.client()
	anon.get(t, "/login")
	big := strings.Repeat("x", web.MaxFormBytes)
	for _, path := range []string{"/login", "/register", "/password/forgot", "/u/x", "/clients"} {
		resp, body := anon.post(t, path, url.Values{"email": {"a"}, "pad": {big}})
		wantStatus(t, resp, body, http.StatusRequestEntityTooLarge)
		if !resp.Close {
			t.Errorf("%s: the refusal keeps the connection whose body is left unread", path)
		}
	}
	// A body sent in chunks is read up to a form's bound.
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	chunked := func(body ...io.Reader) (*http.Response, string) {
		req := httptest.NewRequest(http.MethodPost, "/clients", io.MultiReader(body...))
		req.TransferEncoding = []string{"chunked"}
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return c.send(t, req)
	}
	fields := url.Values{"email": {"chunked@example.com"}, "_csrf": {c.csrf(t)}}.Encode()
	resp, body := chunked(strings.NewReader(fields))
	wantStatus(t, resp, body, http.StatusSeeOther)
	resp, body = chunked(strings.NewReader(fields+"&pad="), strings.NewReader(big))
	wantStatus(t, resp, body, http.StatusRequestEntityTooLarge)
	if !resp.Close {
		t.Errorf("the refusal of a body sent in chunks keeps the connection")
	}
	if n := countRows(t, e, "clients", userID(t, e, "ann@example.com")); n != 1 {
		t.Errorf("%d clients after a body in chunks and one too large, want 1", n)
	}

	// A mailing's form choosing the most recipients a mailing takes, by
	// ids of the longest kind, fits.
	ids := make([]string, form.MaxRecipients)
	for i := range ids {
		ids[i] = strconv.Itoa(1_000_000_000 + i)
	}
	largest := url.Values{"message_id": {"1"}, "recipient_ids": {strings.Join(ids, ",")}, "picker": {"search"}}
	if n := len(largest.Encode()); n >= web.MaxFormBytes {
		t.Fatalf("a mailing's largest form is %d bytes, over the %d a form may send", n, web.MaxFormBytes)
	}
	resp, body = c.post(t, "/mailings", largest)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, component.Count(form.MaxRecipients)) {
		t.Fatalf("a mailing's largest form, searching the picker: %d\n%.500s", resp.StatusCode, body)
	}
}

// A request claiming a large body costs the web process nothing until
// the body is sent: twenty connections that say 4 MB and send a line
// hold no 4 MB each.
func TestClaimedBodiesCostNothing(t *testing.T) {
	_, base := servedEnv(t)
	host := strings.TrimPrefix(base, "http://")
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 20 {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\nemail=a", host, web.MaxFormBytes)
	}
	// The server has read what each connection sent by the time it
	// answers a request sent after them, and a little more.
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(300 * time.Millisecond)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 20*web.MaxFormBytes/2 {
		t.Errorf("20 connections claiming %d bytes each grew the heap by %d bytes", web.MaxFormBytes, grown)
	}
}

// A body its route did not read (refused before it was needed: a form
// without its token, an upload sent after the session ended) does not
// spoil the connection it came on: the answer comes on it, and so does
// the answer to the next request sent on it.
func TestUnreadBodyLeavesTheConnectionSound(t *testing.T) {
	_, base := servedEnv(t)
	host := strings.TrimPrefix(base, "http://")
	var upload bytes.Buffer
	w := multipart.NewWriter(&upload)
	fw, _ := w.CreateFormFile("file", "c.csv")
	_, _ = fw.Write(append([]byte("email\n"), bytes.Repeat([]byte("a@example.com\n"), 10_000)...))
	_ = w.Close()
	for _, tc := range []struct {
		path, contentType, body string
		want                    int
	}{
		{"/clients", "text/plain", strings.Repeat("x", 100<<10), http.StatusForbidden},
		{"/clients/import", w.FormDataContentType(), upload.String(), http.StatusSeeOther},
	} {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%sGET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n",
			tc.path, host, tc.contentType, len(tc.body), tc.body, host)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		for i, want := range []int{tc.want, http.StatusOK} {
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("%s, answer %d: %v", tc.path, i+1, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want || resp.Close {
				t.Errorf("%s, answer %d: %d (closing: %v), want %d on a connection kept", tc.path, i+1, resp.StatusCode, resp.Close, want)
			}
		}
	}
}

// An upload sent anonymously, as after a session ended, is answered (a
// redirect to sign in) however large it is within the import's bound: the
// connection is not closed under it, which would reset it and lose the
// answer.
func TestUnreadUploadIsAnswered(t *testing.T) {
	_, base := servedEnv(t)
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, _ := w.CreateFormFile("file", "c.csv")
	_, _ = fw.Write(append([]byte("email\n"), bytes.Repeat([]byte("a@example.com\n"), (10<<20)/14)...))
	_ = w.Close()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, base+"/clients/import", bytes.NewReader(buf.Bytes()))
		req.Header.Set("Content-Type", w.FormDataContentType())
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatalf("upload %d: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Fatalf("upload %d: %d to %q, want the sign-in page", i+1, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// A body cut short (a tab closed, a connection dropped while a long
// message was sent) is refused, not saved as far as it came; a body
// compressed, which no browser sends, is refused unread.
func TestBodyCutShortIsRefused(t *testing.T) {
	e, base := servedEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	body := url.Values{"_csrf": {c.csrf(t)}, "subject": {"Cut short"}, "body": {strings.Repeat("a", 50_000) + " THE END"}}.Encode()
	host := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var cookies []string
	for k, v := range c.cookies {
		cookies = append(cookies, k+"="+v)
	}
	fmt.Fprintf(conn, "POST /messages HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		host, strings.Join(cookies, "; "), len(body), body[:30_000])
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a body cut short: %d, want 400", resp.StatusCode)
	}
	if n := countRows(t, e, "messages", userID(t, e, "ann@example.com")); n != 0 {
		t.Errorf("%d messages saved from a body cut short", n)
	}

	req := httptest.NewRequest(http.MethodPost, "/messages", strings.NewReader("whatever"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Content-Encoding", "gzip")
	resp, got := c.send(t, req)
	wantStatus(t, resp, got, http.StatusUnsupportedMediaType)
}
