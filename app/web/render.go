package web

import (
	"bufio"
	"encoding/csv"

	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/views/component"
	"rassylka/views/layout"
)

// render writes a templ component as the HTML answer with status.
func render(c *fiber.Ctx, status int, comp templ.Component) error {
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return comp.Render(component.WithCSRF(c.UserContext(), auth.CSRFToken(c)), c.Response().BodyWriter())
}

// isHTMX reports whether htmx made the request and wants a fragment. When
// it restores a page from the browser's history that its own history cache
// no longer holds, it asks for the page again with HX-Request as well, and
// puts the answer in place of the whole body: that wants the whole page.
func isHTMX(c *fiber.Ctx) bool {
	return c.Get("HX-Request") == "true" && c.Get("HX-History-Restore-Request") != "true"
}

// redirect answers a successful form post: 303 to the next page, or
// HX-Redirect for htmx.
func redirect(c *fiber.Ctx, to string) error {
	if isHTMX(c) {
		c.Set("HX-Redirect", to)
		return c.SendStatus(fiber.StatusNoContent)
	}
	return c.Redirect(to, fiber.StatusSeeOther)
}

// page returns the shell's view model for this request.
func (s *Server) page(c *fiber.Ctx, title string) layout.Page {
	p := layout.Page{
		Title:     title,
		CSRFToken: auth.CSRFToken(c),
		RequestID: RequestID(c),
		Flashes:   s.takeFlash(c),
		Path:      c.Path(),
		Fragment:  isHTMX(c),
	}
	if u := auth.CurrentUser(c); u != nil {
		name := u.FullName
		if name == "" {
			name = u.Email
		}
		p.Viewer = &layout.Viewer{Name: name, Email: u.Email, Manager: u.IsManager(), Mark: auth.SignInMark(c)}
	}
	return p
}

// streamCSV answers a CSV download named filename: a byte order mark
// first (Excel opens a CSV without one in the system's code page, and names
// in other scripts come out garbled; the import skips it), the header, and
// the rows each writes, lines ended with CRLF (RFC 4180), handed to the
// client a thousand at a time. The rows are read after the handler
// returns, as the client takes them.
func (s *Server) streamCSV(c *fiber.Ctx, filename string, header []string, each func(write func([]string) error) error) {
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+filename+`"`)
	path := c.Path()
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		_, _ = w.WriteString("\ufeff")
		cw := csv.NewWriter(w)
		cw.UseCRLF = true
		_ = cw.Write(header)
		n := 0
		err := each(func(row []string) error {
			if err := cw.Write(row); err != nil {
				return err
			}
			if n++; n%1000 == 0 {
				cw.Flush()
				if err := cw.Error(); err != nil {
					return err
				}
				return w.Flush()
			}
			return nil
		})
		cw.Flush()
		if err == nil {
			err = cw.Error()
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			s.log.Error("csv download", "path", path, "error", err.Error())
		}
	})
}
