package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/hibiken/asynq"

	"rassylka/app/model"
)

// runToEnd starts a run of the mailing and waits until the worker has
// finished it.
func runToEnd(t *testing.T, c *client, path string) {
	t.Helper()
	resp, body := c.post(t, path+"/send", nil)
	wantRedirect(t, resp, body, path)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, body := c.request(t, "GET", path+"/progress", nil, true)
		if resp.StatusCode == 286 {
			return
		}
		wantStatus(t, resp, body, http.StatusOK)
		if time.Now().After(deadline) {
			t.Fatal("the run never finished")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statText(t *testing.T, body, testid string) string {
	t.Helper()
	return strings.TrimSpace(parseHTML(t, body).Find("[data-testid=" + testid + "]").First().Text())
}

// The statistics follow the sends: a finished run shows on the next load
// of /stats, the dashboard and the mailing page, though the figures are
// cached in between; a manager sees everyone's with a per-user breakdown.
func TestStatsFollowSends(t *testing.T) {
	e := newEnv(t)
	e.withWorker(t)
	ctx := context.Background()
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	o := makeObjects(t, e, ann)
	sendableNow(t, e, o.mailing.ID)
	path := "/mailings/" + id(o.mailing.ID)

	_, body := c.get(t, "/stats")
	if got := statText(t, body, "stat-sent"); got != "0" {
		t.Fatalf("sent before any run: %q", got)
	}
	if statText(t, body, "stat-clients") != "1" || statText(t, body, "stat-created") != "1" {
		t.Fatalf("figures before any run:\n%s", body)
	}
	// An empty chart says so, and what it covers, in words on the page
	// (an empty frame from 0 to 1 told nothing).
	doc := parseHTML(t, body)
	if doc.Find("[data-testid=chart-empty]").Length() != 1 || doc.Find("[data-testid=chart] figcaption").Text() == "" ||
		!strings.Contains(doc.Find("[data-testid=chart] figcaption").Text(), "over the last 30 days") {
		t.Errorf("the chart before any send: %q", doc.Find("[data-testid=chart]").Text())
	}
	runToEnd(t, c, path)
	_, body = c.get(t, "/stats")
	doc = parseHTML(t, body)
	if doc.Find("[data-testid=chart-empty]").Length() != 0 {
		t.Error("the chart of a day with a send says nothing was sent")
	}
	if got := statText(t, body, "stat-sent"); got != "1" {
		t.Fatalf("sent after a run: %q, want 1 (stale cache?)", got)
	}
	if doc.Find("[data-testid=chart-day]").Length() != 30 || doc.Find("svg[role=img] title").Length() == 0 {
		t.Errorf("the 30-day chart is not drawn:\n%s", body)
	}
	if statText(t, body, "stats-mailing-sent") != "1" || statText(t, body, "stat-running") != "1" {
		t.Errorf("per-mailing table or status after the run:\n%s", body)
	}
	// Today's row of the table fallback holds the send.
	today := time.Now().UTC().Format("Mon 2 Jan 2006")
	row := doc.Find("[data-testid=chart-table] tbody tr").Last()
	if row.Find("th").Text() != today || row.Find("td").First().Text() != "1" {
		t.Errorf("today's row %q %q, want %q 1", row.Find("th").Text(), row.Find("td").First().Text(), today)
	}
	_, body = c.get(t, "/stats?range=7")
	if parseHTML(t, body).Find("[data-testid=chart-day]").Length() != 7 {
		t.Errorf("range=7 does not draw 7 days")
	}
	// Paging the per-mailing table with htmx swaps just the table.
	req, _ := http.NewRequest(http.MethodGet, "/stats?page=1", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Target", "stats-mailings")
	resp, body := c.send(t, req)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.HasPrefix(body, `<div id="stats-mailings">`) || strings.Contains(body, "<html") || !strings.Contains(body, "stats-mailing-sent") {
		t.Errorf("htmx page of the per-mailing table:\n%.300s", body)
	}

	// A second run doubles the figures on the next load.
	runToEnd(t, c, path)
	_, body = c.get(t, "/stats")
	if got := statText(t, body, "stat-sent"); got != "2" {
		t.Fatalf("sent after a second run: %q, want 2", got)
	}
	_, body = c.get(t, "/")
	if statText(t, body, "stat-sent") != "2" || parseHTML(t, body).Find("[data-testid=chart-day]").Length() != 7 {
		t.Errorf("dashboard figures:\n%s", body)
	}
	_, body = c.get(t, path)
	if statText(t, body, "mailing-sent") != "2" || statText(t, body, "mailing-runs") != "2" || statText(t, body, "mailing-rate") != "100.0 %" {
		t.Errorf("mailing figures:\n%s", body)
	}
	// Deleting it takes what it sent from these figures: the question
	// says so.
	if q, _ := parseHTML(t, body).Find("form[action$='/delete']").Attr("data-confirm"); q != "Delete this mailing with its runs and attempt log? Its 2 sends leave the statistics and its clients' mail history too." {
		t.Errorf("delete of a mailing that sent asks %q", q)
	}

	// A manager: everyone's figures and the per-user breakdown.
	m := signedIn(t, e, "boss@example.com", model.RoleManager)
	_, body = m.get(t, "/stats?scope=all")
	doc = parseHTML(t, body)
	if statText(t, body, "stat-sent") != "2" || doc.Find("[data-testid=stats-user]").Length() != 2 {
		t.Fatalf("manager's view:\n%s", body)
	}
	if !strings.Contains(doc.Find("[data-testid=stats-user]").First().Text(), "ann@example.com") {
		t.Errorf("the busiest user is not first:\n%s", body)
	}
	if resp, _ := m.get(t, "/stats?scope=all&owner=987654"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("statistics of a user who does not exist: %d, want 404", resp.StatusCode)
	}
	_, body = m.get(t, "/stats")
	if statText(t, body, "stat-sent") != "0" {
		t.Errorf("a manager's own figures include others'")
	}
	// Deleting the mailing takes its figures away at once.
	resp, body = c.post(t, path+"/delete", nil)
	wantRedirect(t, resp, body, "/mailings")
	_, body = c.get(t, "/stats")
	if got := statText(t, body, "stat-sent"); got != "0" {
		t.Errorf("sent after deleting the mailing: %q", got)
	}
	_, body = m.get(t, "/stats?scope=all")
	if got := statText(t, body, "stat-sent"); got != "0" {
		t.Errorf("site figures after the owner deleted the mailing: %q", got)
	}
}

// Pages carry a weak ETag; revalidating an unchanged page answers 304
// with no body, a changed one 200, and one user's tag never matches
// another user's page.
func TestETags(t *testing.T) {
	e := newEnv(t)
	ann := signedIn(t, e, "ann@example.com", model.RoleUser)
	bob := signedIn(t, e, "bob@example.com", model.RoleUser)

	resp, _ := ann.get(t, "/clients")
	tag := resp.Header.Get("ETag")
	if !strings.HasPrefix(tag, `W/"`) {
		t.Fatalf("no weak ETag: %q", tag)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "private, no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}
	if v := resp.Header.Get("Vary"); !strings.Contains(v, "HX-Request") || !strings.Contains(v, "Cookie") {
		t.Errorf("Vary %q", v)
	}
	revalidate := func(c *client, tag string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, "/clients", nil)
		req.Header.Set("If-None-Match", tag)
		return c.send(t, req)
	}
	resp, body := revalidate(ann, tag)
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("unchanged page: %d with %d bytes, want 304 and none", resp.StatusCode, len(body))
	}
	// Bob's page of the same URL is not Ann's.
	resp, body = revalidate(bob, tag)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "ann@example.com") {
		t.Fatalf("another user's tag: %d", resp.StatusCode)
	}
	// A change makes the page new.
	resp, body = ann.post(t, "/clients", url.Values{"email": {"new@example.com"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	resp, body = revalidate(ann, tag)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "new@example.com") || resp.Header.Get("ETag") == tag {
		t.Fatalf("changed page: %d, tag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	// The htmx fragment of the same URL has a tag of its own.
	resp, _ = ann.request(t, "GET", "/clients", nil, true)
	if resp.Header.Get("ETag") == "" || resp.Header.Get("ETag") == tag {
		t.Errorf("fragment tag %q", resp.Header.Get("ETag"))
	}
	// Streams (CSV) and errors get none.
	if resp, _ := ann.get(t, "/clients/export.csv"); resp.Header.Get("ETag") != "" {
		t.Errorf("CSV export has an ETag")
	}
	if resp, _ := ann.get(t, "/clients/999999"); resp.StatusCode != http.StatusNotFound || resp.Header.Get("ETag") != "" {
		t.Errorf("404 page: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
}

// The queue dashboard is the managers': its page and its API answer them
// (read-only unless configured), and nobody else.
func TestQueueDashboard(t *testing.T) {
	e := newEnv(t)
	m := signedIn(t, e, "boss@example.com", model.RoleManager)
	u := signedIn(t, e, "ann@example.com", model.RoleUser)

	resp, body := m.get(t, "/ops/queues")
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "/ops/queues") || !strings.Contains(strings.ToLower(body), "asynq") {
		t.Fatalf("dashboard page:\n%.500s", body)
	}
	// Its fonts are not fetched from Google, and frames are refused.
	if strings.Contains(body, "fonts.googleapis.com") {
		t.Error("the dashboard's page loads Google's fonts")
	}
	// It leads back to the site (it had no way back).
	if back := parseHTML(t, body).Find("body > [data-testid=queues-back]"); back.AttrOr("href", "") != "/" || back.Text() != "← Back to Rassylka" {
		t.Errorf("the dashboard's way back: %q", back.Text())
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "style-src 'self' 'unsafe-inline';") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("the dashboard's policy: %q", csp)
	}
	// The manifest a browser asks for without cookies is the dashboard's.
	if mresp, manifest := e.client().get(t, "/ops/queues/manifest.json"); mresp.StatusCode != http.StatusOK || !strings.Contains(manifest, `"short_name"`) {
		t.Errorf("the manifest asked for without cookies: %d\n%.300s", mresp.StatusCode, manifest)
	}
	// Its scripts come from under the same path.
	scripts := parseHTML(t, body).Find("script[src]")
	if scripts.Length() == 0 {
		t.Fatalf("dashboard page has no scripts:\n%.500s", body)
	}
	scripts.Each(func(_ int, s *goquery.Selection) {
		src, _ := s.Attr("src")
		if resp, _ := m.get(t, src); !strings.HasPrefix(src, "/ops/queues/") || resp.StatusCode != http.StatusOK {
			t.Errorf("dashboard script %s: %d", src, resp.StatusCode)
		}
	})
	resp, body = m.get(t, "/ops/queues/api/queues")
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, `"queues"`) {
		t.Fatalf("dashboard API: %s", body)
	}
	resp, body = m.request(t, "POST", "/ops/queues/api/queues/default:pause", nil, false)
	wantStatus(t, resp, body, http.StatusMethodNotAllowed)
	for _, path := range []string{"/ops/queues", "/ops/queues/api/queues"} {
		if resp, _ := u.get(t, path); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a user: %s = %d, want 403", path, resp.StatusCode)
		}
		if resp, _ := e.client().get(t, path); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("anonymous: %s = %d, want sent to sign in", path, resp.StatusCode)
		}
	}

	// Writable: the dashboard's own requests (same origin, no CSRF token
	// of ours) act; one from another site does not.
	cfg := testConfig(t)
	cfg.QueuesWritable = true
	w := newEnvWith(t, cfg, e.redis, nil)
	mw := signedIn(t, w, "boss2@example.com", model.RoleManager)
	act := func(origin string) int {
		req, _ := http.NewRequest(http.MethodPost, "/ops/queues/api/queues/default:pause", nil)
		req.Header.Set("Origin", origin)
		resp, _ := mw.send(t, req)
		return resp.StatusCode
	}
	if got := act("https://evil.example"); got != http.StatusForbidden {
		t.Errorf("cross-site action: %d, want 403", got)
	}
	if got := act(testBaseURL); got == http.StatusForbidden || got == http.StatusMethodNotAllowed {
		t.Errorf("same-site action: %d, want it let through", got)
	}
}

// /metrics exposes request counts by route pattern and the queues, and
// asks for the token when one is configured.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	c.get(t, "/clients/12345")
	c.get(t, "/clients/67890")
	q := asynq.NewClientFromRedisClient(e.redis)
	if _, err := q.Enqueue(asynq.NewTask("probe", nil), asynq.Queue("default"), asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}
	resp, body := e.client().get(t, "/metrics")
	wantStatus(t, resp, body, http.StatusOK)
	for _, want := range []string{
		`asynq_queue_size{queue="default"} 1`,
		`asynq_tasks_enqueued_total{queue="default",state="scheduled"} 1`,
		`rassylka_http_requests_total{method="GET",route="/clients/:id",status="404"} 2`,
		`rassylka_http_request_duration_seconds_bucket{method="GET",route="/clients/:id"`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "/clients/12345") {
		t.Error("metrics are labelled by raw path")
	}

	cfg := testConfig(t)
	cfg.MetricsToken = "s3cret-token"
	p := newEnvWith(t, cfg, e.redis, nil)
	if resp, _ := p.client().get(t, "/metrics"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Authorization", "Bearer s3cret-token")
	if resp, body := p.client().send(t, req); resp.StatusCode != http.StatusOK || !strings.Contains(body, "rassylka_http_requests_total") {
		t.Errorf("with the token: %d", resp.StatusCode)
	}
}

// The managers' per-user statistics list every user: one who signs up
// after the table was cached shows on the next look, not ten minutes
// later ("invalidated when the data under them changes").
func TestStatsUsersTableShowsNewAccounts(t *testing.T) {
	e := newEnv(t)
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	resp, body := boss.get(t, "/stats?scope=all")
	wantStatus(t, resp, body, http.StatusOK)
	register(t, e.client(), "newcomer@example.com", "Newcomer")
	_, body = boss.get(t, "/stats?scope=all")
	if !strings.Contains(body, "newcomer@example.com") {
		t.Error("the per-user statistics do not list a new account")
	}
}
