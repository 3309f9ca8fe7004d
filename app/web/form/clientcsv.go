package form

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// CSVRow is one data row of a clients CSV, validated.
type CSVRow struct {
	Line     int
	Email    string
	FullName string
	Comment  string
	Problem  string // why the row is rejected, "" when valid
}

// ErrCSVHeader is returned when the first line does not name an email column.
var ErrCSVHeader = errors.New(`the first line must name the columns, with at least "email"`)

// ReadClientsCSV reads a clients CSV: UTF-8 with or without a BOM, comma
// or semicolon separated (whichever the header uses), a header naming
// email, full_name and comment in any order. It calls fn with each data
// row, validated; a bad row is reported with its line number and never
// stops the others. A file that is not CSV at all is an error.
func ReadClientsCSV(r io.Reader, fn func(CSVRow) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	head, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return err
	}
	firstLine, _, _ := strings.Cut(string(head), "\n")
	cr := csv.NewReader(br)
	if strings.Count(firstLine, ";") > strings.Count(firstLine, ",") {
		cr.Comma = ';'
	}
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return ErrCSVHeader
	}
	if err != nil {
		return fmt.Errorf("line 1: %w", err)
	}
	col := map[string]int{"email": -1, "full_name": -1, "comment": -1}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		name = strings.NewReplacer(" ", "_", "-", "_").Replace(name)
		if name == "name" || name == "fullname" {
			name = "full_name"
		}
		if _, ok := col[name]; ok && col[name] < 0 {
			col[name] = i
		}
	}
	if col["email"] < 0 {
		return ErrCSVHeader
	}
	get := func(rec []string, name string) string {
		if i := col[name]; i >= 0 && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var row CSVRow
		var perr *csv.ParseError
		switch {
		case errors.As(err, &perr):
			row.Line = perr.StartLine
			row.Problem = "not valid CSV: " + perr.Err.Error()
		case err != nil:
			return err
		default:
			row.Line, _ = cr.FieldPos(0)
			if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
				continue // a blank line
			}
			row.Problem = row.validate(get(rec, "email"), get(rec, "full_name"), get(rec, "comment"))
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}

func (r *CSVRow) validate(email, name, comment string) string {
	if !utf8.ValidString(email + name + comment) {
		r.Email = strings.ToValidUTF8(email, "?")
		return "not UTF-8 text"
	}
	var msg string
	if r.Email, msg = Email(email); msg != "" {
		return msg
	}
	if r.FullName, msg = Line(name, false, 200, "a name"); msg != "" {
		return "full_name: " + msg
	}
	if r.Comment, msg = Text(comment, false, 2000, "a comment"); msg != "" {
		return "comment: " + msg
	}
	return ""
}
