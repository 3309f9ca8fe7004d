package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"rassylka/app/model"
	"rassylka/app/testkit"
	"rassylka/app/web"
	"rassylka/views/component"
)

// clientsCSV is a file of n clients; every hundredth row has a bad address.
func clientsCSV(n int) []byte {
	var b strings.Builder
	b.WriteString("email,full_name,comment\n")
	for i := range n {
		if i%100 == 99 {
			fmt.Fprintf(&b, "bad-%d,Bad %d,\n", i, i)
			continue
		}
		fmt.Fprintf(&b, "person%06d@example.com,Person %d,row %d\n", i, i, i)
	}
	return []byte(b.String())
}

var importPage = regexp.MustCompile(`^/clients/import/[0-9a-f]{32}$`)

// startImport posts a CSV to an env that does not wait for imports and
// returns the import's page.
func startImport(t *testing.T, c *client, file []byte) string {
	t.Helper()
	resp, body := multipartCSV(t, c, file)
	wantStatus(t, resp, body, http.StatusSeeOther)
	to := resp.Header.Get("Location")
	if !importPage.MatchString(to) {
		t.Fatalf("an import redirects to %q, want its page", to)
	}
	return to
}

// waitForABatch waits until the import's page says a batch of its rows is
// in, while it goes on.
func waitForABatch(t *testing.T, c *client, page string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, body := c.request(t, http.MethodGet, page, nil, true)
		if strings.Contains(body, "(line ") {
			return
		}
		if time.Now().After(deadline) || !strings.Contains(body, "import-progress") {
			t.Fatalf("no batch imported:\n%.1000s", body)
		}
	}
}

