package form

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// CSVRow is one data row of a clients CSV, validated.
type CSVRow struct {
	Line     int
	Email    string
	FullName string
	Comment  string
	// UnsubscribedAt is when the client unsubscribed, as an export gives it.
	UnsubscribedAt *time.Time
	Problem        string // why the row is rejected, "" when valid
	// HasName and HasComment say whether the file has these columns at all.
	HasName, HasComment bool
	// Ignored are the header's names of the columns that are none of
	// these, in the file's order (the same for every row).
	Ignored []string
}

// ErrCSVHeader is returned when the first line does not name an email column.
var ErrCSVHeader = errors.New(`the first line must name the columns, with at least "email"`)

// NotCSVError is a file that is no CSV text at all, with what it is
// instead and what to do, said as a sentence.
type NotCSVError struct{ Why string }

func (e *NotCSVError) Error() string { return e.Why }

// saveAsCSV is what to do with a file that is no CSV text.
const saveAsCSV = "save it from the spreadsheet as “CSV UTF-8” and import that."

// notCSV tells what the start of a file (head, up to the read-ahead full)
// is when it is no CSV text: empty, a spreadsheet's own file, UTF-16, or
// text in another encoding than UTF-8. nil: it may be CSV.
func notCSV(head []byte, full bool) error {
	switch {
	case len(bytes.TrimSpace(head)) == 0:
		return &NotCSVError{"The file is empty."}
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte{0xD0, 0xCF, 0x11, 0xE0}):
		return &NotCSVError{"This is a spreadsheet's own file (.xlsx, .xls or .ods), not CSV text: " + saveAsCSV}
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}),
		len(head) >= 4 && (head[1] == 0 && head[3] == 0 || head[0] == 0 && head[2] == 0):
		return &NotCSVError{"The file is UTF-16 text (as Excel saves “Unicode text”): " + saveAsCSV}
	case bytes.IndexByte(head, 0) >= 0:
		return &NotCSVError{"This is not a text file: " + saveAsCSV}
	}
	if full { // the read-ahead may end inside a character
		for i := 0; i < utf8.UTFMax-1 && !utf8.Valid(head); i++ {
			head = head[:len(head)-1]
		}
	}
	if !utf8.Valid(head) {
		return &NotCSVError{"The file is not UTF-8 text (it may be Windows-1251 or Latin-1, as older spreadsheets save CSV): " + saveAsCSV}
	}
	return nil
}

// ReadClientsCSV reads a clients CSV: UTF-8 with or without a BOM, comma,
// semicolon or tab separated (whichever the header uses, or a first line
// "sep=;" as Excel reads and writes it, says), a header naming
// email, full_name (or first and last names) and comment in any order;
// other columns are ignored, and named in each row's Ignored. It calls fn with each data
// row, validated; a bad row is reported with its line number and never
// stops the others. A file that is not CSV at all is an error: a
// *NotCSVError when it is no CSV text, ErrCSVHeader when its first line
// names no email column.
func ReadClientsCSV(r io.Reader, fn func(CSVRow) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	head, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return err
	}
	if err := notCSV(head, len(head) == 4096); err != nil {
		return err
	}
	var src io.Reader = br
	if !bytes.ContainsRune(head, '\n') && bytes.ContainsRune(head, '\r') {
		// Classic Mac line ends (Excel for Mac's "CSV (Macintosh)"): CR
		// alone, which encoding/csv reads as part of a field.
		src = crLines{br}
		head = bytes.ReplaceAll(head, []byte{'\r'}, []byte{'\n'})
	}
	var firstLine string // the first that is not blank
	for _, l := range strings.Split(string(head), "\n") {
		if strings.TrimSpace(l) != "" {
			firstLine = strings.TrimSuffix(l, "\r")
			break
		}
	}
	cr := csv.NewReader(src)
	sepLine := len(firstLine) == 5 && strings.HasPrefix(strings.ToLower(firstLine), "sep=") && strings.ContainsRune(",;\t|", rune(firstLine[4]))
	if sepLine {
		cr.Comma = rune(firstLine[4])
	} else {
		cr.Comma = separator(firstLine)
	}
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true

	header, err := cr.Read()
	if sepLine && err == nil {
		header, err = cr.Read() // read as a record, so that lines keep their numbers
	}
	var perr *csv.ParseError
	if errors.Is(err, io.EOF) || errors.As(err, &perr) {
		return ErrCSVHeader // no file of clients, or not CSV at all
	}
	if err != nil {
		return fmt.Errorf("line 1: %w", err)
	}
	// Names as other tools export them (Mailchimp's "Email Address",
	// "First Name" and "Last Name"; Google's "Given Name") are read too: a
	// name in two columns is joined when the file has no full name.
	col := map[string]int{"email": -1, "full_name": -1, "comment": -1, "unsubscribed_at": -1, "first_name": -1, "last_name": -1}
	var ignored []string
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		name = strings.NewReplacer(" ", "_", "-", "_").Replace(name)
		switch name {
		case "name", "fullname":
			name = "full_name"
		case "e_mail", "email_address", "e_mail_address":
			name = "email"
		case "firstname", "given_name":
			name = "first_name"
		case "lastname", "surname", "family_name":
			name = "last_name"
		case "comments", "note", "notes":
			name = "comment"
		}
		if _, ok := col[name]; ok && col[name] < 0 {
			col[name] = i
		} else if strings.TrimSpace(h) != "" {
			ignored = append(ignored, strings.TrimSpace(h))
		}
	}
	if col["email"] < 0 {
		return ErrCSVHeader
	}
	if col["full_name"] >= 0 {
		for _, part := range []string{"first_name", "last_name"} {
			if col[part] >= 0 {
				ignored = append(ignored, strings.TrimSpace(header[col[part]]))
			}
		}
	}
	get := func(rec []string, name string) string {
		if i := col[name]; i >= 0 && i < len(rec) {
			return unescapeFormula(rec[i])
		}
		return ""
	}
	hasName := col["full_name"] >= 0 || col["first_name"] >= 0 || col["last_name"] >= 0
	fullName := func(rec []string) string {
		if col["full_name"] >= 0 {
			return get(rec, "full_name")
		}
		return strings.TrimSpace(strings.TrimSpace(get(rec, "first_name")) + " " + strings.TrimSpace(get(rec, "last_name")))
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		row := CSVRow{HasName: hasName, HasComment: col["comment"] >= 0, Ignored: ignored}
		var perr *csv.ParseError
		switch {
		case errors.As(err, &perr):
			row.Line = perr.StartLine
			row.Problem = "not valid CSV: " + perr.Err.Error()
			if errors.Is(perr.Err, csv.ErrQuote) && perr.Line == perr.StartLine {
				row.Problem = fmt.Sprintf(`not valid CSV: text after a closing quote at character %d of the line; put the whole field in quotes and double the quotes inside (a,"He said ""hi"" twice",b)`, perr.Column)
			}
			if errors.Is(perr.Err, csv.ErrBareQuote) {
				row.Problem = fmt.Sprintf(`not valid CSV: a quote at character %d of the line, inside a field that does not start with one; put the whole field in quotes and double the quote inside (a,"He said ""hi""",b)`, perr.Column)
			}
			if errors.Is(perr.Err, csv.ErrQuote) && perr.Line > perr.StartLine {
				// A quoted field that runs on past its line (a quote left
				// open, or closed with text after it) reads the lines
				// after it into this row: they are not imported, and say
				// so here.
				lines := fmt.Sprintf("lines %d to %d were", perr.StartLine+1, perr.Line)
				if perr.Line == perr.StartLine+1 {
					lines = fmt.Sprintf("line %d was", perr.Line)
				}
				row.Problem = fmt.Sprintf("not valid CSV: a quoted field starting on this line runs on to line %d (a quote not closed, or text after a closing quote), so %s read as part of this row and not imported; fix the quotes and import the file again (clients imported already are updated, not doubled)",
					perr.Line, lines)
			}
		case err != nil:
			return err
		default:
			row.Line, _ = cr.FieldPos(0)
			if blankRecord(rec) {
				continue // a blank line, or an empty row of a spreadsheet (",,")
			}
			row.Problem = row.validate(get(rec, "email"), fullName(rec), get(rec, "comment"), get(rec, "unsubscribed_at"))
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}

// separator is the one of comma, semicolon and tab that a header line
// uses most, outside quotes (a column's name may hold another); a comma
// when none does.
func separator(line string) rune {
	count := map[rune]int{}
	quoted := false
	for _, r := range line {
		switch {
		case r == '"':
			quoted = !quoted
		case !quoted:
			count[r]++
		}
	}
	sep := ','
	for _, r := range []rune{';', '\t'} {
		if count[r] > count[sep] {
			sep = r
		}
	}
	return sep
}

// crLines reads a file whose lines end with CR alone as lines ending with
// LF.
type crLines struct{ r io.Reader }

func (c crLines) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if b == '\r' {
			p[i] = '\n'
		}
	}
	return n, err
}

