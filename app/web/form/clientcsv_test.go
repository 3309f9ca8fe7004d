package form

import (
	"strings"
	"testing"
)

func readCSV(t *testing.T, data string) []CSVRow {
	t.Helper()
	var rows []CSVRow
	if err := ReadClientsCSV(strings.NewReader(data), func(r CSVRow) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

// A quote left open reads the rest of the file into its row: the report
// says which lines were not imported, instead of leaving them out without
// a word.
func TestClientsCSVUnclosedQuoteNamesTheLinesItTook(t *testing.T) {
	rows := readCSV(t, "email,full_name\na1@example.com,Ann\na2@example.com,\"Smith, John\na3@example.com,Bo\na4@example.com,Cy\na5@example.com,Di\n")
	if len(rows) != 2 || rows[0].Problem != "" {
		t.Fatalf("rows %+v", rows)
	}
	bad := rows[1]
	if bad.Line != 3 || !strings.Contains(bad.Problem, "lines 4 to 6 were read as part of this row and not imported") {
		t.Errorf("the unclosed quote's row: line %d, %q", bad.Line, bad.Problem)
	}
	// A quote closed a line later with text after it takes that one line;
	// the lines after it are imported.
	rows = readCSV(t, "email,full_name\na2@example.com,\"Smith, John\na3@example.com,Bo\"x\na4@example.com,Cy\n")
	if len(rows) != 2 || rows[1].Problem != "" || rows[1].Line != 4 {
		t.Fatalf("rows %+v", rows)
	}
	if bad := rows[0]; bad.Line != 2 || !strings.Contains(bad.Problem, "runs on to line 3") || !strings.Contains(bad.Problem, "line 3 was read as part of this row") {
		t.Errorf("the quoted field's row: line %d, %q", bad.Line, bad.Problem)
	}
}

// An unsubscription time PostgreSQL cannot store (year 0), or one still to
// come, rejects its row only, with a message: it stopped the whole import.
func TestClientsCSVUnsubscribedAtBounds(t *testing.T) {
	rows := readCSV(t, "email,unsubscribed_at\na@example.com,0000-06-01T00:00:00Z\nb@example.com,2999-01-01T00:00:00Z\nc@example.com,2024-05-01T09:00:00Z\n")
	if len(rows) != 3 {
		t.Fatalf("rows %+v", rows)
	}
	for i, want := range []bool{false, false, true} {
		if ok := rows[i].Problem == ""; ok != want || (!ok && !strings.HasPrefix(rows[i].Problem, "unsubscribed_at:")) {
			t.Errorf("line %d: %q", rows[i].Line, rows[i].Problem)
		}
	}
}

// An unsubscription is read as the export writes it and as a spreadsheet
// does: a date, or a date and time without a zone (UTC), year first or,
// with dots, day first; with slashes (month or day first?) it is refused.
func TestClientsCSVUnsubscribedAtForms(t *testing.T) {
	rows := readCSV(t, "email,unsubscribed_at\na@example.com,2024-05-01\nb@example.com,2024-05-01 09:30\nc@example.com,2024-05-01 09:30:15\nd@example.com,2024-05-01T09:30:15\ne@example.com,2024-05-01T09:30:15+02:00\n"+
		"f@example.com,01.05.2024\ng@example.com,1.5.2024 09:30\nh@example.com,01.05.2024 09:30:15\ni@example.com,01/05/2024\nj@example.com,31.02.2024\n")
	want := []string{"2024-05-01T00:00:00Z", "2024-05-01T09:30:00Z", "2024-05-01T09:30:15Z", "2024-05-01T09:30:15Z", "2024-05-01T07:30:15Z",
		"2024-05-01T00:00:00Z", "2024-05-01T09:30:00Z", "2024-05-01T09:30:15Z", "", ""}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for i, w := range want {
		got := ""
		if rows[i].UnsubscribedAt != nil {
			got = rows[i].UnsubscribedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		if got != w || (w == "") != strings.HasPrefix(rows[i].Problem, "unsubscribed_at:") {
			t.Errorf("line %d: %s, problem %q; want %s", rows[i].Line, got, rows[i].Problem, w)
		}
	}
}

// A quote inside a field that does not start with one says how to write
// it, rather than the parser's own words.
func TestClientsCSVBareQuoteSaysHowToQuote(t *testing.T) {
	rows := readCSV(t, "email,full_name\na@example.com,He said \"hi\" there\nb@example.com,Bo\n")
	if len(rows) != 2 || rows[1].Problem != "" {
		t.Fatalf("rows %+v", rows)
	}
	if p := rows[0].Problem; rows[0].Line != 2 || p != `not valid CSV: a quote at character 23 of the line, inside a field that does not start with one; put the whole field in quotes and double the quote inside (a,"He said ""hi""",b)` {
		t.Errorf("line %d: %q", rows[0].Line, p)
	}
}

// Text after a closing quote, on the same line, says how to quote rather
// than the parser's own words.
func TestClientsCSVTextAfterAClosingQuote(t *testing.T) {
	rows := readCSV(t, "email,full_name,comment\nq6@example.com,\"Q6\" x,c\nb@example.com,Bo,\n")
	if len(rows) != 2 || rows[1].Problem != "" {
		t.Fatalf("rows %+v", rows)
	}
	if p := rows[0].Problem; rows[0].Line != 2 || !strings.HasPrefix(p, "not valid CSV: text after a closing quote at character 19 of the line; put the whole field in quotes") {
		t.Errorf("line %d: %q", rows[0].Line, p)
	}
}

// The separator is the one the header uses most outside quotes (a
// column's name may hold a comma), among comma, semicolon and tab, or the
// one a first line "sep=" names, as Excel writes it; lines keep their
// numbers.
func TestClientsCSVSeparators(t *testing.T) {
	for _, c := range []struct{ name, data string }{
		{"semicolons, a comma in a quoted header", "E-Mail;Name;\"Tags, internal\"\nde1@example.com;\"Muller, Hans\";\"a, b\"\nbad;x;y\n"},
		{"tabs", "email\tfull_name\nde1@example.com\tMuller, Hans\nbad\tx\n"},
		{"sep=;", "sep=;\nemail;full_name\nde1@example.com;Muller, Hans\nbad;x\n"},
		{"sep=, with CRLF", "sep=,\r\nemail,full_name\r\nde1@example.com,\"Muller, Hans\"\r\nbad,x\r\n"},
		{"a blank line, then semicolons", "\nemail;full_name\nde1@example.com;Muller, Hans\nbad;x\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows := readCSV(t, c.data)
			if len(rows) != 2 || rows[0].Problem != "" || rows[0].Email != "de1@example.com" || rows[0].FullName != "Muller, Hans" || rows[1].Problem == "" {
				t.Fatalf("rows %+v", rows)
			}
			if want := strings.Count(c.data, "\n"); rows[1].Line != want {
				t.Errorf("the bad row is reported on line %d, want %d", rows[1].Line, want)
			}
		})
	}
}