// pollImport asks for the import's box as htmx polls it, until the answer
// 286 says it has ended, and returns the last box and the progress bars
// seen before it (value and max).
func pollImport(t *testing.T, c *client, page string) (final *goquerySelection, bars [][2]int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, body := c.request(t, http.MethodGet, page, nil, true)
		doc := parseHTML(t, body)
		box := doc.Find("[data-testid=import-status]")
		if box.Length() != 1 || strings.Contains(body, "<html") {
			t.Fatalf("the poll of %s answers no box alone:\n%.1000s", page, body)
		}
		switch resp.StatusCode {
		case web.StatusStopPolling:
			if _, polls := box.Attr("hx-get"); polls {
				t.Errorf("the box of an ended import polls on")
			}
			return box, bars
		case http.StatusOK:
			if got, _ := box.Attr("hx-get"); got != page {
				t.Fatalf("the box of an import under way polls %q, want %q", got, page)
			}
			bar := box.Find("[data-testid=import-bar]")
			v, _ := strconv.ParseInt(bar.AttrOr("value", "-1"), 10, 64)
			m, _ := strconv.ParseInt(bar.AttrOr("max", "-1"), 10, 64)
			bars = append(bars, [2]int64{v, m})
		default:
			wantStatus(t, resp, body, http.StatusOK)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the import at %s did not end within a minute", page)
	return nil, nil
}

func ownClients(t *testing.T, e *env, email string) int {
	t.Helper()
	var n int
	err := e.db.NewRaw("SELECT count(*) FROM clients JOIN users u ON u.id = clients.owner_id WHERE u.email = ?", email).
		Scan(context.Background(), &n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// An import that takes longer than the answer waits goes on in the
// background: its page shows a progress bar that htmx polls, then the
// report. Only its owner sees it, and an owner runs one import at a time.
func TestClientsImportInTheBackground(t *testing.T) {
	e := newEnvWith(t, testConfig(t), testkit.Redis(t), nil, func(d *web.Deps) { d.ImportWait = -1 })
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	const rows = 100_000
	file := clientsCSV(rows)
	page := startImport(t, c, file)

	// A second file while the first is imported is refused, pointing at
	// the import under way.
	resp, body := multipartCSV(t, c, []byte("email\nsecond@example.com\n"))
	wantStatus(t, resp, body, http.StatusConflict)
	if got := parseHTML(t, body).Find("[data-testid=import-running]").AttrOr("href", ""); got != page {
		t.Errorf("the refusal links to %q, want %q:\n%.1500s", got, page, body)
	}

	// The clients list and the import form point at it meanwhile.
	underWay := func() (list, form string) {
		_, body := c.get(t, "/clients")
		list = parseHTML(t, body).Find("[data-testid=import-under-way] a").AttrOr("href", "")
		_, body = c.get(t, "/clients/import")
		form = parseHTML(t, body).Find("[data-testid=import-running]").AttrOr("href", "")
		return list, form
	}
	if list, form := underWay(); list != page || form != page {
		t.Errorf("during the import the list links to %q and the form to %q, want %q", list, form, page)
	}

	// The page opened as a page, and by someone else.
	resp, body = c.get(t, page)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "<html") || parseHTML(t, body).Find("[data-testid=import-status]").Length() != 1 {
		t.Fatalf("the import's page:\n%.1500s", body)
	}
	other := signedIn(t, e, "bob@example.com", model.RoleManager)
	resp, body = other.get(t, page)
	wantStatus(t, resp, body, http.StatusNotFound)
	resp, body = c.get(t, "/clients/import/0123456789abcdef0123456789abcdef")
	wantStatus(t, resp, body, http.StatusNotFound)
	resp, body = c.get(t, "/clients/import/owner:1")
	wantStatus(t, resp, body, http.StatusNotFound)

	box, bars := pollImport(t, c, page)
	if len(bars) == 0 {
		t.Fatalf("no progress was shown before the report")
	}
	moved := false
	for i, b := range bars {
		if b[1] != int64(len(file)) || b[0] < 0 || b[0] > b[1] || i > 0 && b[0] < bars[i-1][0] {
			t.Fatalf("progress bars (read, of) %v; the file has %d bytes", bars, len(file))
		}
		moved = moved || b[0] > 0 && b[0] < b[1]
	}
	if !moved {
		t.Errorf("no bar showed the import part way: %v", bars)
	}
	got := func(id string) string { return box.Find("[data-testid=" + id + "]").Text() }
	bad := rows / 100
	if got("import-created") != component.Count(int64(rows-bad)) || got("import-rejected") != component.Count(int64(bad)) ||
		box.Find("[data-testid=rejected-row]").Length() != bad {
		t.Fatalf("report: created %s rejected %s (%d listed)", got("import-created"), got("import-rejected"), box.Find("[data-testid=rejected-row]").Length())
	}
	if n := ownClients(t, e, "ann@example.com"); n != rows-bad {
		t.Fatalf("ann has %d clients, want %d", n, rows-bad)
	}
	if list, form := underWay(); list != "" || form != "" {
		t.Errorf("after the import the list links to %q and the form to %q", list, form)
	}

	// Once it has ended the next file is taken, and the page keeps the report.
	resp, body = multipartCSV(t, c, []byte("email\nsecond@example.com\n"))
	wantStatus(t, resp, body, http.StatusSeeOther)
	resp, body = c.get(t, page)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "Import finished") {
		t.Errorf("the page of an ended import has no report:\n%.1500s", body)
	}
}

// A web process that stops during an import stops it after the batch under
// way, and its page says how far it got: the rows up to that line are in
// the list, and importing the file again finishes the job.
func TestClientsImportStopsWithTheServer(t *testing.T) {
	e := newEnvWith(t, testConfig(t), testkit.Redis(t), nil, func(d *web.Deps) { d.ImportWait = -1 })
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	const rows = 200_000
	file := clientsCSV(rows)
	page := startImport(t, c, file)
	waitForABatch(t, c, page)
	_ = e.app.ShutdownWithTimeout(10 * time.Second) // the app never listened: only the hooks run

	// The next process shows what the last one did.
	e.app = web.New(e.deps)
	box, _ := pollImport(t, c, page)
	stopped := box.Find("[data-testid=import-stopped]").Text()
	m := regexp.MustCompile(`after line ([\d\x{202f}]+)`).FindStringSubmatch(strings.ReplaceAll(stopped, "\u202f", ""))
	if m == nil || !strings.Contains(stopped, "the server was restarting") {
		t.Fatalf("the page of an import stopped by a shutdown says %q", stopped)
	}
	line, _ := strconv.Atoi(m[1])
	created := figureOf(box.Find("[data-testid=import-created]").Text())
	// Line 1 is the header; every hundredth row is rejected.
	if wantRows := line - 1; line <= 1 || line > rows || created != wantRows-wantRows/100 {
		t.Fatalf("stopped after line %d with %d created; the rows up to it are %d, of them %d good", line, created, wantRows, wantRows-wantRows/100)
	}
	if n := ownClients(t, e, "ann@example.com"); n != created {
		t.Fatalf("ann has %d clients, the report says %d were created", n, created)
	}
	// The rejected rows counted and listed are those up to that line too:
	// the rows read after it are not imported, and importing the file
	// again reports them.
	rejected := figureOf(box.Find("[data-testid=import-rejected]").Text())
	if want := (line - 1) / 100; rejected != want {
		t.Errorf("stopped after line %d with %d rejected, want the %d rejected up to it", line, rejected, want)
	}
	box.Find("[data-testid=rejected-row] td:first-child").Each(func(_ int, td *goquerySelection) {
		if n := figureOf(td.Text()); n > line {
			t.Errorf("stopped after line %d, the report lists a rejected line %d", line, n)
		}
	})

	// Importing the file again finishes it.
	box, _ = pollImport(t, c, startImport(t, c, file))
	unchanged := figureOf(box.Find("[data-testid=import-unchanged]").Text())
	again := figureOf(box.Find("[data-testid=import-created]").Text())
	if unchanged != created || again != rows-rows/100-created {
		t.Fatalf("the second import: %d created, %d unchanged; the first created %d", again, unchanged, created)
	}
}

// A manager who blocks a user during an import stops it after the batch
// under way: no more of the file is written for the blocked account, and
// the import's page, once the user is unblocked, says why it stopped and
// how far it got.
func TestClientsImportStopsWhenItsOwnerIsBlocked(t *testing.T) {
	e := newEnvWith(t, testConfig(t), testkit.Redis(t), nil, func(d *web.Deps) { d.ImportWait = -1 })
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	ann, err := e.store.UserByEmail(context.Background(), "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	const rows = 200_000
	page := startImport(t, c, clientsCSV(rows))
	waitForABatch(t, c, page)
	resp, body := boss.post(t, "/users/"+id(ann.ID)+"/block", nil)
	wantStatus(t, resp, body, http.StatusSeeOther)
	// The import's end is written where any web process reads it.
	key := "import:" + strings.TrimPrefix(page, "/clients/import/")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		raw, err := e.redis.Get(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(raw, `"state":"stopped"`) {
			break
		}
		if strings.Contains(raw, `"state":"done"`) || time.Now().After(deadline) {
			t.Fatalf("the import of a blocked owner went on: %.300s", raw)
		}
	}
	kept := ownClients(t, e, "ann@example.com")

	resp, body = boss.post(t, "/users/"+id(ann.ID)+"/unblock", nil)
	wantStatus(t, resp, body, http.StatusSeeOther)
	c = e.client()
	resp, body = login(t, c, "ann@example.com", goodPassword)
	wantRedirect(t, resp, body, "/")
	box, _ := pollImport(t, c, page)
	stopped := box.Find("[data-testid=import-stopped]").Text()
	if !strings.Contains(stopped, "blocked by a manager") || !strings.Contains(stopped, "after line") {
		t.Fatalf("the page of an import stopped by a block says %q", stopped)
	}
	if created := figureOf(box.Find("[data-testid=import-created]").Text()); kept != created || kept >= rows-rows/100 {
		t.Fatalf("ann has %d clients after the block, the report says %d were created, of %d in the file", kept, created, rows-rows/100)
	}
}

// The owner's statistics follow an import as it goes: their clients'
// figure, cached in between, grows before the import ends.
func TestClientsImportRenewsTheFigures(t *testing.T) {
	e := newEnvWith(t, testConfig(t), testkit.Redis(t), nil, func(d *web.Deps) { d.ImportWait = -1 })
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	const rows = 150_000
	page := startImport(t, c, clientsCSV(rows))
	for deadline := time.Now().Add(30 * time.Second); ownClients(t, e, "ann@example.com") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no batch imported")
		}
	}
	_, body := c.get(t, "/stats")
	first := figureOf(statText(t, body, "stat-clients"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body := c.get(t, "/stats")
		now := figureOf(statText(t, body, "stat-clients"))
		if now > first && now < rows-rows/100 {
			break // more, and not yet all
		}
		if now >= rows-rows/100 || time.Now().After(deadline) {
			t.Fatalf("/stats showed %d clients, then %d, with no figure between while the import went on", first, now)
		}
	}
	pollImport(t, c, page)
}

// In a browser: the file chosen and sent, the import's page shows a bar
// that moves, then the report in its place, without a reload.
func TestBrowserImportProgress(t *testing.T) {
	e, base := servedEnv(t, func(d *web.Deps) { d.ImportWait = -1 })
	newUser(t, e, "ann@example.com", model.RoleUser)
	const rows = 100_000
	path := filepath.Join(t.TempDir(), "clients.csv")
	if err := os.WriteFile(path, clientsCSV(rows), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &browserUser{t: t, ctx: testkit.Browser(t), base: base}
	b.signIn("ann@example.com")
	got := consoleErrors(b.ctx)
	b.do("open the import", chromedp.Navigate(base+"/clients/import"),
		chromedp.WaitVisible(chromedp.CSS("[data-testid=import-form]")))
	b.do("choose the file", chromedp.SetUploadFiles(chromedp.CSS("#field-file"), []string{path}))
	b.do("import", chromedp.Click(chromedp.CSS("[data-testid=import-form] button[type=submit]")))
	waitAcrossNavigation(t, b.ctx, `(() => { const bar = document.querySelector("[data-testid=import-bar]"); return !!bar && bar.value > 0 && bar.value < bar.max })()`)
	b.waitJS("mark the page", `(window.sameImportPage = true)`)
	waitAcrossNavigationFor(t, b.ctx, time.Minute, `!!document.querySelector("[data-testid=import-report]")`)
	if !strings.Contains(b.text("[data-testid=import-report]"), "Import finished") ||
		b.text("[data-testid=import-created]") != component.Count(int64(rows-rows/100)) {
		t.Errorf("the report: %q", b.text("[data-testid=import-report]"))
	}
	b.waitJS("the report came without a reload", `window.sameImportPage === true`)
	if errs := got(); len(errs) > 0 {
		t.Errorf("console: %v", errs)
	}
}

// An import gives up the owner's turn at its end only while the turn is
// its own: one whose hold lapsed meanwhile (its progress could not be told
// for a while), and was taken by a newer import, must not end the newer
// one's, or a third import would run beside it.
func TestClientsImportReleasesOnlyItsOwnTurn(t *testing.T) {
	e := newEnvWith(t, testConfig(t), testkit.Redis(t), nil, func(d *web.Deps) { d.ImportWait = -1 })
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, err := e.store.UserByEmail(ctx, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	key := "import:owner:" + strconv.FormatInt(ann.ID, 10)
	page := startImport(t, c, clientsCSV(100_000))
	const newer = "0123456789abcdef0123456789abcdef"
	if err := e.redis.Set(ctx, key, newer, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if resp, body := c.request(t, http.MethodGet, page, nil, true); resp.StatusCode != http.StatusOK {
		t.Fatalf("the import ended before its turn was taken (%d):\n%.500s", resp.StatusCode, body)
	}
	pollImport(t, c, page)
	if got, err := e.redis.Get(ctx, key).Result(); got != newer {
		t.Fatalf("after the first import ended the owner's turn is %q (%v), want the newer import's %q", got, err, newer)
	}
	resp, body := multipartCSV(t, c, []byte("email\nthird@example.com\n"))
	wantStatus(t, resp, body, http.StatusConflict)
}

// A process holds a few imports at once (the one running, and those
// waiting for their turn, each with its file in memory); one more is
// refused with a message until one ends.
func TestClientsImportsHeldAtOnceBounded(t *testing.T) {
	e := newEnvWith(t, testConfig(t), testkit.Redis(t), nil, func(d *web.Deps) { d.ImportWait = -1 })
	var pages []string
	users := make([]*client, 5)
	for i := range users {
		users[i] = signedIn(t, e, fmt.Sprintf("u%d@example.com", i), model.RoleUser)
	}
	pages = append(pages, startImport(t, users[0], clientsCSV(100_000))) // runs for seconds
	for _, c := range users[1:4] {
		pages = append(pages, startImport(t, c, []byte("email\nx@example.com\n"))) // wait for their turn
	}
	if _, body := users[1].request(t, http.MethodGet, pages[1], nil, true); !strings.Contains(body, "Waiting for another import to finish") {
		t.Errorf("an import waiting for its turn does not say so:\n%.1000s", body)
	}
	resp, body := multipartCSV(t, users[4], []byte("email\nx@example.com\n"))
	wantStatus(t, resp, body, http.StatusServiceUnavailable)
	doc := parseHTML(t, body)
	if !strings.Contains(doc.Find("[data-testid=form-error]").Text(), "try again in a minute") {
		t.Errorf("the refusal does not say what to do:\n%.1500s", body)
	}
	// The file's field is said to be in error, described by the message.
	if in := doc.Find("#field-file"); in.AttrOr("aria-invalid", "") != "true" || in.AttrOr("aria-describedby", "") != doc.Find("[data-testid=form-error]").AttrOr("id", "-") {
		t.Errorf("the file's field after a refusal: aria-invalid %q, aria-describedby %q", in.AttrOr("aria-invalid", ""), in.AttrOr("aria-describedby", ""))
	}
	for i, p := range pages {
		pollImport(t, users[i], p)
	}
	pollImport(t, users[4], startImport(t, users[4], []byte("email\nx@example.com\n")))
}

// figureOf reads a count as the pages write it, thousands apart (1 234).
func figureOf(s string) int {
	n, _ := strconv.Atoi(strings.ReplaceAll(s, "\u202f", ""))
	return n
}