func blankRecord(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// FormulaChars start a cell that spreadsheets run as a formula.
const FormulaChars = "=+-@\t\r"

// EscapeFormula makes a CSV cell that a spreadsheet would run as a formula
// plain text, with a leading apostrophe (CSV injection). A value that
// already looks escaped (an apostrophe, then a formula character or
// another apostrophe) gets one too, so that the import's unescapeFormula
// gives it back as it was.
func EscapeFormula(s string) string {
	if s != "" && strings.ContainsRune(FormulaChars, rune(s[0])) || looksEscaped(s) {
		return "'" + s
	}
	return s
}

// unescapeFormula undoes EscapeFormula, so that an export imports back.
func unescapeFormula(s string) string {
	if looksEscaped(s) {
		return s[1:]
	}
	return s
}

func looksEscaped(s string) bool {
	return len(s) > 1 && s[0] == '\'' && (s[1] == '\'' || strings.ContainsRune(FormulaChars, rune(s[1])))
}

func (r *CSVRow) validate(email, name, comment, unsubscribed string) string {
	if !utf8.ValidString(email + name + comment) {
		r.Email = strings.ToValidUTF8(email, "?")
		return "not UTF-8 text"
	}
	var msg string
	if r.Email, msg = RecipientEmail(email); msg != "" {
		return msg
	}
	if r.FullName, msg = Line(name, false, 200, "a name"); msg != "" {
		return "full_name: " + msg
	}
	if r.Comment, msg = Text(Lines(comment), false, 2000, "a comment"); msg != "" {
		return "comment: " + msg
	}
	if u := strings.TrimSpace(unsubscribed); u != "" {
		t, ok := csvTime(u)
		if !ok || t.UTC().Year() < 1900 || t.After(time.Now().Add(24*time.Hour)) {
			return "unsubscribed_at: use a past date or time like 2024-05-01, 01.05.2024 or 2024-05-01T09:00:00Z, or leave it empty"
		}
		r.UnsubscribedAt = &t
	}
	return ""
}

// csvTimeLayouts are the times an import reads: the export's (RFC 3339),
// and a date or a date and time without a zone, as spreadsheets write them
// (taken as UTC), year first or, with dots, day first (as German and
// Russian ones do; with slashes the order is ambiguous, so not read).
var csvTimeLayouts = []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02",
	"2.1.2006 15:04:05", "2.1.2006 15:04", "2.1.2006"}

func csvTime(s string) (time.Time, bool) {
	for _, layout := range csvTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
