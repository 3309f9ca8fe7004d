package web

import (
	"github.com/a-h/templ"
	"github.com/gofiber/fiber/v2"

	"rassylka/views/layout"
)

// render writes a templ component as the HTML answer with status.
func render(c *fiber.Ctx, status int, comp templ.Component) error {
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return comp.Render(c.UserContext(), c.Response().BodyWriter())
}

// isHTMX reports whether htmx made the request (it then wants a fragment).
func isHTMX(c *fiber.Ctx) bool { return c.Get("HX-Request") == "true" }

// page returns the shell's view model for this request.
func (s *Server) page(c *fiber.Ctx, title string) layout.Page {
	return layout.Page{
		Title:     title,
		RequestID: RequestID(c),
	}
}
