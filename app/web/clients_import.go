package web

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/store"
	"rassylka/app/web/form"
	"rassylka/views/clients"
)

const (
	// MaxImportBytes is the largest CSV accepted.
	MaxImportBytes = 20 << 20
	importBatch    = 1000
	maxRejectsShow = 1000
)

func (s *Server) importForm(c *fiber.Ctx) error {
	return render(c, fiber.StatusOK, clients.ImportPage(s.page(c, "Import clients"), clients.ImportView{}))
}

// importClients reads an uploaded CSV and creates or updates the owner's
// clients in batches (one statement, so one transaction, per batch); a bad
// row is reported and never stops the others.
func (s *Server) importClients(c *fiber.Ctx) error {
	uid := auth.UserID(c)
	refuse := func(status int, msg string) error {
		return render(c, status, clients.ImportPage(s.page(c, "Import clients"), clients.ImportView{Error: msg}))
	}
	fh, err := c.FormFile("file")
	if err != nil {
		return refuse(fiber.StatusUnprocessableEntity, "Choose a CSV file to import.")
	}
	if fh.Size > MaxImportBytes {
		return refuse(fiber.StatusRequestEntityTooLarge,
			fmt.Sprintf("The file is %.1f MB; files up to 20 MB can be imported. Split it and import the parts.", float64(fh.Size)/(1<<20)))
	}
	f, err := fh.Open()
	if err != nil {
		return fmt.Errorf("open upload: %w", err)
	}
	defer f.Close()

	report := &clients.Report{}
	seen := map[string]int{} // email -> line, to reject repeats within the file
	var batch []store.ImportRow
	var cols store.ImportColumns
	flush := func() error {
		created, updated, err := s.store.UpsertClientsColumns(c.UserContext(), uid, batch, cols)
		if err != nil {
			return err
		}
		report.Created += created
		report.Updated += updated
		report.Unchanged += len(batch) - created - updated
		batch = batch[:0]
		return nil
	}
	rejected := 0
	reject := func(line int, email, reason string) {
		rejected++
		if len(report.Rejected) < maxRejectsShow {
			report.Rejected = append(report.Rejected, clients.Rejected{Line: line, Email: email, Reason: reason})
		}
	}
	err = form.ReadClientsCSV(f, func(r form.CSVRow) error {
		cols = store.ImportColumns{Name: r.HasName, Comment: r.HasComment}
		if r.Problem != "" {
			reject(r.Line, r.Email, r.Problem)
			return nil
		}
		if first, dup := seen[r.Email]; dup {
			reject(r.Line, r.Email, "the same address is on line "+strconv.Itoa(first))
			return nil
		}
		seen[r.Email] = r.Line
		batch = append(batch, store.ImportRow{Email: r.Email, FullName: r.FullName, Comment: r.Comment, UnsubscribedAt: r.UnsubscribedAt})
		if len(batch) >= importBatch {
			return flush()
		}
		return nil
	})
	if errors.Is(err, form.ErrCSVHeader) {
		return refuse(fiber.StatusUnprocessableEntity, "This does not look like a clients CSV: "+err.Error()+".")
	}
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("import clients: %w", err)
	}
	report.RejectedTotal = rejected
	return render(c, fiber.StatusOK, clients.ImportPage(s.page(c, "Import clients"), clients.ImportView{Report: report}))
}
