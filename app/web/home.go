package web

import (
	"github.com/gofiber/fiber/v2"

	"rassylka/views/home"
)

// home is the start page.
func (s *Server) home(c *fiber.Ctx) error {
	return render(c, fiber.StatusOK, home.Landing(s.page(c, "")))
}
